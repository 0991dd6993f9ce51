//! Test harness shared by every crate's integration tests: the AWS emulator (moto behind
//! `tools/emulator/emulator.py`) and per-test SQLite files and Postgres databases.
//!
//! Tests never share mutable state by accident: each takes its own AWS account from
//! [`Emulator::fresh_account`] and its own database from [`TestDb`].

mod db;
mod emulator;

pub use db::{TestDb, postgres_admin_url};
pub use emulator::{Emulator, EmulatorOptions};

use std::path::PathBuf;

/// The repository root (where `.venv/` and `tools/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}
