//! Scheduled drift checks: a loop in every worker daemon that requests the refresh runs
//! falling due, and the follow-up of a scheduled check that found drift (a repair deploy,
//! when the environment asks for it).
//!
//! No duplicates however many workers or servers run it: each check is a run recorded for
//! its environment's schedule slot (`runs.schedule_slot`, unique per stack), so schedulers
//! racing for one slot record one run. Checks are ordinary refresh runs, queued like any.

use std::time::Duration;

use byoc_engine::CancellationToken;
use byoc_model::{DRIFT_CHECK_EVERY_FACT, DriftSchedule, Run, RunKind, RunStatus, SCHEDULER};
use byoc_stacks::{Database, DbError, JobQueue, Retention, now_ms};

/// How the scheduler runs.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleConfig {
    /// The server's period for environments without their own `drift_check` (minutes;
    /// `None`: they are not checked).
    pub default_every_minutes: Option<u32>,
    /// How often the scheduler looks for checks that fell due.
    pub tick: Duration,
    /// What finished long ago is deleted, once an hour (`None`: kept forever).
    pub retention: Option<Retention>,
}

impl Default for ScheduleConfig {
    fn default() -> ScheduleConfig {
        ScheduleConfig {
            default_every_minutes: None,
            tick: Duration::from_secs(30),
            retention: Some(Retention::default()),
        }
    }
}

/// How often the scheduler prunes what retention no longer keeps.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What one round of the scheduler did.
#[derive(Clone, Debug, Default)]
pub struct Round {
    /// Environments looked at (the due-listing query's rows).
    pub candidates: usize,
    /// The checks this scheduler queued (another may have queued a slot's check first).
    pub queued: Vec<Run>,
}

/// One round at `now` (Unix ms): lists the environments that may be due in one query and
/// requests a refresh for each whose slot has had none.
pub async fn tick(
    db: &Database,
    queue: &JobQueue,
    config: &ScheduleConfig,
    now: i64,
) -> Result<Round, DbError> {
    let server = config.default_every_minutes;
    let candidates = db.check_candidates(now, server.is_some()).await?;
    let mut round = Round {
        candidates: candidates.len(),
        queued: Vec::new(),
    };
    for c in candidates {
        let Some(schedule) = DriftSchedule::of(&c.config, server) else {
            continue;
        };
        if !schedule.due(c.stack.as_str(), c.last_slot, now) {
            continue;
        }
        let slot = schedule.slot_start(c.stack.as_str(), now);
        if let Some(run) = queue
            .request_scheduled(db, &c.stack, RunKind::Refresh, slot, SCHEDULER)
            .await?
        {
            tracing::info!(stack = %c.stack, run = %run.id, slot, "drift check queued");
            round.queued.push(run);
        }
    }
    Ok(round)
}

/// The scheduler's loop, until `shutdown`: a round every `config.tick` (a failed round is
/// logged and tried again at the next tick). Records the server's period for the API.
pub async fn run_scheduler(
    db: Database,
    queue: JobQueue,
    config: ScheduleConfig,
    shutdown: CancellationToken,
) {
    let every = config
        .default_every_minutes
        .map_or_else(|| "off".to_string(), |m| m.to_string());
    if let Err(e) = db.set_fact(DRIFT_CHECK_EVERY_FACT, &every).await {
        tracing::warn!(error = %e, "could not record the drift-check period");
    }
    let mut interval = tokio::time::interval(config.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = tick(&db, &queue, &config, now_ms()).await {
            tracing::warn!(error = %e, "drift-check round failed; trying again at the next tick");
        }
        let Some(retention) = config.retention else {
            continue;
        };
        if pruned_at.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            continue;
        }
        pruned_at = Some(tokio::time::Instant::now());
        match db.prune(retention, now_ms()).await {
            Ok(pruned) => tracing::info!(?pruned, "pruned what retention no longer keeps"),
            Err(e) => tracing::warn!(error = %e, "pruning failed; trying again in an hour"),
        }
    }
}

/// The follow-up of a finished run, called by the worker after recording its end: a
/// scheduled refresh that succeeded and found drift queues a deploy (requested by
/// `schedule`; it coalesces into a deploy already queued) when its environment's
/// `drift_check.repair` is on. Returns that deploy. Failures are logged: the next check
/// finds the drift again.
pub async fn after_run(db: &Database, run_id: &str, status: RunStatus) -> Option<Run> {
    if status != RunStatus::Succeeded {
        return None;
    }
    match repair(db, run_id).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(run = run_id, error = %e, "could not queue the repair of a drift");
            None
        }
    }
}

async fn repair(db: &Database, run_id: &str) -> Result<Option<Run>, DbError> {
    let Some(check) = db.scheduled_check(run_id).await? else {
        return Ok(None);
    };
    let drifted = check
        .summary
        .as_ref()
        .and_then(|s| s.get("drift"))
        .and_then(|d| d.as_array())
        .is_some_and(|d| !d.is_empty());
    // The environment's own switch only: the server's default never repairs.
    let repair = check
        .config
        .as_ref()
        .and_then(|c| DriftSchedule::of(c, None))
        .is_some_and(|s| s.repair);
    if !(drifted && repair) {
        return Ok(None);
    }
    let (run, coalesced) = JobQueue::attach(db)
        .request(db, check.stack.as_str(), RunKind::Deploy, SCHEDULER)
        .await?;
    tracing::info!(stack = %check.stack, check = run_id, run = %run.id, coalesced, "drift found: repair deploy queued");
    Ok(Some(run))
}
