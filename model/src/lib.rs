//! The domain's types, shared by the store, the components, the API and the CLI: names and
//! identities validated on construction, environment configs and their validation, the
//! component catalog, the trust contract, run kinds and states.
//!
//! Invariant: no I/O. No SQL, queue, AWS SDK or HTTP crate is a dependency.

pub mod api;
mod components;
mod config;
mod drift;
mod ids;
mod names;
mod records;
mod trust;

pub use components::{
    AllowedChartSources, ChartRef, ChartSource, Component, ComponentConfig, Components,
    merge_values,
};
pub use config::{
    CapacityType, ConfigError, EksMode, EndpointAccess, EnvironmentConfig, NatMode,
    NodeGroupConfig, SubnetPlan, Taint, TaintEffect,
};
pub use drift::{
    DEFAULT_EVERY_MINUTES, DRIFT_CHECK_EVERY_FACT, DriftCheckConfig, DriftSchedule,
    MAX_EVERY_MINUTES, MIN_EVERY_MINUTES, SCHEDULER, ScheduleSource, parse_every,
};
pub use ids::{AccountId, EnvName, Region, RunId, StackName, TRUST_ENV, TenantSlug};
pub use names::*;
pub use records::{
    ApiToken, AuditEntry, EnvironmentRecord, HistoryEntry, ResourceRecord, Run, RunEvent,
    StackStatus, Tenant,
};
pub use trust::{
    DEFAULT_TRUST_STACK, MIN_TRUST_TEMPLATE_VERSION, TRUST_ROLE_NAME, TRUST_TEMPLATE_VERSION,
    TrustProblem, TrustStackReport, Verdict, boundary_policy_name, facts,
};

/// Input that breaks one of the model's rules; the message names what and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
