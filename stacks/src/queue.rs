//! The queue's producer side. A run is recorded in `runs` (the truth about it) and its job
//! pushed to apalis (which only carries the run id, keyed by it) in one place.

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::db::{Pool, with_pool};
use crate::tenants::TrustLocation;
use crate::{Database, DbError};
use byoc_model::Run;
use byoc_model::{RunKind, StackName, TenantSlug};

/// The apalis queue byoc's runs go through.
pub const QUEUE: &str = "byoc-runs";

/// A run's job: only its id. Everything else is read from the store when it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: String,
}

/// The queue of run jobs: apalis storage on the store's own database, and the wake-up of
/// this process's consumers of it.
#[derive(Clone)]
pub struct JobQueue {
    storage: JobStorage,
    pushed: JobsPushed,
    tick: Duration,
}

/// apalis storage on the store's own database.
#[derive(Clone)]
pub enum JobStorage {
    Sqlite(SqliteStorage<RunJob>),
    Postgres(PostgresStorage<RunJob>),
}

/// The in-process wake-up of a database's queue consumers: every job pushed through a
/// [`JobQueue`] of a [`Database`] (or of a clone of it) wakes, at once, the consumers this
/// process runs on it. Consumers in other processes learn of the job by polling (SQLite has
/// no notification across processes) or from Postgres' NOTIFY.
#[derive(Clone, Debug)]
pub struct JobsPushed(Arc<watch::Sender<u64>>);

impl Default for JobsPushed {
    fn default() -> JobsPushed {
        JobsPushed(Arc::new(watch::Sender::new(0)))
    }
}

impl JobsPushed {
    /// Tells every subscriber that a job was pushed (after it was committed).
    fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a change whenever a job is pushed after this call or after the
    /// receiver last looked (pushes while it is not looking are one change, never lost).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// How workers poll and watch each other; see the queue notes in docs/internals.md.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Jobs a worker fetches (and locks) at a time: its concurrency, so none wait locked.
    pub batch: usize,
    /// A worker missing two heartbeats is dead: its jobs go back to the queue.
    pub heartbeat: Duration,
    /// How often a worker on SQLite looks for jobs nothing woke it for: those pushed by
    /// another process (a push in this process wakes its workers at once,
    /// [`JobsPushed`]). On Postgres, where NOTIFY announces every push, ten times as long.
    pub tick: Duration,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            batch: 4,
            heartbeat: Duration::from_secs(30),
            tick: Duration::from_millis(100),
        }
    }
}

/// Runs decide their own end; a job is retried until its run has finished.
const MAX_ATTEMPTS: usize = 1_000_000;

impl JobQueue {
    /// Creates apalis' tables (beside byoc's, with their own migrations table) and the
    /// storage handle.
    pub async fn setup(db: &Database, config: QueueConfig) -> Result<JobQueue, DbError> {
        let failed = |e: String| DbError::Invalid(format!("setting up the job queue: {e}"));
        let storage = match db.pool() {
            Pool::Sqlite(pool) => {
                // apalis-sqlite would share sqlx's default `_sqlx_migrations` with byoc's own
                // migrations, and each migrator refuses the other's versions.
                let mut migrations = SqliteStorage::<()>::migrations();
                migrations.dangerous_set_table_name("_apalis_migrations");
                migrations
                    .run(pool)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let cfg = apalis_sqlite::Config::default()
                    .queue(QUEUE)
                    .batch_size(config.batch)
                    .heartbeat_interval(config.heartbeat)
                    .missed_heartbeats(2);
                JobStorage::Sqlite(SqliteStorage::new(pool).with_config(cfg))
            }
            Pool::Postgres(pool) => {
                // Its own schema `apalis` and migrations table.
                PostgresStorage::setup(pool)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                // Postgres' default is 10 missed heartbeats (5 minutes); be as quick as SQLite.
                let cfg = apalis_postgres::Config::default()
                    .queue(QUEUE)
                    .batch_size(config.batch)
                    .heartbeat_interval(config.heartbeat)
                    .missed_heartbeats(2);
                JobStorage::Postgres(PostgresStorage::new(pool).with_config(cfg))
            }
        };
        Ok(JobQueue {
            storage,
            pushed: db.jobs_pushed().clone(),
            tick: config.tick,
        })
    }

    /// The storage, for the consumers.
    pub fn storage(&self) -> &JobStorage {
        &self.storage
    }

    /// Fires when this process pushes a job to this queue (through any handle on the same
    /// [`Database`]).
    pub fn pushed_here(&self) -> watch::Receiver<u64> {
        self.pushed.subscribe()
    }

