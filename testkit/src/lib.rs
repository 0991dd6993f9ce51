//! Test harness shared by every crate's integration tests: the AWS emulator (moto behind
//! `tools/emulator/emulator.py`), per-test SQLite files and Postgres databases, a private
//! Postgres server to restart, and byoc's own processes.
//!
//! Tests never share mutable state by accident: each takes its own AWS account from
//! [`Emulator::fresh_account`] and its own database from [`TestDb`].

mod byoc;
mod db;
mod emulator;
mod postgres;
#[cfg(feature = "stacks")]
mod stores;

pub use byoc::{ADMIN_TOKEN, ByocProcess, SECRET_KEY};
pub use db::{TestDb, exec, postgres_admin_url};
pub use emulator::{Emulator, EmulatorOptions};
pub use postgres::PostgresServer;
#[cfg(feature = "stacks")]
pub use stores::{databases, tenant_with_stacks, trust_tenant};

use std::path::PathBuf;

/// The repository root (where `.venv/` and `tools/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}
