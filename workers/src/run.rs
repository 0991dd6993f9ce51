//! Executing one run: wait for the stack's turn, take its lease, plan and apply with the
//! engine on the SQL journal, renew the lease meanwhile, record events and the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use byoc_engine::{
    CancellationToken, Event, EventSink, ExecError, ExecOptions, Executor, Graph, Plan, Providers,
    Resource, RetryPolicy, RunStatus as EngineStatus, StateStore, drift, plan, plan_destroy,
    refresh,
};
use byoc_model::{
    AccountId, OnboardingStatus, Region, RunKind, RunStatus, StackName, TenantSlug, TrustProblem,
    TrustStackReport, Verdict,
};
use byoc_stacks::{
    ApprovedPlan, Begin, Database, DbError, JobQueue, Lease, RunContext, RunStore, Sealer,
};

use crate::RunFailure;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

/// Turns a stack's saved config into the desired resources and the providers that apply
/// them, and reads tenants' trust stacks. The AWS blueprint lives in byoc-components; tests
/// bring their own.
#[async_trait::async_trait]
pub trait Blueprint: Send + Sync {
    /// The desired resources of a run's stack and the providers that make them, acting in
    /// the tenant's account as `target` says.
    fn build(
        &self,
        target: &RunTarget,
        config: &Value,
    ) -> Result<(Vec<Resource>, Providers), String>;

    /// Reads the tenant's trust stack `stack_name` through its role, in `region` (`None`:
    /// the platform's default region).
    async fn read_trust_stack(
        &self,
        target: &RunTarget,
        region: Option<&str>,
        stack_name: &str,
    ) -> Result<TrustStackReport, TrustProblem> {
        let _ = (target, region, stack_name);
        Err(TrustProblem::Unreachable(
            "this worker's blueprint does not reach AWS: it cannot verify trust".into(),
        ))
    }
}

/// Who a run acts for, and where.
#[derive(Clone)]
pub struct RunTarget {
    pub stack: StackName,
    pub run_id: String,
    pub tenant_slug: TenantSlug,
    pub account_id: AccountId,
    /// Where the stack lives if it is deployed: its resources are there, whatever the config
    /// says now.
    pub region: Option<Region>,
    /// Decrypted only in memory, for the run's AssumeRole; never logged.
    pub external_id: String,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Unique per process (host, pid, random suffix).
    pub name: String,
    /// How long a lease lives without renewal; renewed every third of it.
    pub lease_ttl: Duration,
    /// How often a run waiting for its stack's turn looks again.
    pub poll: Duration,
    pub parallelism: Option<usize>,
    pub retry: RetryPolicy,
}

/// A worker name unique to this process: host, pid and a random suffix. apalis needs unique
/// names, and a restarted process must not take its dead predecessor's name (its jobs would
/// never be re-enqueued).
pub fn unique_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

impl WorkerConfig {
    pub fn new(name: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            name: name.into(),
            lease_ttl: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            parallelism: None,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] DbError),
    /// The worker is shutting down before the run could start: the job goes back to the queue.
    #[error("worker shutting down; run {0} handed back")]
    HandedBack(String),
    #[error("job queue: {0}")]
    Queue(String),
    /// The run stopped because its journal could not be written; a retry resumes it.
    #[error("run {run} interrupted: {reason}")]
    Interrupted { run: String, reason: String },
    /// Another worker took the stack over mid-run: it finishes the run.
    #[error("run {run}: lease lost to another worker ({reason})")]
    Fenced { run: String, reason: String },
}

#[derive(Clone)]
pub struct Worker {
    db: Database,
    sealer: Sealer,
    blueprint: Arc<dyn Blueprint>,
    config: WorkerConfig,
    shutdown: CancellationToken,
    /// The runs this process is executing.
    in_flight: TaskTracker,
}

/// Forwards engine events to the run's event stream through one writer task.
struct ChannelSink(mpsc::UnboundedSender<Event>);

impl EventSink for ChannelSink {
    fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

impl Worker {
    pub fn new(
        db: Database,
        sealer: Sealer,
        blueprint: Arc<dyn Blueprint>,
        config: WorkerConfig,
        shutdown: CancellationToken,
    ) -> Worker {
        Worker {
            db,
            sealer,
            blueprint,
            config,
            shutdown,
            in_flight: TaskTracker::new(),
        }
    }

