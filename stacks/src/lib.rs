//! The stack model and its durable records.
//!
//! Invariant: knows no AWS and no HTTP. Everything durable goes through [`Database`], on
//! SQLite (the embedded default) or Postgres (many workers on many hosts), with the same
//! behaviour on both.

mod db;

pub use db::{Database, DbError, redact_url, schema_fingerprint};
