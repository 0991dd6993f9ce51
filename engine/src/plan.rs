//! The planner: desired graph + recorded state -> the steps that make the cloud match.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Every choice (including the
//! idempotency tokens) is made here, so the same inputs give a byte-identical plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::Graph;
use crate::model::{Lifecycle, UNKNOWN, resolve};
use crate::provider::{Diff, Observed, Providers};
use crate::state::{Operation, ResourceState, Snapshot, base_name, deposed_key, orphan_key};

/// What happens to a resource, as a person reads the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
}

/// One executable step. A replacement is two steps (a create and a delete) sharing
/// `action: replace`; their order follows `create_before_destroy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: usize,
    pub action: Action,
    /// The provider operation this step runs; `None` for a no-op.
    pub operation: Option<Operation>,
    /// State key acted on: the logical name, or `{name}~deposed`.
    pub resource: String,
    pub kind: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldDiff>,
    /// Steps that must finish before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<usize>,
    pub token: String,
    /// The existing object (update, delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    /// Inputs as last applied (update, delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_inputs: Option<Value>,
    /// Desired inputs, references unresolved (create, update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// Create-before-destroy: the create keeps the old object as `{name}~deposed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub depose: bool,
    /// For a no-op whose object a refresh saw already as desired but recorded otherwise (an
    /// update that landed just before a crash, or the same change made outside byoc): the
    /// outputs seen, recorded with the desired inputs without a provider call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Value>,
    /// Dependencies to record with the resource's state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub stack: String,
    pub run_id: String,
    pub destroy: bool,
    pub steps: Vec<Step>,
    /// The guarded resources ([`Lifecycle::guard`]) this plan deletes, or replaces deleting
    /// the old object first: applying it needs an approval. Empty for a destroy plan, which
    /// is approved by asking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_approval: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no provider for resource type {kind:?} (resource {resource})")]
    NoProvider { kind: String, resource: String },
    #[error(
        "the plan would delete protected resource(s) {}: remove `protect` from them first",
        .0.join(", ")
    )]
    Protected(Vec<String>),
    #[error("resource {resource} ({kind}): {message}")]
    InvalidInputs {
        resource: String,
        kind: String,
        message: String,
    },
    #[error("internal error: the plan's steps form a cycle through {}", .0.join(", "))]
    Cycle(Vec<String>),
}

/// What a refresh saw of each recorded resource (by state key): `None` when it is gone.
pub type Observations = BTreeMap<String, Option<Observed>>;

