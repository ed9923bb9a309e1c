//! Fault injection for the reliability tests: `SUPPORTDESK_FAULT=NAME`
//! aborts the process at the named point, as a kill would.

/// Aborts the process when `SUPPORTDESK_FAULT` names this point
/// (`after_commit`: right after a commit, before the source is marked;
/// `mid_spool`: a large message half written to its spool file;
/// `after_claim`: an outbox row claimed, before it is sent;
/// `after_send`: the SMTP server said 250, before the row is marked sent).
pub fn fault_point(name: &str) {
    if let Ok(f) = std::env::var("SUPPORTDESK_FAULT")
        && f == name
    {
        eprintln!("supportdesk: fault injection: aborting at {name}");
        std::process::abort();
    }
}
