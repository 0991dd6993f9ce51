//! The HTTP contract: every request and response body of `/api/v1`, shared by the API (which
//! serves and documents them in `/openapi.json`) and the CLI (which decodes them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::names::LABEL_NAME_PATTERN;
use crate::{
    AccountId, ApiToken, AuditEntry, EnvName, EnvironmentConfig, EnvironmentRecord, HistoryEntry,
    Region, ResourceRecord, Run, RunEvent, RunId, RunKind, RunStatus, StackName, StackStatus,
    Tenant, TenantSlug,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// A person's name for the tenant: 1 to 200 characters, no control characters, no
    /// leading or trailing whitespace.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub name: String,
    pub slug: TenantSlug,
    /// The customer's AWS account.
    pub aws_account_id: AccountId,
    /// At most 50; keys and values are Kubernetes label names (values may be empty).
    #[serde(default)]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
}

/// The schema of tenant labels: [`crate::validate_labels`]' rules.
fn labels_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let name = |pattern: String| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build()
    };
    let value_pattern = format!(
        "^({})?$",
        LABEL_NAME_PATTERN
            .trim_start_matches('^')
            .trim_end_matches('$')
    );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(name(LABEL_NAME_PATTERN.to_string())))
        .additional_properties(Some(utoipa::openapi::schema::Schema::Object(name(
            value_pattern,
        ))))
        .max_properties(Some(crate::MAX_LABELS))
        .build()
}

/// What the customer needs to launch the trust stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrustInfo {
    /// The role the customer's trust stack creates and the workers assume.
    pub role_name: String,
    pub external_id: String,
    /// The account the role trusts; known once a worker has recorded it (or from config).
    pub platform_account_id: Option<String>,
    /// Where the trust template is served.
    pub template_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantCreated {
    pub tenant: Tenant,
    /// Shown this once; byoc keeps it sealed.
    pub external_id: String,
    pub trust: TrustInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantPage {
    pub tenants: Vec<Tenant>,
    /// The cursor of the next page (`?after=`), when there may be one.
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantDetail {
    pub tenant: Tenant,
    /// The tenant's environments (those with a saved config).
    pub environments: Vec<EnvName>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExternalIdRotated {
    /// Shown this once.
    pub external_id: String,
    pub note: String,
}

/// The parameters to launch the trust template with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TrustParameters {
    pub trusted_account_id: Option<String>,
    pub role_name: String,
    /// The tenant's slug: byoc's stacks in the account are `{slug}-{env}`, and the template
    /// scopes what its role may delete to clusters so named.
    pub tenant_slug: TenantSlug,
    /// A reminder: the external id is shown only at creation and rotation.
    pub external_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrustTemplate {
    pub tenant: TenantSlug,
    pub account_id: AccountId,
    pub template_version: String,
    pub stack_name: String,
    /// The CloudFormation template (YAML).
    pub template: String,
    pub parameters: TrustParameters,
    /// An AWS console quick-create link, when the template is published.
    pub quick_create_url: Option<String>,
}

/// Where the customer launched the trust stack; what is left out keeps the tenant's recorded
/// location (at first: stack `byoc-trust` in the workers' default region).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyTrust {
    /// The region the trust stack is in, e.g. `eu-west-1`.
    pub region: Option<Region>,
    /// The trust stack's name (CloudFormation's rule: a letter, then letters, digits, '-').
    #[schema(pattern = r"^[A-Za-z][A-Za-z0-9-]{0,127}$")]
    pub stack_name: Option<String>,
}

/// What a deploy applies: the config as saved (no body), or exactly the plan of a preview
/// (`terraform apply plan.out`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// A succeeded preview's run id: the deploy applies its plan, or is refused (409) if the
    /// config or the state changed since. The way to approve replacing or deleting guarded
    /// resources (the preview's `needs_approval`).
    pub plan_id: Option<RunId>,
}

/// A run recorded and queued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunAccepted {
    pub run_id: RunId,
    pub status: RunStatus,
    pub kind: RunKind,
    /// The request joined the stack's latest run, queued and of the same kind (for a
    /// deploy, of the same `plan_id`): the run id is that run's.
    #[serde(default)]
    pub coalesced: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigSaved {
    pub env: EnvName,
    pub version: i64,
    /// The effective config: what was sent with every default filled in.
    pub config: EnvironmentConfig,
}

/// The config of an environment, as saved.
pub type ConfigView = EnvironmentRecord;

/// What the last refresh found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DriftCheck {
    pub run_id: RunId,
    pub checked_at: Option<i64>,
    /// The refresh's drift report (changed fields and deletions by resource).
    pub drift: Option<Value>,
    /// How many resources drifted.
    pub drifted: u32,
    /// Whether the drift-check schedule requested it (`false`: someone did).
    pub scheduled: bool,
}