    /// Resolves once `shutdown` has fired and no run is executing here any more.
    pub async fn drained(&self, shutdown: &CancellationToken) {
        shutdown.cancelled().await;
        self.idle().await;
    }

    /// Takes no more runs and resolves once none is executing here.
    pub async fn idle(&self) {
        self.in_flight.close();
        self.in_flight.wait().await;
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Runs (or resumes) `run_id` to its end. Returns its final status; `HandedBack` if the
    /// worker shuts down before the run's turn came.
    /// After `run_id` ended: pushes the job of the next run of its stack, whose turn it is.
    pub(crate) async fn hand_over(&self, queue: &JobQueue, run_id: &str) -> Result<(), DbError> {
        let stack = self.db.run(run_id).await?.stack;
        queue.push_turn(&self.db, stack.as_str()).await
    }

    pub async fn execute(&self, run_id: &str) -> Result<RunStatus, WorkerError> {
        let _in_flight = self.in_flight.token();
        if self.shutdown.is_cancelled() {
            return Err(WorkerError::HandedBack(run_id.to_string()));
        }
        let lease = loop {
            match self
                .db
                .begin_run(run_id, &self.config.name, self.config.lease_ttl)
                .await?
            {
                Begin::Started(lease) => break lease,
                Begin::CancelRequested(lease) => return self.end_cancelled(run_id, &lease).await,
                Begin::Cancelled => return Ok(RunStatus::Cancelled),
                Begin::Finished => return Ok(self.db.run(run_id).await?.status),
                Begin::Wait => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll) => {}
                () = self.shutdown.cancelled() => return Err(WorkerError::HandedBack(run_id.to_string())),
            }
        };
        tracing::info!(run = run_id, stack = %lease.stack, generation = lease.generation, "run started");
        // Which process ran (or took over) the run, for whoever reads its events.
        let taken = format!(
            "taken by worker {} (lease generation {})",
            self.config.name, lease.generation
        );
        self.note(&lease, run_id, "info", &taken, None).await;

        let cancel = CancellationToken::new();
        let fenced = Arc::new(AtomicBool::new(false));
        // Dropped with this future too (apalis may drop a job's future, as when its consumer
        // dies): a renewer outliving its run would hold the stack's lease forever.
        let renewer = AbortOnDropHandle::new(tokio::spawn(renew(
            self.db.clone(),
            lease.clone(),
            run_id.to_string(),
            self.config.lease_ttl,
            cancel.clone(),
            fenced.clone(),
        )));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_events(
            self.db.clone(),
            lease.clone(),
            run_id.to_string(),
            rx,
        ));

        let result = self
            .apply(run_id, &lease, cancel.clone(), Arc::new(ChannelSink(tx)))
            .await;
        renewer.abort();
        let _ = writer.await;

