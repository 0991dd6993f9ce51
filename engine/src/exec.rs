//! The executor: runs a plan's steps in parallel along its DAG, journaling each provider call
//! (intent before, outcome after) so that a crash at any point can be resumed exactly.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::resolve;
use crate::plan::{Action, Plan, Step};
use crate::provider::{Created, Ctx, ErrorClass, Provider, ProviderError, Providers};
use crate::state::{
    Intent, Operation, Outcome, ResourceState, Snapshot, StateStore, StoreError, base_name,
};

/// Jittered exponential backoff for transient errors, bounded in attempts and in time.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts later than this after the first.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, or `None` when the budget is spent.
    pub fn delay(&self, attempt: u32, started: Instant) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .initial_delay
            .saturating_mul(1 << (attempt - 1).min(20));
        let cap = exp.min(self.max_delay);
        // "Equal jitter": at least half the backoff, so retries never bunch up at zero.
        let delay = cap / 2 + cap.mul_f64(fastrand::f64() / 2.0);
        (started.elapsed() + delay <= self.max_elapsed).then_some(delay)
    }
}

#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Most steps running at once; `None`: no limit (providers rate-limit themselves).
    pub parallelism: Option<usize>,
    pub retry: RetryPolicy,
    /// Cancelling stops scheduling new steps; in-flight steps finish.
    pub cancel: CancellationToken,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            parallelism: None,
            retry: RetryPolicy::default(),
            cancel: CancellationToken::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
}

/// What happened during a run, as it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StepStarted {
        step: usize,
        resource: String,
        action: Action,
        attempt: u32,
    },
    /// A create interrupted by a crash had in fact happened: its object is adopted.
    StepAdopted {
        step: usize,
        resource: String,
        physical_id: String,
    },
    StepRetrying {
        step: usize,
        resource: String,
        attempt: u32,
        error: String,
        delay_ms: u64,
    },
    StepSucceeded {
        step: usize,
        resource: String,
        action: Action,
        duration_ms: u64,
    },
    StepFailed {
        step: usize,
        resource: String,
        error: String,
        duration_ms: u64,
    },
    RunFinished {
        status: RunStatus,
        succeeded: usize,
        failed: usize,
        skipped: usize,
        duration_ms: u64,
    },
}

/// Where events go (a run's event stream, logs, a test's list).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Discards events.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _: Event) {}
}

/// Keeps events in memory.
#[derive(Default)]
pub struct EventLog(std::sync::Mutex<Vec<Event>>);

impl EventLog {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub status: RunStatus,
    pub succeeded: Vec<usize>,
    /// Failed steps with their errors.
    pub failed: Vec<(usize, String)>,
    /// Steps never started (a failure or cancellation came first).
    pub skipped: Vec<usize>,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The journal could not be written: the run stops at once, as if the process had died,
    /// and a later run resumes from what was recorded.
    #[error("run aborted: {0}")]
    Store(#[from] StoreError),
    #[error("step {step} ({resource}): no provider for resource type {kind:?}")]
    NoProvider {
        step: usize,
        resource: String,
        kind: String,
    },
}

pub struct Executor {
    providers: Providers,
    store: Arc<dyn StateStore>,
    events: Arc<dyn EventSink>,
    options: ExecOptions,
}

/// How one step ended, short of a store failure.
enum StepEnd {
    Done(Option<Value>),
    Failed(String),
}

/// What a step task needs, shared by all of them.
struct Shared {
    store: Arc<dyn StateStore>,
    events: Arc<dyn EventSink>,
    retry: RetryPolicy,
    cancel: CancellationToken,
    stack: String,
    run_id: String,
}

impl Executor {
    pub fn new(
        providers: Providers,
        store: Arc<dyn StateStore>,
        events: Arc<dyn EventSink>,
        options: ExecOptions,
    ) -> Executor {
        Executor {
            providers,
            store,
            events,
            options,
        }
    }

