//! End-to-end tests on real servers: a private Dovecot + Postfix pair per
//! test (tests/mailstack/mailstack.sh), the real `supportdesk` binary, and
//! the acknowledgements read back over IMAP from the catch-all mailbox.
//! Each test has its own temp dir and its own ports, so they run in parallel.
//! One test binary: each module covers one area (see its `//!`) and all
//! share tests/common with the benchmarks (tests/bench.rs).

#[path = "../common/mod.rs"]
mod common;
mod support;

mod classify_cli;
mod clocks;
mod daemon;
mod frozen_server;
mod hostile_input;
mod imap_faults;
mod oauth;
mod offline;
mod outbox;
mod pipeline;
mod process;
mod reports;
mod sigkill;
mod sla_cli;
mod spam_corpus;
mod storage_faults;
mod sweeper_clock;
mod templates;
mod trust;
