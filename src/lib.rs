//! supportdesk: support mailboxes in, tickets with service levels out.
//!
//! A pure core (`core`: parsing, SLA calendars, triage, threading) inside
//! an I/O shell (`mail`, `store`, `app`). The binary in main.rs is a thin
//! CLI over this library, so integration tests drive the real thing.
#![forbid(unsafe_code)]

pub mod app;
pub mod compose;
pub mod config;
pub mod core;
pub mod escalate;
pub mod faults;
pub mod health;
pub mod ingest;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod render;
pub mod store;
pub mod validate;
