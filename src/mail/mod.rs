//! Mail I/O: IMAP and Maildir sources, composing, and outbox delivery.

pub mod compose;
pub mod imap;
pub mod maildir;
pub mod outbox;
pub mod tls;
