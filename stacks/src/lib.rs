//! The durable records of byoc (the model's types are in `byoc-model`).
//!
//! Invariant: knows no AWS and no HTTP. Everything durable goes through [`Database`], on
//! SQLite (the embedded default) or Postgres (many workers on many hosts), with the same
//! behaviour on both: one text per query, run on either engine (`db::with_pool!`).

mod crypto;
mod db;
mod queue;
mod retention;
mod runs;
mod schedule;
mod stacks;
mod state_store;
mod tenants;
mod tokens;

pub use crypto::Sealer;
pub use db::{
    Database, DbError, MigrationStatus, Pool, migrate_url, redact_url, schema_fingerprint,
};
pub use queue::{JobQueue, JobStorage, JobsPushed, QUEUE, QueueConfig, RunJob};
pub use retention::{Pruned, Retention};
pub use runs::{ApprovedPlan, Begin, Lease, RunContext, RunLimits};
pub use schedule::{CheckCandidate, ScheduledCheck};
pub use stacks::{EnvironmentRead, RunMetrics, StoredConfig};
pub use state_store::RunStore;
pub use tenants::{NewTenant, TENANT_NAME_MAX, TrustLocation};
pub use tokens::TOKEN_NAME_MAX;

/// Now, in Unix milliseconds: how every time is stored.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}