    /// How often a consumer polls for jobs nothing announced ([`QueueConfig::tick`]).
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Pushes the job of `run_id`. Pushing it again is harmless (the idempotency key is the
    /// run id), which lets a sweeper repair a crash between recording a run and pushing it.
    pub async fn push(&self, run_id: &str) -> Result<(), DbError> {
        let task = TaskBuilder::new(RunJob {
            run_id: run_id.to_string(),
        })
        .idempotency_key(run_id)
        .max_attempts(MAX_ATTEMPTS)
        .build();
        let result = match &self.storage {
            // A duplicate is ignored by apalis-sqlite.
            JobStorage::Sqlite(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
            JobStorage::Postgres(s) => match s.clone().push_task(task).await {
                Err(apalis::prelude::TaskSinkError::PushError(
                    apalis_postgres::Error::Database(sqlx::Error::Database(e)),
                )) if e.is_unique_violation() => Ok(()),
                other => other.map_err(|e| e.to_string()),
            },
        };
        result.map_err(|e| DbError::Invalid(format!("pushing the job of run {run_id}: {e}")))?;
        // Committed: this process's consumers look now rather than at their next tick.
        self.pushed.notify();
        Ok(())
    }

    /// Pushes the job of the run whose turn it is on `stack` (its earliest unfinished run),
    /// if any. A run is handed to the workers only when its turn comes: one waiting behind
    /// another run of its stack holds no worker slot, so a tenant queueing runs on one
    /// stack cannot keep the others waiting. Called after a run is requested (it may be
    /// first) and after one ends (the next one's turn comes); both write, then look, so a
    /// run requested as another ends is pushed by one of them.
    pub async fn push_turn(&self, db: &Database, stack: &str) -> Result<(), DbError> {
        match db.stack_turn(stack).await? {
            Some(run_id) => self.push(&run_id).await,
            None => Ok(()),
        }
    }

    /// Records a run request and queues its job when its turn comes; a request that joined
    /// a queued run of the same kind returns that run (and `true`).
    pub async fn request(
        &self,
        db: &Database,
        stack: &str,
        kind: RunKind,
        requested_by: &str,
    ) -> Result<(Run, bool), DbError> {
        let requested = db.request_run(stack, kind, requested_by).await?;
        self.push_new(db, stack, requested).await
    }

    /// Records a deploy of exactly the plan of preview `plan_id` and queues its job
    /// ([`Database::request_approved_deploy`]); joining the queued deploy of that plan, it
    /// queues nothing new.
    pub async fn request_approved(
        &self,
        db: &Database,
        stack: &str,
        plan_id: &str,
        requested_by: &str,
    ) -> Result<(Run, bool), DbError> {
        let requested = db
            .request_approved_deploy(stack, plan_id, requested_by)
            .await?;
        self.push_new(db, stack, requested).await
    }

    /// Queues the job of a run just recorded when its turn comes; a joined one is queued
    /// already.
    async fn push_new(
        &self,
        db: &Database,
        stack: &str,
        (run, joined): (Run, bool),
    ) -> Result<(Run, bool), DbError> {
        if !joined {
            self.push_turn(db, stack).await?;
        }
        Ok((run, joined))
    }

    /// A handle for pushing jobs (not consuming them) on a database whose queue was set up
    /// ([`JobQueue::setup`], by this process or another): no migrations, no I/O.
    pub fn attach(db: &Database) -> JobQueue {
        let storage = match db.pool() {
            Pool::Sqlite(pool) => JobStorage::Sqlite(
                SqliteStorage::new(pool).with_config(apalis_sqlite::Config::default().queue(QUEUE)),
            ),
            Pool::Postgres(pool) => JobStorage::Postgres(
                PostgresStorage::new(pool)
                    .with_config(apalis_postgres::Config::default().queue(QUEUE)),
            ),
        };
        JobQueue {
            storage,
            pushed: db.jobs_pushed().clone(),
            tick: QueueConfig::default().tick,
        }
    }

    /// Records the run of `stack`'s schedule slot `slot` and queues its job; `None` (nothing
    /// queued) if the slot has its run already or the stack has a run queued or running
    /// ([`Database::request_scheduled_run`]).
    pub async fn request_scheduled(
        &self,
        db: &Database,
        stack: &StackName,
        kind: RunKind,
        slot: i64,
        requested_by: &str,
    ) -> Result<Option<Run>, DbError> {
        let run = db
            .request_scheduled_run(stack, kind, slot, requested_by)
            .await?;
        if run.is_some() {
            self.push_turn(db, stack.as_str()).await?;
        }
        Ok(run)
    }

    /// Requests a verification of `slug`'s trust, looking for its trust stack where
    /// `location` says (what it leaves out stays as recorded); `true` when it joined a
    /// verification still queued, which reads the location when it runs.
    pub async fn verify(
        &self,
        db: &Database,
        slug: &TenantSlug,
        location: &TrustLocation,
        requested_by: &str,
    ) -> Result<(Run, bool), DbError> {
        let stack = db.prepare_verification(slug, location).await?;
        self.request(db, &stack, RunKind::Verify, requested_by)
            .await
    }

    /// Pushes (again) the job of every stack's run whose turn it is: repairs a crash between
    /// recording a run and pushing its job, or between a run's end and the push of the next
    /// one. Returns how many were pushed.
    pub async fn sweep(&self, db: &Database) -> Result<usize, DbError> {
        let runs = db.runs_whose_turn_it_is().await?;
        for id in &runs {
            self.push(id).await?;
        }
        Ok(runs.len())
    }
}

impl Database {
    /// The run whose turn it is on `stack`: its earliest queued or running run.
    pub async fn stack_turn(&self, stack: &str) -> Result<Option<String>, DbError> {
        with_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT id FROM runs WHERE stack = $1 AND status IN ('queued', 'running')
                 ORDER BY seq LIMIT 1",
            )
            .bind(stack)
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))
        })
    }

    /// Every stack's run whose turn it is, oldest first.
    pub async fn runs_whose_turn_it_is(&self) -> Result<Vec<String>, DbError> {
        with_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT r.id FROM runs r WHERE r.status IN ('queued', 'running')
                 AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.stack = r.stack
                                 AND e.status IN ('queued', 'running') AND e.seq < r.seq)
                 ORDER BY r.seq",
            )
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))
        })
    }
}