    /// Applies `plan`. `state` is the snapshot the plan was made from: its outputs feed
    /// references, and its pending intents tell which creates may already have happened.
    pub async fn apply(&self, plan: &Plan, state: &Snapshot) -> Result<RunReport, ExecError> {
        let started = Instant::now();
        let shared = Arc::new(Shared {
            store: self.store.clone(),
            events: self.events.clone(),
            retry: self.options.retry.clone(),
            cancel: self.options.cancel.clone(),
            stack: plan.stack.clone(),
            run_id: plan.run_id.clone(),
        });
        let n = plan.steps.len();
        let mut providers = Vec::with_capacity(n);
        for s in &plan.steps {
            let provider = match s.operation {
                None => None,
                Some(_) => Some(self.providers.get(&s.kind).cloned().ok_or_else(|| {
                    ExecError::NoProvider {
                        step: s.id,
                        resource: s.resource.clone(),
                        kind: s.kind.clone(),
                    }
                })?),
            };
            providers.push(provider);
        }
        let mut outputs: HashMap<String, Value> = state
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v.outputs.clone()))
            .collect();
        let mut waiting: Vec<usize> = plan.steps.iter().map(|s| s.after.len()).collect();
        let mut dependents = vec![Vec::new(); n];
        for s in &plan.steps {
            for &a in &s.after {
                dependents[a].push(s.id);
            }
        }
        let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let limit = self.options.parallelism.unwrap_or(usize::MAX).max(1);
        let mut tasks: JoinSet<(usize, Result<StepEnd, StoreError>)> = JoinSet::new();
        let mut report = RunReport {
            status: RunStatus::Succeeded,
            succeeded: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            duration: Duration::ZERO,
        };
        let mut started_steps = vec![false; n];

        loop {
            let stopping = !report.failed.is_empty() || shared.cancel.is_cancelled();
            while !stopping && tasks.len() < limit {
                let Some(id) = ready.pop_front() else { break };
                started_steps[id] = true;
                let step = &plan.steps[id];
                let provider = providers[id].clone();
                if provider.is_none() && step.settle.is_none() {
                    // A no-op: nothing to call, its dependents may go.
                    report.succeeded.push(id);
                    release(id, &dependents, &mut waiting, &mut ready);
                    continue;
                }
                let inputs = match step
                    .inputs
                    .as_ref()
                    .map(|i| resolve(i, &|name: &str| outputs.get(name), false))
                {
                    Some(Err(e)) => {
                        let error = format!("cannot resolve inputs: {e}");
                        self.events.emit(Event::StepFailed {
                            step: id,
                            resource: step.resource.clone(),
                            error: error.clone(),
                            duration_ms: 0,
                        });
                        report.failed.push((id, error));
                        break;
                    }
                    Some(Ok(v)) => Some(v),
                    None => None,
                };
                let pending = state.pending_create(base_name(&step.resource)).cloned();
                // Only a create or an orphan cleanup acts on an interrupted create.
                let pending = pending.filter(|_| {
                    step.operation == Some(Operation::Create) || step.resource.ends_with("~orphan")
                });
                // An interrupted update or delete of the same object is settled by this step.
                let interrupted: Vec<Intent> = state
                    .pending
                    .iter()
                    .filter(|i| i.resource == step.resource && i.operation != Operation::Create)
                    .cloned()
                    .collect();
                let (shared, step) = (shared.clone(), step.clone());
                tasks.spawn(async move {
                    let end = match provider {
                        Some(p) => run_step(&shared, p.as_ref(), &step, inputs, pending).await,
                        None => settle(&shared, &step, inputs).await,
                    };
                    let end = match end {
                        Ok(StepEnd::Done(out)) => shared
                            .close(&interrupted, &step)
                            .await
                            .map(|()| StepEnd::Done(out)),
                        other => other,
                    };
                    (step.id, end)
                });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (id, end) = joined.expect("step tasks do not panic");
            match end {
                Err(e) => {
                    tasks.abort_all();
                    return Err(e.into());
                }
                Ok(StepEnd::Done(out)) => {
                    let key = &plan.steps[id].resource;
                    match out {
                        Some(o) => outputs.insert(key.clone(), o),
                        None => outputs.remove(key),
                    };
                    report.succeeded.push(id);
                    release(id, &dependents, &mut waiting, &mut ready);
                }
                Ok(StepEnd::Failed(error)) => report.failed.push((id, error)),
            }
        }

        report.skipped = (0..n).filter(|&i| !started_steps[i]).collect();
        report.status = if !report.failed.is_empty() {
            RunStatus::Failed
        } else if !report.skipped.is_empty() {
            RunStatus::Cancelled
        } else {
            RunStatus::Succeeded
        };
        report.duration = started.elapsed();
        self.events.emit(Event::RunFinished {
            status: report.status,
            succeeded: report.succeeded.len(),
            failed: report.failed.len(),
            skipped: report.skipped.len(),
            duration_ms: millis(report.duration),
        });
        Ok(report)
    }
}