/// An environment's drift-check schedule (its `drift_check`, or the server's
/// `--drift-check-every`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DriftScheduleView {
    #[schema(minimum = 5, maximum = 10080)]
    pub every_minutes: u32,
    /// A check that finds drift queues a deploy.
    pub repair: bool,
    pub source: crate::ScheduleSource,
    /// When the next check falls due (Unix ms). Checks run while the environment is deployed
    /// and its tenant trusted, and wait for a run queued or running to end.
    pub next_due_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentStatus {
    pub status: StackStatus,
    /// Outputs worth a glance (ids, ARNs, endpoints), by resource.
    pub outputs: BTreeMap<String, BTreeMap<String, Value>>,
    /// What the last refresh found.
    pub drift: Option<DriftCheck>,
    /// The drift-check schedule; `None`: not checked on a schedule.
    pub drift_schedule: Option<DriftScheduleView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateView {
    pub stack: StackName,
    pub resources: Vec<ResourceRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<Run>,
    /// The `before` of the next page, if there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    pub stack: StackName,
    /// Newest first.
    pub versions: Vec<HistoryEntry>,
    /// The `before` of the next page, if there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// The state of a stack at one state version: every resource as the run that made the
/// version left it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateVersionView {
    pub stack: StackName,
    /// 0 is the empty state before the first recorded change.
    pub version: i64,
    /// The run that made this version (none for version 0).
    pub run_id: Option<RunId>,
    /// When it was recorded, Unix milliseconds (none for version 0).
    pub at: Option<i64>,
    /// By key.
    pub resources: Vec<ResourceRecord>,
}

/// What happened to a resource between two state versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceChange {
    /// In `to` only.
    Added,
    /// In `from` only.
    Removed,
    /// In both, with a different physical id, kind, status, input or output.
    Changed,
}

/// A recorded value that differs between two versions; `old` or `new` is absent where the
/// field is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValueChange {
    /// Dotted path, e.g. `scaling.desired_size` (an array is one value).
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// One resource that differs between two state versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceDiff {
    /// The state key.
    pub key: String,
    pub change: ResourceChange,
    /// The resource type in `to` (in `from` for a removed one).
    pub kind: String,
    /// The physical id in `from`; none for an added resource.
    pub old_physical_id: Option<String>,
    /// The physical id in `to`; none for a removed resource.
    pub new_physical_id: Option<String>,
    /// A changed resource got a new cloud object (a replacement).
    pub physical_id_changed: bool,
    /// Input fields that changed (a changed resource only).
    pub inputs: Vec<ValueChange>,
    /// Output fields that changed (a changed resource only).
    pub outputs: Vec<ValueChange>,
    /// `kind` or `status`, if they changed (a changed resource only).
    pub attributes: Vec<ValueChange>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiffCounts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

/// How the state at version `to` differs from the state at version `from`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateDiff {
    pub stack: StackName,
    pub from: i64,
    pub to: i64,
    /// The resources that differ, by key; unchanged ones are only counted.
    pub resources: Vec<ResourceDiff>,
    pub counts: DiffCounts,
}

