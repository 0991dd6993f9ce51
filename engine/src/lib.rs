//! The IaC engine: resource graph, planner and crash-safe executor.
//!
//! Invariant: knows no AWS, SQL, HTTP or queue, and nothing byoc-specific; providers and the
//! state store reach it through traits.
//!
//! A run: [`Graph::new`] validates the desired resources; [`plan`] (pure) compares them with
//! the recorded [`Snapshot`] and gives a [`Plan`]; [`Executor::apply`] runs it in parallel
//! along its DAG, journaling an intent before and an outcome after every provider call.
//! After a crash, the next run loads the snapshot (with its pending intents), plans again and
//! applies: finished steps are not in the new plan, and an interrupted create is found and
//! adopted (or cleaned up) instead of being made twice.

mod exec;
mod graph;
mod model;
mod plan;
mod provider;
mod refresh;
mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use exec::{
    Event, EventLog, EventSink, ExecError, ExecOptions, Executor, NoEvents, RetryPolicy, RunReport,
    RunStatus,
};
pub use graph::{Graph, GraphError};
pub use model::{
    Lifecycle, ResolveError, Resource, UNKNOWN, as_reference, lookup, reference, references,
    resolve,
};
pub use plan::{
    Action, FieldDiff, Observations, Plan, PlanError, Step, Summary, plan, plan_destroy,
    stable_hash,
};
pub use provider::{
    Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError, Providers, changed_fields,
};
pub use refresh::{Drift, DriftKind, RefreshError, drift, refresh};
pub use state::{
    Intent, MemoryStore, Operation, Outcome, ResourceState, Snapshot, StateStore, StoreError,
    base_name, deposed_key, orphan_key,
};
pub use tokio_util::sync::CancellationToken;
