//! The worker daemon: apalis workers taking run jobs from the queue and executing them.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::{BackendExt, BoxDynError, Data, PollSnapshot, PollStrategy, WorkerBuilder};
use byoc_engine::CancellationToken;
use byoc_stacks::{Database, JobQueue, JobStorage, Pool, QUEUE, RunJob};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::schedule::{ScheduleConfig, run_scheduler};
use crate::{Worker, WorkerError};

/// How often unfinished runs are re-pushed.
const SWEEP: Duration = Duration::from_secs(60);
/// A second look this long after a notification: one that arrived while a fetch was in
/// flight is consumed by that fetch, which may have read the queue before the job was
/// committed.
const RECHECK: Duration = Duration::from_millis(25);
/// Backoff between restarts of a consumer that could not poll the queue.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(15);

/// Wakes the fetcher on a notification (a job pushed by this process; on Postgres, LISTEN
/// too) or on a tick (jobs pushed by other processes, notifications missed). apalis' own
/// interval strategy can lose a wake-up and stall until the next heartbeat (30 s); this one
/// drains each source until it is pending, so a waker is always registered.
struct WakeUp {
    notify: Option<BoxStream<'static, ()>>,
    tick: tokio::time::Interval,
    recheck: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WakeUp {
    fn new(notify: BoxStream<'static, ()>, every: Duration) -> WakeUp {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        WakeUp {
            notify: Some(notify),
            tick,
            recheck: None,
        }
    }
}

