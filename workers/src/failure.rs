//! Why a run failed: one variant per way a run can end `failed`, so each is reported the
//! same way wherever it arises. The run record keeps the message.

use byoc_engine::{ExecError, GraphError, PlanError, RefreshError};
use byoc_model::TrustProblem;
use byoc_stacks::DbError;

#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// The run's stack, tenant or config could not be read.
    #[error("the run's context cannot be read: {0}")]
    Context(#[from] DbError),
    /// A deploy, refresh or preview of an environment with no saved config.
    #[error("stack {0} has no saved config: save one before deploying")]
    NoConfig(String),
    #[error("the environment config cannot be built: {0}")]
    Build(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("refresh: {0}")]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Steps of the plan failed: each with its resource and error.
    #[error("{}", steps.iter().map(|(r, e)| format!("{r}: {e}")).collect::<Vec<_>>().join("; "))]
    Steps { steps: Vec<(String, String)> },
    /// The trust stack could not be read, so nothing was learnt about the trust.
    #[error(transparent)]
    TrustUnreadable(TrustProblem),
    /// The trust stack was read and does not grant what byoc needs.
    #[error("{0}")]
    Untrusted(String),
    #[error("the tenant's external id was rotated during the verification: verify again")]
    ExternalIdRotated,
}