/// Plans an apply: create, update, replace or keep every desired resource, and delete what
/// is recorded but no longer desired.
pub fn plan(
    stack: &str,
    run_id: &str,
    desired: &Graph,
    state: &Snapshot,
    providers: &Providers,
    observed: Option<&Observations>,
) -> Result<Plan, PlanError> {
    let mut b = Builder::new(stack, run_id, state);
    // Decide each desired resource's action, dependencies first, so that a dependency being
    // (re)created makes the references to it unknown.
    let mut decided: BTreeMap<&str, Decision> = BTreeMap::new();
    for r in desired.topological() {
        let provider = providers
            .get(&r.kind)
            .ok_or_else(|| PlanError::NoProvider {
                kind: r.kind.clone(),
                resource: r.name.clone(),
            })?;
        let known = |name: &str| match decided.get(name) {
            Some(Decision {
                action: Action::NoOp | Action::Update,
                ..
            }) => state.resources.get(name).map(|s| &s.outputs),
            _ => None,
        };
        let new = resolve(&r.inputs, &known, true).expect("unknown references are allowed");
        provider
            .check(&new)
            .map_err(|message| PlanError::InvalidInputs {
                resource: r.name.clone(),
                kind: r.kind.clone(),
                message,
            })?;
        let old = state.resources.get(&r.name);
        let seen = observed.and_then(|o| o.get(&r.name));
        let invalid = |message| PlanError::InvalidInputs {
            resource: r.name.clone(),
            kind: r.kind.clone(),
            message,
        };
        let decision = match (old, seen) {
            (None, _) => Decision::new(Action::Create, "not yet created", Vec::new()),
            (Some(_), Some(None)) => {
                Decision::new(Action::Create, "deleted outside byoc", Vec::new())
            }
            (Some(old), _) if old.kind != r.kind => Decision::new(
                Action::Replace,
                format!("type changed from {}", old.kind),
                Vec::new(),
            ),
            (Some(old), seen) => {
                let (base, drifted) = match seen {
                    Some(Some(obs))
                        if provider.diff(&old.inputs, &obs.inputs) != Diff::NoChange =>
                    {
                        (&obs.inputs, true)
                    }
                    _ => (&old.inputs, false),
                };
                let outside = if drifted { " outside byoc" } else { "" };
                let mut decision = match provider.diff(base, &new) {
                    Diff::NoChange if drifted => Decision {
                        settle: seen.cloned().flatten().map(|o| o.outputs),
                        ..Decision::new(
                            Action::NoOp,
                            "already as configured: the recorded state is brought up to date",
                            Vec::new(),
                        )
                    },
                    Diff::NoChange => Decision::new(Action::NoOp, "unchanged", Vec::new()),
                    Diff::Update(f) => {
                        provider.check_change(base, &new).map_err(invalid)?;
                        Decision::new(
                            Action::Update,
                            format!("changed{outside}: {}", f.join(", ")),
                            f,
                        )
                    }
                    Diff::Replace(f) => Decision::new(
                        Action::Replace,
                        format!(
                            "{} forces replacement{}",
                            f.join(", "),
                            if drifted {
                                " (changed outside byoc)"
                            } else {
                                ""
                            }
                        ),
                        f,
                    ),
                };
                // An update starts from what is there.
                decision.base = drifted.then(|| base.clone());
                decision.with_diff(base, &new)
            }
        };
        let mut decision = match decision.action {
            Action::Create => decision.with_diff(&Value::Null, &new),
            _ => decision,
        };
        decision.coexists = match old {
            Some(old) if decision.action == Action::Replace && old.kind == r.kind => {
                provider.coexists(&old.inputs, &new)
            }
            _ => true,
        };
        decided.insert(&r.name, decision);
    }

    let mut protected: Vec<String> = desired
        .topological()
        .filter(|r| decided[r.name.as_str()].action == Action::Replace)
        .filter(|r| r.lifecycle.protect || state.resources[&r.name].lifecycle.protect)
        .map(|r| r.name.clone())
        .chain(
            state
                .resources
                .values()
                .filter(|s| desired.get(&s.name).is_none() && s.lifecycle.protect)
                .map(|s| s.name.clone()),
        )
        .collect();
    protected.sort();
    if !protected.is_empty() {
        return Err(PlanError::Protected(protected));
    }

    // Create-before-destroy is inherited by dependencies: a resource replaced new-first cannot
    // wait for the old object of something it depends on to be deleted first.
    let mut wants_cbd: BTreeMap<&str, bool> = BTreeMap::new();
    let order: Vec<_> = desired.topological().collect();
    for r in order.iter().rev() {
        let inherited = desired.dependents(&r.name).iter().any(|d| wants_cbd[d]);
        wants_cbd.insert(&r.name, r.lifecycle.create_before_destroy || inherited);
    }
    // But a new object that cannot exist beside the old one (the same unique name) is made
    // after the old one is deleted, and so is every replaced resource depending on one made
    // so: its old object must be deleted before the old object it depends on.
    let mut cbd: BTreeMap<&str, bool> = BTreeMap::new();
    for r in &order {
        let after_old_first = desired
            .dependencies(&r.name)
            .into_iter()
            .find(|dep| decided[dep].action == Action::Replace && !cbd[dep]);
        let d = decided.get_mut(r.name.as_str()).expect("decided");
        let new_first = wants_cbd[r.name.as_str()] && d.coexists && after_old_first.is_none();
        if d.action == Action::Replace && wants_cbd[r.name.as_str()] && !new_first {
            d.reason.push_str(&match after_old_first {
                None => "; the old object goes first: the new one cannot exist beside it".into(),
                Some(dep) => format!("; the old object goes first, as {dep}'s does"),
            });
        }
        cbd.insert(&r.name, new_first);
    }

    // Leftovers first: an old object of an interrupted replacement, or a resource that left
    // the config.
    for s in state.resources.values() {
        if desired.get(&s.name).is_none() {
            let reason = if s.name.ends_with("~deposed") {
                "old object of an interrupted replacement"
            } else {
                "no longer in the config"
            };
            b.delete(&s.name, s, Action::Delete, reason.into());
        }
    }
    for r in desired.topological() {
        let d = &decided[r.name.as_str()];
        let deps: Vec<String> = desired
            .dependencies(&r.name)
            .into_iter()
            .map(String::from)
            .collect();
        let old = state.resources.get(&r.name);
        match d.action {
            Action::Replace if cbd[r.name.as_str()] => {
                let create = b.create(r, d, deps.clone(), true);
                // One deposed object at a time: an earlier one goes first.
                if let Some(&earlier) = b.deletes.get(&deposed_key(&r.name)) {
                    b.edge(earlier, create);
                }
                b.produced.insert(r.name.clone(), create);
                let old = old.expect("a replaced resource is recorded");
                let del = b.delete(
                    &deposed_key(&r.name),
                    old,
                    Action::Replace,
                    "replaced: delete the old object".into(),
                );
                b.edge(create, del);
            }
            Action::Replace => {
                let old = old.expect("a replaced resource is recorded");
                let del = b.delete(&r.name, old, Action::Replace, d.reason.clone());
                let create = b.create(r, d, deps.clone(), false);
                b.replaced_first.insert(r.name.clone());
                b.edge(del, create);
                b.produced.insert(r.name.clone(), create);
            }
            Action::Create => {
                let id = b.create(r, d, deps.clone(), false);
                b.produced.insert(r.name.clone(), id);
            }
            Action::Update | Action::NoOp => {
                let id = b.update_or_keep(r, d, old.expect("recorded"), deps.clone());
                b.produced.insert(r.name.clone(), id);
            }
            Action::Delete => unreachable!("desired resources are not deleted"),
        }
    }
    b.orphans();
    b.finish(desired, false)
}