impl StateDiff {
    /// The difference from the state `from` to the state `to` (of the same stack).
    pub fn between(from: &StateVersionView, to: &StateVersionView) -> StateDiff {
        let old: BTreeMap<&str, &ResourceRecord> =
            from.resources.iter().map(|r| (r.key.as_str(), r)).collect();
        let new: BTreeMap<&str, &ResourceRecord> =
            to.resources.iter().map(|r| (r.key.as_str(), r)).collect();
        let keys: std::collections::BTreeSet<&str> =
            old.keys().chain(new.keys()).copied().collect();
        let mut counts = DiffCounts::default();
        let mut resources = Vec::new();
        for key in keys {
            let diff = match (old.get(key), new.get(key)) {
                (None, Some(n)) => {
                    counts.added += 1;
                    ResourceDiff {
                        key: key.to_string(),
                        change: ResourceChange::Added,
                        kind: n.kind.clone(),
                        old_physical_id: None,
                        new_physical_id: Some(n.physical_id.clone()),
                        physical_id_changed: false,
                        inputs: vec![],
                        outputs: vec![],
                        attributes: vec![],
                    }
                }
                (Some(o), None) => {
                    counts.removed += 1;
                    ResourceDiff {
                        key: key.to_string(),
                        change: ResourceChange::Removed,
                        kind: o.kind.clone(),
                        old_physical_id: Some(o.physical_id.clone()),
                        new_physical_id: None,
                        physical_id_changed: false,
                        inputs: vec![],
                        outputs: vec![],
                        attributes: vec![],
                    }
                }
                (Some(o), Some(n)) => {
                    let mut inputs = Vec::new();
                    value_changes("", Some(&o.inputs), Some(&n.inputs), &mut inputs);
                    let mut outputs = Vec::new();
                    value_changes("", Some(&o.outputs), Some(&n.outputs), &mut outputs);
                    let mut attributes = Vec::new();
                    for (field, a, b) in
                        [("kind", &o.kind, &n.kind), ("status", &o.status, &n.status)]
                    {
                        if a != b {
                            attributes.push(ValueChange {
                                field: field.into(),
                                old: Some(a.as_str().into()),
                                new: Some(b.as_str().into()),
                            });
                        }
                    }
                    let physical_id_changed = o.physical_id != n.physical_id;
                    if !physical_id_changed
                        && inputs.is_empty()
                        && outputs.is_empty()
                        && attributes.is_empty()
                    {
                        counts.unchanged += 1;
                        continue;
                    }
                    counts.changed += 1;
                    ResourceDiff {
                        key: key.to_string(),
                        change: ResourceChange::Changed,
                        kind: n.kind.clone(),
                        old_physical_id: Some(o.physical_id.clone()),
                        new_physical_id: Some(n.physical_id.clone()),
                        physical_id_changed,
                        inputs,
                        outputs,
                        attributes,
                    }
                }
                (None, None) => continue,
            };
            resources.push(diff);
        }
        StateDiff {
            stack: to.stack.clone(),
            from: from.version,
            to: to.version,
            resources,
            counts,
        }
    }
}

/// The fields under `path` that differ between `old` and `new`: objects are walked key by
/// key, anything else (arrays included) compared whole.
fn value_changes(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<ValueChange>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for key in keys {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                value_changes(&field, o.get(key), n.get(key), out);
            }
        }
        _ => out.push(ValueChange {
            field: if path.is_empty() {
                ".".into()
            } else {
                path.into()
            },
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

/// `POST .../unlock`: what to break.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// Break the lease even while it is live (its holder renewed it recently): only when the
    /// holder is known dead or stuck. Its writes are refused from then on either way.
    #[serde(default)]
    pub force: bool,
}

/// The lease a force-unlock broke.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Unlocked {
    pub stack: StackName,
    /// The worker that held the lease.
    pub holder: String,
    /// The broken lease's generation: every write carrying it is refused from now on.
    pub generation: i64,
    /// The stack's generation now (the broken one + 1).
    pub new_generation: i64,
    /// When the broken lease was due to expire, Unix milliseconds.
    pub expires_at: Option<i64>,
    /// The lease was still live: broken only because `force` was given.
    pub was_live: bool,
    /// The run that was running under the lease: it stays `running` and resumes from its
    /// journal when a worker picks its job up again; cancel it to stop it.
    pub run_id: Option<RunId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    pub id: String,
    pub kind: String,
    pub physical_id: String,
}

/// From a dependency to what depends on it (the order of creation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphView {
    pub stack: StackName,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// What a plan does to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// Dotted path of the input, e.g. `scaling.desired_size`.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// `{"$unknown": ...}` where the value is known only after apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    #[serde(default)]
    pub forces_replacement: bool,
}