impl PollStrategy for WakeUp {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        while self.tick.poll_tick(cx).is_ready() {
            fired = true;
        }
        let mut notified = false;
        while let Some(s) = self.notify.as_mut() {
            match s.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => notified = true,
                // Every source died: the tick keeps the worker going.
                Poll::Ready(None) => self.notify = None,
                Poll::Pending => break,
            }
        }
        if notified {
            fired = true;
            let at = tokio::time::Instant::now() + RECHECK;
            match self.recheck.as_mut() {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.recheck = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        if let Some(sleep) = self.recheck.as_mut()
            && sleep.poll_unpin(cx).is_ready()
        {
            self.recheck = None;
            fired = true;
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// A stream yielding after each job this process pushes (pushes while it is not polled
/// coalesce into one item).
fn pushes(pushed: watch::Receiver<u64>) -> BoxStream<'static, ()> {
    futures::stream::unfold(pushed, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
    .boxed()
}

/// A job ends only with its run: any error sends it back to the queue, and the run resumes
/// from its journal wherever it is picked up again.
async fn handle(
    job: RunJob,
    worker: Data<Worker>,
    queue: Data<JobQueue>,
) -> Result<(), BoxDynError> {
    match worker.execute(&job.run_id).await {
        Ok(_) => {
            // The run has ended: the next one of its stack gets its turn.
            if let Err(e) = worker.hand_over(&queue, &job.run_id).await {
                tracing::warn!(run = %job.run_id, error = %e, "the next run of the stack waits for the sweep");
            }
            Ok(())
        }
        Err(e @ WorkerError::HandedBack(_)) => {
            // Shutting down: hold the slot until the runs in flight end, so that apalis does
            // not spin through retries of jobs this process will not run.
            worker.idle().await;
            Err(e.into())
        }
        Err(e) => {
            tracing::warn!(run = %job.run_id, error = %e, "run not finished here; back to the queue");
            Err(e.into())
        }
    }
}

/// Runs `concurrency` run jobs at a time until `shutdown` fires; then takes no more jobs,
/// lets runs waiting for their turn go back to the queue and finishes the runs in flight.
/// Schedules the environments' own drift checks (no server-wide period).
pub async fn run_daemon(
    db: Database,
    queue: JobQueue,
    worker: Worker,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let schedule = ScheduleConfig::default();
    run_daemon_with(db, queue, worker, concurrency, schedule, shutdown).await
}

/// [`run_daemon`], with the drift-check scheduler configured by `schedule`.
pub async fn run_daemon_with(
    db: Database,
    queue: JobQueue,
    worker: Worker,
    concurrency: usize,
    schedule: ScheduleConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let scheduler = tokio::spawn(run_scheduler(
        db.clone(),
        queue.clone(),
        schedule,
        shutdown.clone(),
    ));
    let sweeper = tokio::spawn({
        let (db, queue, shutdown) = (db.clone(), queue.clone(), shutdown.clone());
        async move {
            loop {
                if let Err(e) = queue.sweep(&db).await {
                    tracing::warn!(error = %e, "could not re-push unfinished runs");
                }
                tokio::select! {
                    () = tokio::time::sleep(SWEEP) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    });
    let name = worker.name().to_string();
    tracing::info!(worker = %name, concurrency, "worker started");
    // apalis stops its worker for good when the queue cannot be polled (the database is
    // restarting, say): this process starts another one, with a backoff, until shutdown.
    // Each takes a new name: jobs held under the old one are re-queued once it is seen dead.
    let mut backoff = RESTART_MIN;
    let mut attempt = 0u32;
    let result = loop {
        let label = if attempt == 0 {
            name.clone()
        } else {
            format!("{name}-r{attempt}")
        };
        let started = tokio::time::Instant::now();
        match consume(&label, &db, &queue, &worker, concurrency, &shutdown).await {
            Err(e) if !shutdown.is_cancelled() => {
                if started.elapsed() > RESTART_MAX * 2 {
                    backoff = RESTART_MIN;
                }
                tracing::warn!(worker = %label, error = %e, retry_in = ?backoff, "the queue cannot be polled; restarting the consumer");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => break Ok(()),
                }
                backoff = (backoff * 2).min(RESTART_MAX);
                attempt += 1;
            }
            other => break other,
        }
    };
    sweeper.abort();
    scheduler.abort();
    tracing::info!(worker = %name, "worker stopped");
    result
}

/// One apalis worker named `name`, until shutdown (and the runs in flight) end it or the
/// queue cannot be polled.
async fn consume(
    name: &str,
    db: &Database,
    queue: &JobQueue,
    worker: &Worker,
    concurrency: usize,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    // apalis stops its worker as soon as told, without waiting for the jobs in flight: it is
    // told only once this process's runs have ended (new jobs meanwhile are handed back).
    let stop = {
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        async move {
            worker.drained(&shutdown).await;
            Ok::<(), std::io::Error>(())
        }
    };
    let worker = worker.clone();
    // The backends' types differ, so the (identical) worker is built once per arm.
    macro_rules! run_on {
        ($backend:expr) => {
            WorkerBuilder::new(name)
                .backend($backend)
                .data(worker)
                .data(queue.clone())
                .concurrency(concurrency)
                .build(handle)
                .run_until(stop)
                .await
        };
    }
    // Jobs this process pushes wake its consumers at once; the tick finds the others'.
    let local = pushes(queue.pushed_here());
    let tick = queue.tick();
    let result = match (queue.storage().clone(), db.pool()) {
        (JobStorage::Sqlite(storage), _) => {
            run_on!(storage.poll_with_strategy(WakeUp::new(local, tick)))
        }
        (JobStorage::Postgres(storage), Pool::Postgres(pool)) => {
            // Other processes' pushes come with a NOTIFY: the tick is only a safety net.
            let listen = apalis_postgres::Pubsub::new(pool.clone(), QUEUE.into()).map(|_| ());
            let notify = futures::stream::select(local, listen).boxed();
            run_on!(storage.poll_with_strategy(WakeUp::new(notify, tick * 10)))
        }
        (JobStorage::Postgres(_), Pool::Sqlite(_)) => {
            unreachable!("the queue lives in the store's database")
        }
    };
    result.map_err(|e| WorkerError::Queue(e.to_string()))
}
