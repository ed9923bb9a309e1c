//! supportdesk: support mailboxes in, tickets with service levels out.
//!
//! A pure core (`core`: parsing, SLA calendars, triage, threading, and
//! `ingest::decide`) inside an I/O shell (`mail`, `ingest`, `escalate`,
//! `app`) around a store that owns every SQL statement (`store`). The
//! binary in main.rs is a thin CLI over this library, so integration
//! tests drive the real thing.
#![forbid(unsafe_code)]

pub mod app;
pub mod clock;
pub mod compose;
pub mod config;
pub mod core;
pub mod digest;
pub mod escalate;
pub mod faults;
pub mod health;
pub mod ingest;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod pending;
pub mod render;
pub mod reporting;
pub mod store;
pub mod validate;
pub mod verify;