/// One step of a plan. A replacement is two steps (a create and a delete) sharing
/// `action: replace`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanStep {
    pub id: usize,
    pub action: PlanAction,
    /// The state key acted on.
    pub resource: String,
    pub kind: String,
    pub reason: String,
    #[serde(default)]
    pub diff: Vec<FieldChange>,
    /// Ids of the steps that finish before this one starts.
    #[serde(default)]
    pub after: Vec<usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanCounts {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// A run's plan as it was made: a stable view, whatever the engine keeps internally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub destroy: bool,
    pub steps: Vec<PlanStep>,
    pub counts: PlanCounts,
    /// Guarded resources (cluster, VPC, node groups, OIDC provider) the plan replaces or
    /// deletes: a deploy applies it only as an approved plan (`POST .../deploy` with
    /// `{"plan_id": <this preview's run id>}`).
    #[serde(default)]
    pub needs_approval: Vec<String>,
}

impl PlanView {
    /// The view of a plan stored as the engine's JSON (its other fields are left out).
    pub fn from_stored(plan: &Value) -> Result<PlanView, serde_json::Error> {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(default)]
            destroy: bool,
            steps: Vec<PlanStep>,
            #[serde(default)]
            needs_approval: Vec<String>,
        }
        let stored: Stored = serde_json::from_value(plan.clone())?;
        let steps = stored.steps;
        let mut counts = PlanCounts::default();
        // A replacement is two steps: count the resource once.
        let mut replaced = std::collections::BTreeSet::new();
        for step in &steps {
            match step.action {
                PlanAction::Create => counts.create += 1,
                PlanAction::Update => counts.update += 1,
                PlanAction::Delete => counts.delete += 1,
                PlanAction::NoOp => counts.unchanged += 1,
                PlanAction::Replace => {
                    let base = step.resource.split('~').next().unwrap_or(&step.resource);
                    if replaced.insert(base.to_string()) {
                        counts.replace += 1;
                    }
                }
            }
        }
        Ok(PlanView {
            destroy: stored.destroy,
            steps,
            counts,
            needs_approval: stored.needs_approval,
        })
    }

    /// Steps that change something.
    pub fn changes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.action != PlanAction::NoOp)
            .count()
    }

    /// The plan as terraform-like text: a line per resource changed (`+` create, `~` update,
    /// `-/+` replace, `+/-` replace with the new object first, `-` delete) with its field
    /// changes, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut steps: Vec<&PlanStep> = self
            .steps
            .iter()
            .filter(|s| s.action != PlanAction::NoOp)
            .collect();
        steps.sort_by_key(|s| (Self::base_name(&s.resource), s.id));
        let mut replaced = std::collections::BTreeSet::new();
        for step in steps {
            let name = Self::base_name(&step.resource);
            let (sign, shown) = match step.action {
                PlanAction::Create => ("+", step),
                PlanAction::Update => ("~", step),
                PlanAction::Delete => ("-", step),
                PlanAction::NoOp => continue,
                PlanAction::Replace => {
                    if !replaced.insert(name) {
                        continue; // its other step is shown already
                    }
                    self.replacement(name)
                }
            };
            out.push_str(&format!(
                "  {sign} {} ({}): {}\n",
                shown.resource, shown.kind, shown.reason
            ));
            for change in &shown.diff {
                let (old, new) = (change.old.as_ref(), change.new.as_ref());
                Self::render_change(&change.field, old, new, change.forces_replacement, &mut out);
            }
        }
        if !self.needs_approval.is_empty() {
            out.push_str(&format!(
                "\n! Needs approval: this plan replaces or deletes {}. Deploy exactly this plan to apply it.\n",
                self.needs_approval.join(", ")
            ));
        }
        let c = &self.counts;
        if c.create + c.update + c.replace + c.delete == 0 {
            out.push_str(&format!("No changes. {} unchanged.\n", c.unchanged));
        } else {
            out.push_str(&format!(
                "\nPlan: {} to create, {} to update, {} to replace, {} to delete.\n",
                c.create, c.update, c.replace, c.delete
            ));
        }
        out
    }

    /// A replaced resource's sign and the step that tells why: the create of the new object,
    /// which carries the diff. With the old object kept as `{name}~deposed` until the new
    /// one exists, the replacement goes new-first (`+/-`).
    fn replacement(&self, name: &str) -> (&'static str, &PlanStep) {
        let steps = || {
            self.steps
                .iter()
                .filter(|s| s.action == PlanAction::Replace)
        };
        let new_first = steps().any(|s| s.resource == format!("{name}~deposed"));
        let of_name = || steps().filter(|s| s.resource == name);
        let shown = of_name()
            .find(|s| !s.diff.is_empty())
            .or_else(|| of_name().next())
            .or_else(|| steps().find(|s| Self::base_name(&s.resource) == name))
            .expect("a replacement has a step of its resource");
        (if new_first { "+/-" } else { "-/+" }, shown)
    }

    /// A state key without its `~deposed` / `~orphan` suffix.
    fn base_name(key: &str) -> &str {
        key.split('~').next().unwrap_or(key)
    }

    /// A field's change as a line; a changed object as a line per changed field inside it
    /// (`~ scaling.desired_size = 2 -> 3`).
    fn render_change(
        field: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        forces_replacement: bool,
        out: &mut String,
    ) {
        let forces = if forces_replacement {
            "  # forces replacement"
        } else {
            ""
        };
        match (old, new) {
            (Some(Value::Object(old)), Some(Value::Object(new)))
                if !old.contains_key("$unknown") && !new.contains_key("$unknown") =>
            {
                let keys: std::collections::BTreeSet<&String> =
                    old.keys().chain(new.keys()).collect();
                for key in keys {
                    let (old, new) = (old.get(key), new.get(key));
                    if old != new {
                        let field = format!("{field}.{key}");
                        Self::render_change(&field, old, new, forces_replacement, out);
                    }
                }
            }
            (None, Some(new)) => out.push_str(&format!("      + {field} = {}\n", Self::show(new))),
            (Some(old), None) => {
                out.push_str(&format!("      - {field} = {}{forces}\n", Self::show(old)))
            }
            (Some(old), Some(new)) => out.push_str(&format!(
                "      ~ {field} = {} -> {}{forces}\n",
                Self::show(old),
                Self::show(new)
            )),
            (None, None) => {}
        }
    }

    /// A value as JSON text, `{"$unknown": ...}` read as "(known after apply)".
    fn show(value: &Value) -> String {
        const UNKNOWN: &str = "(known after apply)";
        fn known(v: &Value) -> Value {
            match v {
                Value::Object(o) if o.contains_key("$unknown") => UNKNOWN.into(),
                Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), known(v))).collect(),
                Value::Array(items) => items.iter().map(known).collect(),
                other => other.clone(),
            }
        }
        match known(value) {
            Value::String(s) if s == UNKNOWN => s,
            other => other.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    pub run: Run,
    /// The plan, once the run has made it.
    pub plan: Option<PlanView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    pub run: Run,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub run_id: RunId,
    pub status: RunStatus,
    pub events: Vec<RunEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 64 characters, no control characters, no leading or trailing whitespace.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub name: String,
    /// A tenant slug: the token acts on that tenant only. Absent: an admin token.
    pub tenant: Option<TenantSlug>,
    /// Days until it expires (1 to 3650). Absent: it never expires.
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    pub expires_in_days: Option<u32>,
}