        let lost = |reason: String| WorkerError::Fenced {
            run: run_id.to_string(),
            reason,
        };
        if fenced.load(Ordering::SeqCst) {
            return Err(lost("lease renewal refused".into()));
        }
        let outcome = match result {
            Err(ExecError::Store(byoc_engine::StoreError::Fenced(reason))) => {
                return Err(lost(reason));
            }
            // The journal could not be written (database down): the run is not failed, it
            // is resumed from the journal when the job is retried and the lease has expired.
            Err(ExecError::Store(e)) => {
                return Err(WorkerError::Interrupted {
                    run: run_id.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(e) => Outcome::failed(e),
            Ok(outcome) => outcome,
        };
        let error = outcome.failure.as_ref().map(ToString::to_string);
        match self
            .db
            .finish_run(
                run_id,
                &lease,
                outcome.status,
                error.as_deref(),
                outcome.summary.as_ref(),
            )
            .await
        {
            Err(DbError::Fenced(reason)) => return Err(lost(reason)),
            other => other?,
        }
        tracing::info!(run = run_id, status = %outcome.status, "run finished");
        // A scheduled drift check that found drift may queue its repair.
        crate::schedule::after_run(&self.db, run_id, outcome.status).await;
        Ok(outcome.status)
    }

    /// Who the run acts for: its tenant's account, with the external id opened.
    fn target(&self, run_id: &str, context: &RunContext) -> Result<RunTarget, DbError> {
        Ok(RunTarget {
            stack: context.stack.clone(),
            run_id: run_id.to_string(),
            tenant_slug: context.tenant_slug.clone(),
            account_id: context.account_id.clone(),
            region: context.region.clone(),
            external_id: self
                .sealer
                .open(context.tenant_slug.as_str(), &context.sealed_external_id)?,
        })
    }

    /// A verification run: reads the tenant's trust stack and records the verdict. The run
    /// succeeds when the tenant is trusted.
    async fn verify(
        &self,
        target: &RunTarget,
        context: &RunContext,
        lease: &Lease,
    ) -> Result<Outcome, ExecError> {
        let region = context.trust_region.as_deref();
        self.note(
            lease,
            &target.run_id,
            "info",
            &format!(
                "reading the trust stack {} in account {} ({}) through the tenant's role",
                context.trust_stack_name,
                context.account_id,
                region.unwrap_or("the workers' default region"),
            ),
            None,
        )
        .await;
        let read = self
            .blueprint
            .read_trust_stack(target, region, &context.trust_stack_name)
            .await;
        let verdict = match &read {
            Ok(report) => Verdict::of_report(report, &context.tenant_slug),
            Err(problem) => match Verdict::of_problem(problem) {
                Some(verdict) => verdict,
                // Nothing learnt about the trust: the onboarding status stays as it was.
                None => {
                    return Ok(Outcome::failed(RunFailure::TrustUnreadable(
                        problem.clone(),
                    )));
                }
            },
        };
        if !self
            .db
            .record_verdict(lease, &context.sealed_external_id, &verdict)
            .await
            .map_err(exec_error)?
        {
            return Ok(Outcome::failed(RunFailure::ExternalIdRotated));
        }
        let data = json!({"verdict": verdict, "stack": read.as_ref().ok()});
        let trusted = verdict.status == OnboardingStatus::Trusted;
        let level = if trusted { "info" } else { "error" };
        let message = format!("{}: {}", verdict.status, verdict.message);
        self.note(lease, &target.run_id, level, &message, Some(&data))
            .await;
        Ok(Outcome {
            status: if trusted {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            failure: (!trusted).then(|| RunFailure::Untrusted(verdict.message)),
            summary: Some(data),
        })
    }

    /// Appends an event of the worker's own (not the engine's) to the run's stream.
    async fn note(
        &self,
        lease: &Lease,
        run_id: &str,
        level: &str,
        message: &str,
        data: Option<&Value>,
    ) {
        record_event(&self.db, lease, run_id, level, None, message, data).await;
    }

    /// Ends a run resumed after its cancel was requested, applying nothing more: what its
    /// last worker left unfinished stays in the journal for the stack's next run.
    async fn end_cancelled(&self, run_id: &str, lease: &Lease) -> Result<RunStatus, WorkerError> {
        let message = format!(
            "cancel requested before the run resumed: ended by worker {} without applying anything more",
            self.config.name
        );
        self.note(lease, run_id, "info", &message, None).await;
        match self
            .db
            .finish_run(run_id, lease, RunStatus::Cancelled, None, None)
            .await
        {
            Err(DbError::Fenced(reason)) => Err(WorkerError::Fenced {
                run: run_id.to_string(),
                reason,
            }),
            other => {
                other?;
                tracing::info!(run = run_id, "run cancelled before it resumed");
                Ok(RunStatus::Cancelled)
            }
        }
    }

    /// Plans and applies according to the run's kind. Failures the run reports (bad config,
    /// failed steps) are an `Outcome`; `Err` only when the run could not be recorded.
    async fn apply(
        &self,
        run_id: &str,
        lease: &Lease,
        cancel: CancellationToken,
        events: Arc<ChannelSink>,
    ) -> Result<Outcome, ExecError> {
        let context = match self.db.run_context(run_id).await {
            Ok(context) => context,
            Err(e) if e.is_unavailable() => return Err(exec_error(e)),
            Err(e) => return Ok(Outcome::failed(e)),
        };
        let target = match self.target(run_id, &context) {
            Ok(target) => target,
            Err(e) => return Ok(Outcome::failed(e)),
        };
        if context.kind == RunKind::Verify {
            return self.verify(&target, &context, lease).await;
        }
        match self
            .plan_and_apply(&context, &target, lease, cancel, events)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err(RunFailure::Exec(e @ ExecError::Store(_))) => Err(e),
            Err(failure) => Ok(Outcome::failed(failure)),
        }
    }

    async fn plan_and_apply(
        &self,
        context: &RunContext,
        target: &RunTarget,
        lease: &Lease,
        cancel: CancellationToken,
        events: Arc<ChannelSink>,
    ) -> Result<Outcome, RunFailure> {
        let (run_id, stack) = (target.run_id.as_str(), context.stack.as_str());
        let store = Arc::new(RunStore::new(self.db.clone(), run_id, lease.clone()));
        let snapshot = &store.load().await.map_err(ExecError::Store)?;
        let config = context
            .config
            .as_ref()
            .ok_or_else(|| RunFailure::NoConfig(stack.to_string()))?;
        let (built, providers) = self
            .blueprint
            .build(target, config)
            .map_err(RunFailure::Build)?;
        // A resumed run applies the resources its first plan was made from, even if this
        // worker's blueprint (another byoc version) would build others.
        let resources: Vec<Resource> = match &context.desired {
            Some(pinned) => serde_json::from_value(pinned.clone()).map_err(|e| {
                RunFailure::Build(format!("the run's pinned resources cannot be read: {e}"))
            })?,
            None => built,
        };
        let first_plan = context.desired.is_none() && context.approved.is_none();
        let desired = (first_plan && context.kind != RunKind::Destroy)
            .then(|| serde_json::to_value(&resources).expect("resources serialize"));
        // What is really there: a refresh reports it; a deploy or preview plans against it,
        // so what was deleted or changed outside byoc is put back (Terraform's refresh).
        let observed = match context.kind {
            RunKind::Destroy => None,
            _ if context.approved.is_some() => None,
            _ if snapshot.resources.is_empty() => None,
            _ => Some(
                refresh(
                    stack,
                    snapshot,
                    &providers,
                    self.config.parallelism,
                    &self.config.retry,
                    &cancel,
                )
                .await?,
            ),
        };
        if context.kind == RunKind::Refresh {
            let drifted = observed
                .map(|observed| drift(snapshot, &observed, &providers))
                .unwrap_or_default();
            return Ok(Outcome::succeeded(json!({ "drift": drifted })));
        }
        let p = match (context.kind, &context.approved) {
            (RunKind::Destroy, _) => plan_destroy(stack, run_id, snapshot)?,
            (_, Some(approved)) => approved_plan(context, approved)?,
            _ => plan(
                stack,
                run_id,
                &Graph::new(resources)?,
                snapshot,
                &providers,
                observed.as_ref(),
            )?,
        };
        let summary = serde_json::to_value(p.summary()).expect("summary serializes");
        let plan_json = serde_json::to_value(&p).expect("plan serializes");
        self.db
            .record_plan(run_id, lease, &plan_json, desired.as_ref())
            .await
            .map_err(exec_error)?;
        if context.kind == RunKind::Preview {
            return Ok(Outcome::succeeded(summary));
        }
        let guarded = p.needs_approval.clone();
        if context.approved.is_none() && !guarded.is_empty() {
            return Err(RunFailure::NeedsApproval(guarded));
        }
        let options = ExecOptions {
            parallelism: self.config.parallelism,
            retry: self.config.retry.clone(),
            cancel,
        };
        let executor = Executor::new(providers, store, events, options);
        let report = executor.apply(&p, snapshot).await?;
        let changes: Vec<Value> = report
            .succeeded
            .iter()
            .map(|&i| &p.steps[i])
            .filter(|s| s.operation.is_some())
            .map(|s| json!({"resource": s.resource, "action": s.action}))
            .collect();
        if !changes.is_empty() {
            let changes = Value::Array(changes);
            self.db
                .record_history(run_id, lease, &changes)
                .await
                .map_err(exec_error)?;
        }
        let status = match report.status {
            EngineStatus::Succeeded => RunStatus::Succeeded,
            EngineStatus::Failed => RunStatus::Failed,
            EngineStatus::Cancelled => RunStatus::Cancelled,
        };
        let failure = (!report.failed.is_empty()).then(|| RunFailure::Steps {
            steps: report
                .failed
                .iter()
                .map(|(i, e)| (p.steps[*i].resource.clone(), e.clone()))
                .collect(),
        });
        Ok(Outcome {
            status,
            failure,
            summary: Some(summary),
        })
    }
}

/// The plan a deploy was approved to apply, if the config and state it was made against are
/// still the run's.
fn approved_plan(context: &RunContext, approved: &ApprovedPlan) -> Result<Plan, RunFailure> {
    let stale = |why: String| RunFailure::StalePlan {
        preview: approved.preview.clone(),
        why,
    };
    if context.config_version != approved.config_version {
        return Err(stale(format!(
            "it was made with config version {}, the deploy has {}",
            approved.config_version.unwrap_or(0),
            context.config_version.unwrap_or(0)
        )));
    }
    if approved.state_version != Some(context.state_version) {
        return Err(stale(format!(
            "it was made against state version {}, the state is at {}",
            approved.state_version.unwrap_or(0),
            context.state_version
        )));
    }
    serde_json::from_value(approved.plan.clone())
        .map_err(|e| stale(format!("its stored plan cannot be read: {e}")))
}

/// How a run ended: its status, why it failed, and what it did.
struct Outcome {
    status: RunStatus,
    failure: Option<RunFailure>,
    summary: Option<Value>,
}

impl Outcome {
    fn succeeded(summary: Value) -> Outcome {
        Outcome {
            status: RunStatus::Succeeded,
            failure: None,
            summary: Some(summary),
        }
    }

    fn failed(failure: impl Into<RunFailure>) -> Outcome {
        Outcome {
            status: RunStatus::Failed,
            failure: Some(failure.into()),
            summary: None,
        }
    }
}

/// A store failure during a run, reported as the engine reports journal failures.
fn exec_error(e: DbError) -> ExecError {
    ExecError::Store(e.into())
}

/// Renews the lease every third of its lifetime and turns a cancel request into the
/// executor's cancellation; a refused renewal (takeover) cancels too and marks `fenced`.
async fn renew(
    db: Database,
    lease: Lease,
    run_id: String,
    ttl: Duration,
    cancel: CancellationToken,
    fenced: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match db.renew_lease(&lease, ttl).await {
            Err(DbError::Fenced(_)) => {
                fenced.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(run = %run_id, error = %e, "lease renewal failed; retrying"),
            Ok(()) => {}
        }
        if db.cancel_requested(&run_id).await.unwrap_or(false) {
            cancel.cancel();
        }
    }
}

async fn write_events(
    db: Database,
    lease: Lease,
    run_id: String,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    while let Some(event) = rx.recv().await {
        let (level, resource, message) = describe(&event);
        let data = serde_json::to_value(&event).ok();
        record_event(
            &db,
            &lease,
            &run_id,
            level,
            resource,
            &message,
            data.as_ref(),
        )
        .await;
    }
}

/// Appends to a run's event stream; a failure is logged, never fails the run.
async fn record_event(
    db: &Database,
    lease: &Lease,
    run_id: &str,
    level: &str,
    resource: Option<&str>,
    message: &str,
    data: Option<&Value>,
) {
    if let Err(e) = db
        .record_event(lease, run_id, level, resource, message, data)
        .await
    {
        tracing::warn!(run = %run_id, error = %e, "could not record a run event");
    }
}

fn describe(event: &Event) -> (&'static str, Option<&str>, String) {
    match event {
        Event::StepStarted {
            resource,
            action,
            attempt,
            ..
        } => (
            "info",
            Some(resource),
            format!("{action:?} started (attempt {attempt})"),
        ),
        Event::StepAdopted {
            resource,
            physical_id,
            ..
        } => (
            "info",
            Some(resource),
            format!("adopted {physical_id}, created before an interruption"),
        ),
        Event::StepRetrying {
            resource,
            error,
            delay_ms,
            ..
        } => (
            "warn",
            Some(resource),
            format!("retrying in {delay_ms} ms: {error}"),
        ),
        Event::StepSucceeded {
            resource,
            action,
            duration_ms,
            ..
        } => (
            "info",
            Some(resource),
            format!("{action:?} done in {duration_ms} ms"),
        ),
        Event::StepFailed {
            resource, error, ..
        } => ("error", Some(resource), format!("failed: {error}")),
        Event::RunFinished {
            status,
            succeeded,
            failed,
            skipped,
            duration_ms,
        } => (
            "info",
            None,
            format!(
                "run {status:?} in {duration_ms} ms: {succeeded} steps done, {failed} failed, {skipped} skipped"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn worker_names_are_unique_and_name_the_process() {
        let (a, b) = (super::unique_worker_name(), super::unique_worker_name());
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }
}