/// Plans the deletion of everything recorded, dependents before their dependencies.
pub fn plan_destroy(stack: &str, run_id: &str, state: &Snapshot) -> Result<Plan, PlanError> {
    let protected: Vec<String> = state
        .resources
        .values()
        .filter(|s| s.lifecycle.protect)
        .map(|s| s.name.clone())
        .collect();
    if !protected.is_empty() {
        return Err(PlanError::Protected(protected));
    }
    let mut b = Builder::new(stack, run_id, state);
    for s in state.resources.values() {
        b.delete(&s.name, s, Action::Delete, "destroy".into());
    }
    b.orphans();
    b.finish(&Graph::new(Vec::new()).expect("empty graph"), true)
}

struct Decision {
    action: Action,
    reason: String,
    forcing: Vec<String>,
    diff: Vec<FieldDiff>,
    /// The inputs as a refresh saw them, when they differ from the recorded ones.
    base: Option<Value>,
    /// See [`Step::settle`].
    settle: Option<Value>,
    /// For a replacement: whether the new object can exist beside the old one.
    coexists: bool,
}

impl Decision {
    fn new(action: Action, reason: impl Into<String>, fields: Vec<String>) -> Decision {
        Decision {
            action,
            reason: reason.into(),
            forcing: if action == Action::Replace {
                fields
            } else {
                Vec::new()
            },
            diff: Vec::new(),
            base: None,
            settle: None,
            coexists: true,
        }
    }

    /// Field-level diff between top-level fields of `old` and `new`.
    fn with_diff(mut self, old: &Value, new: &Value) -> Decision {
        let empty = serde_json::Map::new();
        let (a, b) = (
            old.as_object().unwrap_or(&empty),
            new.as_object().unwrap_or(&empty),
        );
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        self.diff = keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| FieldDiff {
                field: k.clone(),
                old: a.get(k).cloned(),
                new: b.get(k).cloned(),
                forces_replacement: self.forcing.contains(k),
            })
            .collect();
        self
    }
}

