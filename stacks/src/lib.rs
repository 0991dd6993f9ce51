//! The stack model and its durable records.
//!
//! Invariant: knows no AWS and no HTTP. Everything durable goes through [`Database`], on
//! SQLite (the embedded default) or Postgres (many workers on many hosts), with the same
//! behaviour on both: one text per query, run on either engine (`db::with_pool!`).

mod components;
mod config;
mod crypto;
mod db;
mod model;
mod queue;
mod runs;
mod stacks;
mod state_store;
mod tenants;
mod tokens;
mod trust;

pub use components::{ChartSource, Component, ComponentConfig, Components, merge_values};
pub use config::{
    CapacityType, ConfigError, EksMode, EndpointAccess, EnvironmentConfig, NatMode,
    NodeGroupConfig, SubnetPlan, Taint, TaintEffect,
};
pub use crypto::Sealer;
pub use db::{
    Database, DbError, MigrationStatus, Pool, migrate_url, redact_url, schema_fingerprint,
};
pub use model::{
    MAX_LABELS, OnboardingStatus, RunKind, RunStatus, TRUST_ENV, is_region, label_key_problem,
    label_value_problem, stack_name, trust_stack_name, validate_account_id, validate_display_name,
    validate_env, validate_labels, validate_slug,
};
pub use queue::{JobQueue, QUEUE, QueueConfig, RunJob};
pub use runs::{Begin, Lease, Run, RunEvent};
pub use stacks::{
    AuditEntry, EnvironmentRecord, HistoryEntry, ResourceRecord, RunMetrics, StackStatus,
};
pub use state_store::RunStore;
pub use tenants::{NewTenant, TENANT_NAME_MAX, Tenant, TrustLocation};
pub use tokens::{ApiToken, TOKEN_NAME_MAX};
pub use trust::{
    DEFAULT_TRUST_STACK, MIN_TRUST_TEMPLATE_VERSION, TRUST_TEMPLATE_VERSION, TrustProblem,
    TrustStackReport, Verdict,
};

/// Now, in Unix milliseconds: how every time is stored.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}
