//! Agent commands: `#close`, `#reopen`, `#pending`, `#priority P1`,
//! `#assign someone@example.com`, one per line at the top of an agent's
//! message (blank lines allowed between them; the first other line ends
//! the command block, so a `#` further down the text is just text).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Close,
    Reopen,
    Pending,
    Priority(String),
    Assign(String),
}

/// The commands and what they could not read ("#prio P1": unknown).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub commands: Vec<Command>,
    pub errors: Vec<String>,
    /// Whether text other than commands follows: a real answer.
    pub has_text: bool,
}

pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut lines = text.lines().map(str::trim);
    for line in lines.by_ref() {
        if line.is_empty() {
            continue;
        }
        let Some(cmd) = line.strip_prefix('#') else {
            out.has_text = !line.starts_with('>');
            break;
        };
        let mut words = cmd.split_whitespace();
        let name = words.next().unwrap_or("").to_lowercase();
        let arg = words.next().map(str::to_string);
        let extra = words.next().is_some();
        let c = match (name.as_str(), arg) {
            ("close" | "resolve", None) => Some(Command::Close),
            ("reopen", None) => Some(Command::Reopen),
            ("pending", None) => Some(Command::Pending),
            ("priority" | "priorite" | "priorité", Some(p)) if !extra => {
                Some(Command::Priority(p))
            }
            ("assign", Some(a)) if !extra && a.contains('@') => Some(Command::Assign(a)),
            _ => None,
        };
        match c {
            Some(c) => out.commands.push(c),
            None => out.errors.push(format!("not a command: {line}")),
        }
    }
    // Quoted text of the customer's message does not make an answer.
    if !out.has_text {
        out.has_text = lines.any(|l| !l.is_empty() && !l.starts_with('>'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_on_top_then_text() {
        let p = parse("#priority P1\n\n#assign bob@desk.example\nHello, we are on it.\n#close\n");
        assert_eq!(
            p.commands,
            vec![
                Command::Priority("P1".into()),
                Command::Assign("bob@desk.example".into())
            ]
        );
        assert!(p.has_text);
        assert!(p.errors.is_empty());
    }

    #[test]
    fn commands_only_is_not_an_answer() {
        let p = parse("#close\n\n> quoted customer text\n");
        assert_eq!(p.commands, vec![Command::Close]);
        assert!(!p.has_text);
        let p = parse("#pending\n#prio P1\n#assign nobody\n");
        assert_eq!(p.commands, vec![Command::Pending]);
        assert_eq!(p.errors.len(), 2);
        assert!(parse("").commands.is_empty());
        assert!(parse("Thanks!").has_text);
    }
}
