//! The pure core: no tokio, no SQLite, no network; time is a parameter.

pub mod auth;
pub mod calendar;
pub mod commands;
pub mod digest;
pub mod duration;
pub mod escalation;
pub mod ics;
pub mod inbound;
pub mod problem;
pub mod sla;
pub mod stats;
pub mod threading;
pub mod triage;
pub mod when;