fn release(
    id: usize,
    dependents: &[Vec<usize>],
    waiting: &mut [usize],
    ready: &mut VecDeque<usize>,
) {
    for &d in &dependents[id] {
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.push_back(d);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One step: deal first with what an interrupted create may have left, then call the
/// provider with retries, journaling each attempt.
async fn run_step(
    shared: &Shared,
    provider: &dyn Provider,
    step: &Step,
    inputs: Option<Value>,
    pending: Option<Intent>,
) -> Result<StepEnd, StoreError> {
    let started = Instant::now();
    let op = step.operation.expect("no-op steps are not run");
    let inputs = inputs.unwrap_or(Value::Null);
    let mut physical_id = step.physical_id.clone().unwrap_or_default();
    let mut old = step.old_inputs.clone().unwrap_or(Value::Null);
    let done = |outputs: Option<Value>| {
        shared.events.emit(Event::StepSucceeded {
            step: step.id,
            resource: step.resource.clone(),
            action: step.action,
            duration_ms: millis(started.elapsed()),
        });
        StepEnd::Done(outputs)
    };

    if let Some(intent) = pending {
        // The process died during a create of this resource: if its object exists, it is
        // adopted (a create step) or deleted (a cleanup step), never created twice.
        let orphan = op == Operation::Delete;
        let found = match find(shared, provider, step, &intent).await {
            Ok(found) => found,
            Err(error) => return Ok(fail(shared, step, error, started)),
        };
        match found {
            None => {
                let outcome = Outcome::Failed {
                    error: "interrupted before it created anything".into(),
                };
                shared.store.record_outcome(&intent, &outcome).await?;
                if orphan {
                    return Ok(done(None));
                }
            }
            Some(created) if orphan => {
                let outcome = Outcome::Failed {
                    error: format!(
                        "interrupted; its object {} is deleted by step {}",
                        created.physical_id, step.id
                    ),
                };
                shared.store.record_outcome(&intent, &outcome).await?;
                physical_id = created.physical_id;
                old = intent.inputs.clone();
            }
            Some(created) => {
                let (outcome, outputs) = created_outcome(step, &intent.inputs, created);
                shared.store.record_outcome(&intent, &outcome).await?;
                return Ok(done(Some(outputs)));
            }
        }
    }

    let mut attempt = 0;
    loop {
        attempt += 1;
        shared.events.emit(Event::StepStarted {
            step: step.id,
            resource: step.resource.clone(),
            action: step.action,
            attempt,
        });
        let intent_inputs = if op == Operation::Create {
            inputs.clone()
        } else {
            Value::Null
        };
        let intent = shared.intent(step, op, attempt, intent_inputs);
        shared.store.record_intent(&intent).await?;
        if op == Operation::Create && attempt > 1 {
            // The last attempt failed in a way that may have created the object anyway.
            match find(shared, provider, step, &intent).await {
                Err(error) => return Ok(fail(shared, step, error, started)),
                Ok(None) => {}
                Ok(Some(created)) => {
                    let (outcome, outputs) = created_outcome(step, &inputs, created);
                    shared.store.record_outcome(&intent, &outcome).await?;
                    return Ok(done(Some(outputs)));
                }
            }
        }
        let ctx = shared.ctx(step, attempt, &step.token);
        let result = match op {
            Operation::Create => provider.create(&ctx, &inputs).await.map(|created| {
                let (outcome, outputs) = created_outcome(step, &inputs, created);
                (outcome, Some(outputs))
            }),
            Operation::Update => provider
                .update(&ctx, &physical_id, &old, &inputs)
                .await
                .map(|outputs| {
                    let created = Created {
                        physical_id: physical_id.clone(),
                        outputs: outputs.clone(),
                    };
                    (
                        Outcome::Updated {
                            state: new_state(step, &inputs, created),
                        },
                        Some(outputs),
                    )
                }),
            Operation::Delete => match provider.delete(&ctx, &physical_id, &old).await {
                Err(e) if provider.classify(&e) == ErrorClass::NotFound => {
                    Ok((Outcome::Deleted, None))
                }
                other => other.map(|()| (Outcome::Deleted, None)),
            },
        };
        let error = match result {
            Ok((outcome, outputs)) => {
                shared.store.record_outcome(&intent, &outcome).await?;
                return Ok(done(outputs));
            }
            Err(e) => e,
        };
        let class = provider.classify(&error);
        let message = describe(&error);
        let delay = match class {
            ErrorClass::Transient if !shared.cancel.is_cancelled() => {
                shared.retry.delay(attempt, started)
            }
            _ => None,
        };
        // A create that failed for good may still have made its object (a later call of the
        // create failed, or its wait was cancelled): its intent stays open, so the next run
        // adopts the object or deletes it, exactly as after a crash.
        if delay.is_some() || op != Operation::Create {
            let outcome = Outcome::Failed {
                error: message.clone(),
            };
            shared.store.record_outcome(&intent, &outcome).await?;
        }
        let Some(delay) = delay else {
            let message = match class {
                ErrorClass::Transient => format!("{message} (gave up after {attempt} attempts)"),
                ErrorClass::NotFound => {
                    format!("{message} (the object no longer exists: refresh the stack)")
                }
                ErrorClass::Permanent => message,
            };
            return Ok(fail(shared, step, message, started));
        };
        shared.events.emit(Event::StepRetrying {
            step: step.id,
            resource: step.resource.clone(),
            attempt,
            error: message,
            delay_ms: millis(delay),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.cancel.cancelled() => {
                return Ok(fail(shared, step, "cancelled while waiting to retry".into(), started));
            }
        }
    }
}

/// Records the object a refresh saw as already desired (see [`Step::settle`]).
async fn settle(
    shared: &Shared,
    step: &Step,
    inputs: Option<Value>,
) -> Result<StepEnd, StoreError> {
    let outputs = step.settle.clone().expect("a settling step");
    let intent = shared.intent(step, Operation::Update, 1, Value::Null);
    shared.store.record_intent(&intent).await?;
    let created = Created {
        physical_id: step.physical_id.clone().unwrap_or_default(),
        outputs: outputs.clone(),
    };
    let state = new_state(step, &inputs.unwrap_or(Value::Null), created);
    shared
        .store
        .record_outcome(&intent, &Outcome::Updated { state })
        .await?;
    Ok(StepEnd::Done(Some(outputs)))
}

/// The object an earlier create attempt (journaled as `intent`) may have made.
async fn find(
    shared: &Shared,
    provider: &dyn Provider,
    step: &Step,
    intent: &Intent,
) -> Result<Option<Created>, String> {
    let ctx = shared.ctx(step, intent.attempt, &intent.token);
    let found = provider
        .find_existing(&ctx, &intent.inputs)
        .await
        .map_err(|e| {
            format!(
                "looking for the object an interrupted create may have made: {}",
                describe(&e)
            )
        })?;
    if let Some(created) = &found {
        shared.events.emit(Event::StepAdopted {
            step: step.id,
            resource: step.resource.clone(),
            physical_id: created.physical_id.clone(),
        });
    }
    Ok(found)
}

impl Shared {
    fn intent(&self, step: &Step, operation: Operation, attempt: u32, inputs: Value) -> Intent {
        Intent {
            run_id: self.run_id.clone(),
            resource: step.resource.clone(),
            kind: step.kind.clone(),
            operation,
            attempt,
            token: step.token.clone(),
            inputs,
        }
    }

    /// Closes `interrupted` (intents of calls about `step`'s object that a crash cut off) now
    /// that `step` has brought the object where it should be.
    async fn close(&self, interrupted: &[Intent], step: &Step) -> Result<(), StoreError> {
        let outcome = Outcome::Failed {
            error: format!(
                "interrupted; settled by step {} of run {}",
                step.id, self.run_id
            ),
        };
        for intent in interrupted {
            self.store.record_outcome(intent, &outcome).await?;
        }
        Ok(())
    }

    fn ctx(&self, step: &Step, attempt: u32, token: &str) -> Ctx {
        Ctx {
            stack: self.stack.clone(),
            resource: base_name(&step.resource).to_string(),
            token: token.to_string(),
            attempt,
            cancel: self.cancel.clone(),
        }
    }
}

/// The outcome recording `created` (made or adopted) as the step's object, and its outputs.
fn created_outcome(step: &Step, inputs: &Value, created: Created) -> (Outcome, Value) {
    let outputs = created.outputs.clone();
    let state = new_state(step, inputs, created);
    (
        Outcome::Created {
            state,
            depose: step.depose,
        },
        outputs,
    )
}

fn new_state(step: &Step, inputs: &Value, created: Created) -> ResourceState {
    ResourceState {
        kind: step.kind.clone(),
        name: step.resource.clone(),
        physical_id: created.physical_id,
        inputs: inputs.clone(),
        outputs: created.outputs,
        depends_on: step.depends_on.clone(),
        lifecycle: step.lifecycle,
    }
}

fn fail(shared: &Shared, step: &Step, error: String, started: Instant) -> StepEnd {
    shared.events.emit(Event::StepFailed {
        step: step.id,
        resource: step.resource.clone(),
        error: error.clone(),
        duration_ms: millis(started.elapsed()),
    });
    StepEnd::Failed(error)
}

/// The error with its chain of causes, on one line.
fn describe(e: &ProviderError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