/// A whole number as JSON Schema's `integer` has it: `231.0` is one too.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "{n} is not a whole number of days"
        )));
    }
    Ok(Some(n as u32))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub token: ApiToken,
    /// `byoc_{id}_{secret}`, shown this once.
    pub secret: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<ApiToken>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub token: ApiToken,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page (`?before=`).
    pub next_before: Option<i64>,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code: `invalid`, `malformed`, `not_found`, `conflict`,
    /// `stack_name_taken`, `not_trusted`, `too_many_requests`, `too_many_runs`,
    /// `unavailable`, `internal`, ...
    pub error: String,
    pub message: String,
    /// The field a validation error is about (a dotted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's `x-request-id`, on server faults: the logs say more under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod whole_number_tests {
    use super::CreateToken;

    #[test]
    fn days_are_whole_numbers_written_either_way() {
        let parse = |v: serde_json::Value| serde_json::from_value::<CreateToken>(v);
        let days = |v| parse(serde_json::json!({"name": "ci", "expires_in_days": v}));
        assert_eq!(
            days(serde_json::json!(30)).unwrap().expires_in_days,
            Some(30)
        );
        assert_eq!(
            days(serde_json::json!(231.0)).unwrap().expires_in_days,
            Some(231)
        );
        assert!(days(serde_json::json!(1.5)).is_err());
        assert!(days(serde_json::json!(-1)).is_err());
        let none = parse(serde_json::json!({"name": "ci"})).unwrap();
        assert_eq!(none.expires_in_days, None);
    }
}
