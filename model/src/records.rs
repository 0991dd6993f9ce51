//! The records byoc keeps and shows: what the store reads back and the API and the CLI
//! exchange, one type for all three.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    AccountId, EnvName, EnvironmentConfig, OnboardingStatus, Region, RunId, RunKind, RunStatus,
    StackName, TenantSlug,
};

/// A run: a deploy, destroy, refresh, preview or trust verification of one stack. Times are
/// Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: RunId,
    /// Request order, across all stacks.
    pub seq: i64,
    pub stack: StackName,
    pub kind: RunKind,
    pub status: RunStatus,
    /// Who asked: `token:{id} ({name})`, or `operator` when a tenant token reads a run the
    /// provider's token asked for.
    pub requested_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// The version of the environment's config the run applies, pinned when it first started
    /// (`None` until then, and for runs of no config: trust verifications).
    pub config_version: Option<i64>,
    /// What the run did: step counts, and for a refresh the drift found.
    pub summary: Option<Value>,
    pub cancel_requested: bool,
}

/// One entry of a run's event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunEvent {
    /// 1, 2, ... within the run: a stream resumes after the last one seen.
    pub seq: i64,
    pub at: i64,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// The resource (state key) the event is about.
    pub resource: Option<String>,
    pub message: String,
    /// The engine's event as JSON (`event`: step_started, step_succeeded, ...).
    pub data: Option<Value>,
}

/// An environment's config as saved. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentRecord {
    pub env: EnvName,
    /// The effective config: what was saved, with every default filled in when it was saved
    /// (a later change of byoc's defaults never moves a live environment).
    pub config: EnvironmentConfig,
    /// The config as the caller sent it.
    pub raw: Value,
    pub version: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StackStatus {
    pub stack: StackName,
    /// `empty` (never deployed), `deployed`, `destroyed`, or `incomplete` (the last deploy or
    /// destroy failed or was cancelled).
    pub status: String,
    pub state_version: i64,
    pub generation: i64,
    pub lease_holder: Option<String>,
    /// resources.status -> count
    pub resources: BTreeMap<String, i64>,
    pub last_run: Option<Run>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceRecord {
    /// The state key: the resource's logical name (`{name}~deposed` for a replaced object
    /// not deleted yet).
    pub key: String,
    /// The resource type, e.g. `aws:ec2:Vpc`.
    pub kind: String,
    pub physical_id: String,
    pub status: String,
    /// The inputs last applied, in the resource type's own shape.
    pub inputs: Value,
    /// What the provider reported (ids, ARNs, endpoints).
    pub outputs: Value,
    pub updated_at: i64,
}

/// One version of a stack's state: the run that made it and what it changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub version: i64,
    pub run_id: RunId,
    pub at: i64,
    /// Resource keys created, updated, replaced and deleted.
    pub changes: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub at: i64,
    pub details: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub slug: TenantSlug,
    pub name: String,
    pub aws_account_id: AccountId,
    pub labels: BTreeMap<String, String>,
    pub onboarding_status: OnboardingStatus,
    pub onboarding_message: Option<String>,
    /// Where the customer launched the trust stack; a NULL region means the workers' default.
    pub trust_stack_name: String,
    pub trust_region: Option<Region>,
    /// The trust stack's template version at the last verification that read it.
    pub trust_template_version: Option<String>,
    pub verified_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// None: an admin token.
    pub tenant_id: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When it stops authenticating (ms since the epoch); none: it never expires.
    #[serde(default)]
    pub expires_at: Option<i64>,
}