/// A step with only what every step has; `Builder::push` numbers it and gives it its token.
fn blank(
    action: Action,
    operation: Option<Operation>,
    resource: &str,
    kind: &str,
    reason: String,
) -> Step {
    Step {
        id: 0,
        action,
        operation,
        resource: resource.to_string(),
        kind: kind.to_string(),
        reason,
        diff: Vec::new(),
        after: Vec::new(),
        token: String::new(),
        physical_id: None,
        old_inputs: None,
        inputs: None,
        depose: false,
        settle: None,
        depends_on: Vec::new(),
        lifecycle: Lifecycle::default(),
    }
}

struct Builder<'a> {
    stack: &'a str,
    run_id: &'a str,
    state: &'a Snapshot,
    steps: Vec<Step>,
    /// Step that makes each desired resource's current object available.
    produced: BTreeMap<String, usize>,
    /// Delete steps by the state key they delete.
    deletes: BTreeMap<String, usize>,
    /// Resources replaced delete-first.
    replaced_first: BTreeSet<String>,
    /// Cleanup steps for interrupted creates.
    orphan_steps: Vec<usize>,
}

impl<'a> Builder<'a> {
    fn new(stack: &'a str, run_id: &'a str, state: &'a Snapshot) -> Builder<'a> {
        Builder {
            stack,
            run_id,
            state,
            steps: Vec::new(),
            produced: BTreeMap::new(),
            deletes: BTreeMap::new(),
            replaced_first: BTreeSet::new(),
            orphan_steps: Vec::new(),
        }
    }

    fn push(&mut self, mut step: Step) -> usize {
        step.id = self.steps.len();
        step.token = stable_hash(
            [
                self.stack,
                self.run_id,
                &step.resource,
                step.operation.map_or("none", Operation::as_str),
            ]
            .into_iter()
            .chain(step.physical_id.as_deref()),
        );
        self.steps.push(step);
        self.steps.len() - 1
    }

    fn edge(&mut self, before: usize, after: usize) {
        self.steps[after].after.push(before);
    }

    fn create(
        &mut self,
        r: &crate::Resource,
        d: &Decision,
        deps: Vec<String>,
        depose: bool,
    ) -> usize {
        let action = if d.action == Action::Replace {
            Action::Replace
        } else {
            Action::Create
        };
        self.push(Step {
            diff: d.diff.clone(),
            inputs: Some(r.inputs.clone()),
            depose,
            depends_on: deps,
            lifecycle: r.lifecycle,
            ..blank(
                action,
                Some(Operation::Create),
                &r.name,
                &r.kind,
                d.reason.clone(),
            )
        })
    }

    fn update_or_keep(
        &mut self,
        r: &crate::Resource,
        d: &Decision,
        old: &ResourceState,
        deps: Vec<String>,
    ) -> usize {
        let update = d.action == Action::Update;
        let operation = update.then_some(Operation::Update);
        self.push(Step {
            diff: d.diff.clone(),
            physical_id: Some(old.physical_id.clone()),
            old_inputs: Some(d.base.clone().unwrap_or_else(|| old.inputs.clone())),
            settle: d.settle.clone(),
            inputs: Some(r.inputs.clone()),
            depends_on: deps,
            lifecycle: r.lifecycle,
            ..blank(d.action, operation, &r.name, &r.kind, d.reason.clone())
        })
    }

    fn delete(&mut self, key: &str, old: &ResourceState, action: Action, reason: String) -> usize {
        let id = self.push(Step {
            physical_id: Some(old.physical_id.clone()),
            old_inputs: Some(old.inputs.clone()),
            depends_on: old.depends_on.clone(),
            lifecycle: old.lifecycle,
            ..blank(action, Some(Operation::Delete), key, &old.kind, reason)
        });
        self.deletes.insert(key.to_string(), id);
        id
    }

    /// A create interrupted by a crash (journaled, never finished) may have left an object.
    /// Unless this plan creates that resource (and adopts the object), a cleanup step finds and
    /// deletes it, before any other delete: nothing can depend on an object no state knows.
    fn orphans(&mut self) {
        let mut seen = BTreeSet::new();
        for intent in self.state.pending.iter().rev() {
            if intent.operation != Operation::Create || !seen.insert(intent.resource.as_str()) {
                continue;
            }
            let created_here = self
                .steps
                .iter()
                .any(|s| s.resource == intent.resource && s.operation == Some(Operation::Create));
            if created_here {
                continue;
            }
            let reason = format!(
                "a create interrupted in run {} may have left an object",
                intent.run_id
            );
            let key = orphan_key(&intent.resource);
            let id = self.push(Step {
                old_inputs: Some(intent.inputs.clone()),
                ..blank(
                    Action::Delete,
                    Some(Operation::Delete),
                    &key,
                    &intent.kind,
                    reason,
                )
            });
            self.orphan_steps.push(id);
        }
    }

    /// Adds the ordering edges and checks the result is acyclic.
    fn finish(mut self, desired: &Graph, destroy: bool) -> Result<Plan, PlanError> {
        // Desired dependencies: a resource's object is made after those it depends on.
        for r in desired.resources() {
            let id = self.produced[&r.name];
            for dep in desired.dependencies(&r.name) {
                let before = self.produced[dep];
                self.edge(before, id);
            }
        }
        // Deletions: an object goes after everything recorded as depending on it is deleted,
        // and (unless it is replaced delete-first) after what still depends on it has moved on
        // to the new object or away from it.
        let mut recorded_dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for s in self.state.resources.values() {
            for d in &s.depends_on {
                recorded_dependents
                    .entry(d.as_str())
                    .or_default()
                    .push(&s.name);
            }
        }
        let delete_steps: Vec<(String, usize)> =
            self.deletes.iter().map(|(k, &v)| (k.clone(), v)).collect();
        for (key, id) in delete_steps {
            let base = key.trim_end_matches("~deposed");
            let delete_first = self.replaced_first.contains(&key);
            for dependent in recorded_dependents.get(base).into_iter().flatten() {
                if let Some(&other) = self.deletes.get(*dependent) {
                    self.edge(other, id);
                }
                if let Some(&other) = self.produced.get(*dependent).filter(|_| !delete_first) {
                    self.edge(other, id);
                }
            }
            if !delete_first {
                for dependent in desired.dependents(base) {
                    let other = self.produced[dependent];
                    self.edge(other, id);
                }
            }
        }
        let orphans = std::mem::take(&mut self.orphan_steps);
        let deletes: Vec<usize> = self.deletes.values().copied().collect();
        for &o in &orphans {
            for &d in &deletes {
                self.edge(o, d);
            }
        }
        for step in &mut self.steps {
            step.after.sort_unstable();
            step.after.dedup();
        }
        check_acyclic(&self.steps)?;
        let needs_approval = if destroy {
            Vec::new()
        } else {
            needing_approval(&self.steps)
        };
        Ok(Plan {
            stack: self.stack.to_string(),
            run_id: self.run_id.to_string(),
            destroy,
            steps: self.steps,
            needs_approval,
        })
    }
}

/// See [`Plan::needs_approval`].
fn needing_approval(steps: &[Step]) -> Vec<String> {
    // A replacement the resource itself asks to make new-first keeps the service up. One
    // made new-first only because a dependent is (inherited) still loses the old object's
    // state, so it needs approval as a delete-first one does.
    let new_first: BTreeSet<&str> = steps
        .iter()
        .filter(|s| s.depose && s.lifecycle.create_before_destroy)
        .map(|s| base_name(&s.resource))
        .collect();
    let names: BTreeSet<&str> = steps
        .iter()
        .filter(|s| s.lifecycle.guard)
        // The old object of a replacement already under way (approved, or new-first).
        .filter(|s| !s.resource.ends_with("~deposed"))
        .filter(|s| match s.action {
            Action::Delete => true,
            Action::Replace => !new_first.contains(base_name(&s.resource)),
            _ => false,
        })
        .map(|s| base_name(&s.resource))
        .collect();
    names.into_iter().map(str::to_string).collect()
}

fn check_acyclic(steps: &[Step]) -> Result<(), PlanError> {
    let mut g = petgraph::graph::DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = steps.iter().map(|s| g.add_node(s.id)).collect();
    for s in steps {
        for &a in &s.after {
            g.add_edge(nodes[a], nodes[s.id], ());
        }
    }
    if petgraph::algo::toposort(&g, None).is_ok() {
        return Ok(());
    }
    let scc = petgraph::algo::tarjan_scc(&g)
        .into_iter()
        .find(|c| c.len() > 1)
        .unwrap_or_default();
    let mut names: Vec<String> = scc.iter().map(|n| steps[g[*n]].resource.clone()).collect();
    names.sort();
    names.dedup();
    Err(PlanError::Cycle(names))
}

/// A deterministic hash of `parts` as 16 hex digits. Idempotency tokens are this hash of
/// (stack, run, resource, operation, object): the same on retries and resumed runs,
/// different across runs, so a later run never collides with an earlier request (AWS keeps
/// ClientTokens for a while).
pub fn stable_hash<'s>(parts: impl Iterator<Item = &'s str>) -> String {
    // FNV-1a: stable across processes and Rust versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl Plan {
    /// Counts of (create, update, replace, delete, unchanged) resources.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let mut replaced = BTreeSet::new();
        for step in &self.steps {
            match step.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
                Action::NoOp => s.unchanged += 1,
                Action::Replace => {
                    if replaced.insert(step.resource.trim_end_matches("~deposed")) {
                        s.replace += 1;
                    }
                }
            }
        }
        s
    }

    /// Whether applying the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(|s| s.action == Action::NoOp)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serializes")
    }

    /// The plan as a person reads it (like `terraform plan`).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} for stack {} (run {}):\n\n",
            if self.destroy { "Destroy plan" } else { "Plan" },
            self.stack,
            self.run_id
        );
        let mut shown = BTreeSet::new();
        let mut steps: Vec<&Step> = self.steps.iter().collect();
        steps.sort_by_key(|s| (base_name(&s.resource), s.id));
        for step in steps {
            let name = base_name(&step.resource);
            let (sign, reason) = match step.action {
                Action::NoOp => continue,
                Action::Create => ("+", step.reason.as_str()),
                Action::Update => ("~", step.reason.as_str()),
                Action::Delete => ("-", step.reason.as_str()),
                Action::Replace => {
                    if !shown.insert(name) {
                        continue;
                    }
                    let cbd = self.steps.iter().any(|s| s.resource == name && s.depose);
                    (if cbd { "+/-" } else { "-/+" }, self.replace_reason(name))
                }
            };
            out.push_str(&format!(
                "  {sign} {} ({}): {reason}\n",
                step.resource, step.kind
            ));
            for d in self.field_diffs(step, name) {
                out.push_str(&render_field(d));
            }
        }
        let s = self.summary();
        if s.create + s.update + s.replace + s.delete == 0 {
            out.push_str("  No changes.\n");
        }
        out.push_str(&format!(
            "\nPlan: {} to add, {} to change, {} to replace, {} to destroy, {} unchanged.\n",
            s.create, s.update, s.replace, s.delete, s.unchanged
        ));
        out
    }

    fn replace_reason(&self, name: &str) -> &str {
        self.steps
            .iter()
            .find(|s| s.resource == name && s.operation == Some(Operation::Create))
            .map_or("", |s| s.reason.as_str())
    }

    fn field_diffs<'s>(&'s self, step: &'s Step, name: &str) -> &'s [FieldDiff] {
        if step.action == Action::Replace {
            return self
                .steps
                .iter()
                .find(|s| s.resource == name && s.operation == Some(Operation::Create))
                .map_or(&[], |s| s.diff.as_slice());
        }
        &step.diff
    }
}

/// A value for the text rendering: unknown markers read "(known after apply)".
fn show(v: &Value) -> String {
    fn known(v: &Value) -> Value {
        match v {
            Value::Object(o) if o.contains_key(UNKNOWN) => {
                Value::String("(known after apply)".into())
            }
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), known(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(known).collect()),
            other => other.clone(),
        }
    }
    match known(v) {
        Value::String(s) if s == "(known after apply)" => s,
        other => other.to_string(),
    }
}

fn render_field(d: &FieldDiff) -> String {
    let forces = if d.forces_replacement {
        "  # forces replacement"
    } else {
        ""
    };
    match (&d.old, &d.new) {
        (None, Some(new)) => format!("      + {} = {}\n", d.field, show(new)),
        (Some(old), None) => format!("      - {} = {}\n", d.field, show(old)),
        (Some(old), Some(new)) => format!(
            "      ~ {} = {} -> {}{forces}\n",
            d.field,
            show(old),
            show(new)
        ),
        (None, None) => String::new(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}
