//! Config problems found while checking a raw config into a typed one,
//! and the collector the checks report them to, so every problem is
//! reported at once.

/// One problem: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending key from the document root, e.g. ["sla", "plans", "premium", "calendar"]; array elements as their index ("0").
    pub path: Vec<String>,
    pub message: String,
}

/// Problems in the order found. Paths given to [`Problems::push`] are
/// relative to the current prefix (see [`Problems::within`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    prefix: Vec<String>,
    list: Vec<Problem>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    /// A collector whose every path starts with `prefix`, e.g. ["triage"].
    pub fn under(prefix: &[&str]) -> Problems {
        Problems {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            list: Vec::new(),
        }
    }

    /// Records a problem at the prefix followed by `path`.
    pub fn push<S: AsRef<str>>(&mut self, path: &[S], message: impl Into<String>) {
        let path = self
            .prefix
            .iter()
            .map(String::as_str)
            .chain(path.iter().map(AsRef::as_ref))
            .map(str::to_owned)
            .collect();
        self.list.push(Problem {
            path,
            message: message.into(),
        });
    }

    /// Runs `f` with `keys` appended to the prefix, then restores it.
    pub fn within<R>(&mut self, keys: &[&str], f: impl FnOnce(&mut Problems) -> R) -> R {
        let depth = self.prefix.len();
        self.prefix.extend(keys.iter().map(|s| s.to_string()));
        let r = f(self);
        self.prefix.truncate(depth);
        r
    }

    /// Adds problems whose paths are already complete (from the document
    /// root), such as those of another model's check; the prefix is not
    /// applied.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.list.extend(problems);
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &Problems) -> Vec<String> {
        p.clone()
            .into_vec()
            .iter()
            .map(|p| p.path.join("."))
            .collect()
    }

    #[test]
    fn paths_are_prefixed_and_order_kept() {
        let mut p = Problems::under(&["triage"]);
        assert!(p.is_empty());
        p.push(&["languages", "0"], "a");
        p.within(&["rules", "2"], |p| {
            p.push(&["phrases"], "b");
            p.within(&["when_category"], |p| p.push(&["1"], String::from("c")));
        });
        p.push(&[] as &[&str], "d");
        p.extend([Problem {
            path: vec!["sla".into(), "plans".into()],
            message: "e".into(),
        }]);
        assert_eq!(
            paths(&p),
            [
                "triage.languages.0",
                "triage.rules.2.phrases",
                "triage.rules.2.when_category.1",
                "triage",
                "sla.plans",
            ]
        );
        assert_eq!(p.len(), 5);
        let messages: Vec<String> = p.into_vec().into_iter().map(|p| p.message).collect();
        assert_eq!(messages, ["a", "b", "c", "d", "e"]);
    }
}
