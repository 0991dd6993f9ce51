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
    /// A deploy would replace or delete guarded resources without an approved plan.
    #[error(
        "the plan replaces or deletes {}, which loses what runs on them: preview it, then deploy exactly that plan (`byoc deploy --plan <preview run id>`, or POST .../deploy with {{\"plan_id\": ...}})",
        .0.join(", ")
    )]
    NeedsApproval(Vec<String>),
    /// The approved plan was made against another config or state than the deploy found.
    #[error("plan {preview} is stale: {why}; preview again and deploy the new plan")]
    StalePlan { preview: String, why: String },
}
