//! A config problem found while checking a raw config into a typed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending key from the document root, e.g. ["sla", "plans", "premium", "calendar"]; array elements as their index ("0").
    pub path: Vec<String>,
    pub message: String,
}
