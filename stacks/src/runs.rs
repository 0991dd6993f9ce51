//! Runs: requests to deploy, destroy, refresh or preview a stack, one at a time per stack,
//! in request order; their leases, events and cancellation.

use std::time::Duration;

use byoc_model::api::Unlocked;
use byoc_model::{Run, RunEvent};
use serde_json::Value;

use crate::db::BeginWrite;
use crate::db::{audit, on_db_clock, with_pool};
use crate::{Database, DbError, now_ms};
use byoc_model::{AccountId, Region, RunKind, RunStatus, StackName, TenantSlug};

pub(crate) type RunRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    bool,
    Option<i64>,
);

pub(crate) const RUN_COLUMNS: &str = "id, seq, stack, kind, status, requested_by, created_at, started_at, finished_at, error, summary, cancel_requested, config_version";

pub(crate) fn run_from_row(row: RunRow) -> Result<Run, DbError> {
    let (
        id,
        seq,
        stack,
        kind,
        status,
        requested_by,
        created_at,
        started_at,
        finished_at,
        error,
        summary,
        cancel,
        config_version,
    ) = row;
    Ok(Run {
        id: crate::db::stored(&id)?,
        seq,
        stack: crate::db::stored(&stack)?,
        kind: crate::db::stored(&kind)?,
        status: crate::db::stored(&status)?,
        requested_by,
        created_at,
        started_at,
        finished_at,
        error,
        config_version,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        cancel_requested: cancel,
    })
}

/// Creates the stack record `$name` of the tenant `$tenant`'s environment `$env` on the
/// connection `$conn` unless it exists. The name is unique because AWS names and tags derive
/// from it: `StackNameTaken` when another tenant's environment holds it (`co1` + `prod-eu`
/// and `co1-prod` + `eu` are both `co1-prod-eu`).
macro_rules! claim_stack {
    ($db:expr, $conn:expr, $name:expr, $tenant:expr, $env:expr, $now:expr) => {
        async {
            sqlx::query(
                "INSERT INTO stacks (name, tenant_id, env, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind($name)
            .bind($tenant)
            .bind($env)
            .bind($now)
            .execute(&mut *$conn)
            .await
            .map_err(|e| $db.query_error(e))?;
            let owner: Option<(String, String)> =
                sqlx::query_as("SELECT tenant_id, env FROM stacks WHERE name = $1")
                    .bind($name)
                    .fetch_optional(&mut *$conn)
                    .await
                    .map_err(|e| $db.query_error(e))?;
            let (want_tenant, want_env): (&str, &str) = (&$tenant, &$env);
            match owner {
                Some((tenant, env)) if tenant == want_tenant && env == want_env => Ok(()),
                _ => Err(DbError::StackNameTaken($name.to_string())),
            }
        }
    };
}
pub(crate) use claim_stack;

/// Checks, on the connection `$conn`, that the run `$plan_id` of `$stack` is a succeeded
/// preview whose plan is current: made with the environment's config and against the
/// stack's state as they are now. `NotFound`, or `Conflict` saying why not.
macro_rules! approvable {
    ($db:expr, $conn:expr, $stack:expr, $plan_id:expr) => {
        async {
            type Preview = (String, String, bool, Option<i64>, Option<i64>, Option<i64>, i64);
            let (stack, plan_id): (&str, &str) = ($stack, $plan_id);
            let preview: Option<Preview> = sqlx::query_as(
                "SELECT r.kind, r.status, r.plan IS NOT NULL, r.config_version, r.state_version,
                        (SELECT c.version FROM environment_configs c
                           WHERE c.tenant_id = s.tenant_id AND c.env = s.env),
                        s.state_version
                 FROM runs r JOIN stacks s ON s.name = r.stack
                 WHERE r.id = $1 AND r.stack = $2",
            )
            .bind(plan_id)
            .bind(stack)
            .fetch_optional(&mut *$conn)
            .await
            .map_err(|e| $db.query_error(e))?;
            let Some((kind, status, planned, config_version, state_version, config_now, state_now)) =
                preview
            else {
                return Err(DbError::NotFound(format!("plan {plan_id} of stack {stack}")));
            };
            if kind != RunKind::Preview.as_str() || status != RunStatus::Succeeded.as_str() || !planned {
                return Err(DbError::Conflict(format!(
                    "run {plan_id} is a {kind} run that is {status}: only a succeeded preview's plan can be deployed"
                )));
            }
            let stale = if config_version != config_now {
                Some(format!(
                    "the config changed since the preview (version {} then, {} now)",
                    config_version.unwrap_or(0),
                    config_now.unwrap_or(0)
                ))
            } else if state_version != Some(state_now) {
                Some(format!(
                    "the state changed since the preview (version {} then, {state_now} now)",
                    state_version.unwrap_or(0)
                ))
            } else {
                None
            };
            match stale {
                Some(stale) => Err(DbError::Conflict(format!(
                    "plan {plan_id} is stale: {stale}; preview again and deploy the new plan"
                ))),
                None => Ok(()),
            }
        }
    };
}

/// A lease's time to live in ms, added to the database's clock when taken or renewed.
fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// How many unfinished (queued or running) runs a stack and a tenant may have: a request
/// past either cap is refused (`DbError::TooManyRuns`, HTTP 429) rather than queued, so
/// that one token cannot fill the queue (`byoc serve --max-runs-per-stack`,
/// `--max-runs-per-tenant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLimits {
    pub per_stack: u32,
    pub per_tenant: u32,
}

impl RunLimits {
    pub const DEFAULT: RunLimits = RunLimits {
        per_stack: 10,
        per_tenant: 100,
    };
}

impl Default for RunLimits {
    fn default() -> RunLimits {
        RunLimits::DEFAULT
    }
}

pub(crate) fn fenced(lease: &Lease) -> DbError {
    DbError::Fenced(format!(
        "{} no longer holds stack {} at generation {}",
        lease.holder, lease.stack, lease.generation
    ))
}

/// What a run acts on, read once when it starts ([`Database::run_context`]).
#[derive(Clone, Debug)]
pub struct RunContext {
    pub kind: RunKind,
    pub stack: StackName,
    pub tenant_slug: TenantSlug,
    pub account_id: AccountId,
    pub trust_stack_name: String,
    /// Where the tenant's trust stack is; `None`: the workers' default region.
    pub trust_region: Option<Region>,
    pub sealed_external_id: Vec<u8>,
    /// The version of the environment's config the run applies, pinned when it first started
    /// (`None`: not started, or the environment has none).
    pub config_version: Option<i64>,
    /// That config, as stored.
    pub config: Option<Value>,
    /// The desired resources the run planned first (`None`: not planned yet): a resumed run
    /// applies these, whatever blueprint its worker has.
    pub desired: Option<Value>,
    /// Where the stack lives, recorded by its first deploy (`None`: nothing deployed).
    pub region: Option<Region>,
    /// The stack's state version now.
    pub state_version: i64,
    /// For a deploy of an approved plan: that plan, as its preview made it.
    pub approved: Option<ApprovedPlan>,
}

/// A preview's plan that a deploy was asked to apply exactly.
#[derive(Clone, Debug)]
pub struct ApprovedPlan {
    /// The preview run's id.
    pub preview: String,
    pub plan: Value,
    /// The config version and state version the preview planned with.
    pub config_version: Option<i64>,
    pub state_version: Option<i64>,
}

/// The `region` of a stored config, if it names one.
fn config_region(config: &str) -> Option<String> {
    let value: Value = serde_json::from_str(config).ok()?;
    value.get("region")?.as_str().map(str::to_string)
}

/// A stack lease held by one worker for one run. Every write of the run carries its
/// generation; a takeover increments it, fencing the old holder out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub stack: String,
    pub holder: String,
    pub generation: i64,
}

/// What [`Database::begin_run`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// The run is running (or resumed) under this lease.
    Started(Lease),
    /// Not its turn: an earlier run of the stack is queued or running, or the lease is held.
    Wait,
    /// Cancelled before it started.
    Cancelled,
    /// A running run whose cancel was requested is resumed (its worker died or lost the
    /// lease before it saw the cancel): the lease is the caller's only to end the run as
    /// cancelled, applying nothing more.
    CancelRequested(Lease),
    /// Already finished (a duplicate delivery).
    Finished,
}

/// What [`Database::begin_run`] answers for a run that has ended; `None` while it has not.
fn ended(status: RunStatus) -> Option<Begin> {
    match status {
        RunStatus::Cancelled => Some(Begin::Cancelled),
        s if s.is_finished() => Some(Begin::Finished),
        _ => None,
    }
}

impl Database {
    /// Creates the stack record of a tenant environment if it does not exist;
    /// `StackNameTaken` if another tenant's environment has the name.
    pub async fn ensure_stack(
        &self,
        stack: &str,
        tenant_id: &str,
        env: &str,
    ) -> Result<(), DbError> {
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            claim_stack!(self, tx, stack, tenant_id, env, now_ms()).await?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })
    }

    /// Records a run request, in one transaction with its audit entry, unless a run already
    /// answers it. Every request of a tenant takes its turn on the tenant's row, so what is
    /// decided here holds until commit:
    /// - a request joins the stack's latest unfinished run when that one is queued, of the
    ///   same kind and (deploys) of the same approved `plan`: `(run, true)`. Only the latest:
    ///   joining a destroy queued before a deploy would leave the stack deployed when
    ///   "destroy, deploy, destroy" was asked;
    /// - a scheduled check (`slot`) is recorded only for an idle stack and once per slot:
    ///   `None` otherwise;
    /// - past the [`RunLimits`] of unfinished runs of the stack or its tenant, `TooManyRuns`;
    /// - a deploy of the approved `plan` (a preview's run id) needs that plan to be current
    ///   and no deploy queued before it, which would change the state it was made against
    ///   (`Conflict`).
    pub(crate) async fn record_request(
        &self,
        stack: &str,
        kind: RunKind,
        requested_by: &str,
        plan: Option<&str>,
        slot: Option<i64>,
    ) -> Result<Option<(Run, bool)>, DbError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let limits = self.run_limits();
        let recorded = with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            // A no-op update locks the tenant's row until commit: on Postgres the tenant's
            // requests take turns, so two never both see room under a cap, or both miss the
            // run the other is recording (SQLite's write transaction serializes them anyway).
            let tenant: Option<(String, String)> = sqlx::query_as(
                "UPDATE tenants SET updated_at = updated_at
                 WHERE id = (SELECT tenant_id FROM stacks WHERE name = $1) RETURNING id, slug",
            )
            .bind(stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let Some((tenant_id, slug)) = tenant else {
                return Err(DbError::NotFound(format!("stack {stack}")));
            };
            if let Some(plan_id) = plan {
                approvable!(self, tx, stack, plan_id).await?;
            }
            let latest: Option<(String, String, String, Option<String>)> = sqlx::query_as(
                "SELECT id, kind, status, approved_plan FROM runs
                 WHERE stack = $1 AND status IN ('queued', 'running') ORDER BY seq DESC LIMIT 1",
            )
            .bind(stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let joined = match latest {
                Some(_) if slot.is_some() => return Ok(None),
                Some((joined, k, status, approved))
                    if status == RunStatus::Queued.as_str()
                        && k == kind.as_str()
                        && approved.as_deref() == plan =>
                {
                    Some(joined)
                }
                _ => {
                    if let Some(plan_id) = plan {
                        let queued: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM runs WHERE stack = $1 AND kind = 'deploy' AND status = 'queued'",
                        )
                        .bind(stack)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.query_error(e))?;
                        if queued > 0 {
                            return Err(DbError::Conflict(format!(
                                "a deploy of stack {stack} is queued already: it would change the state plan {plan_id} was made against; wait for it (or cancel it), then preview again"
                            )));
                        }
                    }
                    let (of_stack, of_tenant): (i64, i64) = sqlx::query_as(
                        "SELECT (SELECT COUNT(*) FROM runs WHERE stack = $1 AND status IN ('queued', 'running')),
                                (SELECT COUNT(*) FROM runs r JOIN stacks s ON s.name = r.stack
                                  WHERE s.tenant_id = $2 AND r.status IN ('queued', 'running'))",
                    )
                    .bind(stack)
                    .bind(&tenant_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.query_error(e))?;
                    for (scope, per, unfinished, cap) in [
                        (format!("stack {stack}"), "stack", of_stack, limits.per_stack),
                        (format!("tenant {slug}"), "tenant", of_tenant, limits.per_tenant),
                    ] {
                        if unfinished >= i64::from(cap) {
                            return Err(DbError::TooManyRuns { scope, per, unfinished, cap });
                        }
                    }
                    // Nothing is inserted only when a scheduler raced this one for the slot.
                    let inserted = sqlx::query(
                        "INSERT INTO runs (id, stack, kind, status, requested_by, created_at, schedule_slot, approved_plan)
                         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(stack)
                    .bind(kind.as_str())
                    .bind(requested_by)
                    .bind(now)
                    .bind(slot)
                    .bind(plan)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.query_error(e))?
                    .rows_affected();
                    if inserted != 1 {
                        return Ok(None);
                    }
                    let action = format!("run.request.{}", kind.as_str());
                    let target = match plan {
                        Some(plan_id) => format!("{id} (plan {plan_id})"),
                        None => id.clone(),
                    };
                    audit!(&mut *tx, requested_by, &action, &target, now)
                        .map_err(|e| self.query_error(e))?;
                    None
                }
            };
            tx.commit().await.map_err(|e| self.query_error(e))?;
            joined
        });
        Ok(Some(match recorded {
            Some(joined) => (self.run(&joined).await?, true),
            None => (self.run(&id).await?, false),
        }))
    }

    /// A request that is not a scheduled check: always recorded or joined.
    async fn request(
        &self,
        stack: &str,
        kind: RunKind,
        requested_by: &str,
        plan: Option<&str>,
    ) -> Result<(Run, bool), DbError> {
        self.record_request(stack, kind, requested_by, plan, None)
            .await?
            .ok_or_else(|| DbError::Conflict(format!("stack {stack} took no run; try again")))
    }

    /// Records a run request ([`Database::record_request`]): a new queued run, or with
    /// `true` the queued run of the same kind it joined.
    pub async fn request_run(
        &self,
        stack: &str,
        kind: RunKind,
        requested_by: &str,
    ) -> Result<(Run, bool), DbError> {
        self.request(stack, kind, requested_by, None).await
    }

    /// Records a deploy that applies exactly the plan of the preview `plan_id` of `stack`
    /// (`terraform apply plan.out`), or joins the deploy of that plan still queued (`true`).
    /// `Conflict` when that plan is stale (the config or the state changed since the preview)
    /// or another deploy is queued.
    pub async fn request_approved_deploy(
        &self,
        stack: &str,
        plan_id: &str,
        requested_by: &str,
    ) -> Result<(Run, bool), DbError> {
        self.request(stack, RunKind::Deploy, requested_by, Some(plan_id))
            .await
    }

    pub async fn run(&self, id: &str) -> Result<Run, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row: Option<RunRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        run_from_row(row.ok_or_else(|| DbError::NotFound(format!("run {id}")))?)
    }

    /// Runs of a stack, oldest first.
    /// The stack's latest run of `kind` that ended `status`, if any.
    pub async fn latest_run(
        &self,
        stack: &str,
        kind: RunKind,
        status: RunStatus,
    ) -> Result<Option<Run>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE stack = $1 AND kind = $2 AND status = $3 ORDER BY seq DESC LIMIT 1"
        );
        let row: Option<RunRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(stack)
                .bind(kind.as_str())
                .bind(status.as_str())
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        row.map(run_from_row).transpose()
    }

    /// At most `limit` runs of `stack` requested before run seq `before` (all when `None`),
    /// newest first.
    pub async fn runs_page(
        &self,
        stack: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE stack = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        let rows: Vec<RunRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(stack)
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        rows.into_iter().map(run_from_row).collect()
    }

    pub async fn runs_of(&self, stack: &str) -> Result<Vec<Run>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE stack = $1 ORDER BY seq");
        let rows: Vec<RunRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(stack)
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        rows.into_iter().map(run_from_row).collect()
    }

    /// Starts (or resumes) a run for `holder` if it is the stack's turn: the run is the oldest
    /// unfinished one of its stack and the stack's lease is free or expired by the
    /// database's clock. Takes the lease (generation + 1) and marks the run running,
    /// atomically. A queued run whose cancel committed first never starts, whenever that
    /// cancel came; a running one resumed after its cancel was requested is handed over only
    /// to be ended ([`Begin::CancelRequested`]).
    pub async fn begin_run(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Begin, DbError> {
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let run: Option<(String, String, i64)> =
                sqlx::query_as("SELECT stack, status, seq FROM runs WHERE id = $1")
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| self.query_error(e))?;
            let Some((stack, status, seq)) = run else {
                return Err(DbError::NotFound(format!("run {run_id}")));
            };
            if let Some(end) = ended(crate::db::stored(&status)?) {
                return Ok(end);
            }
            let earlier: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM runs WHERE stack = $1 AND seq < $2 AND status IN ('queued', 'running')",
            )
            .bind(&stack)
            .bind(seq)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            if earlier > 0 {
                return Ok(Begin::Wait);
            }
            // The database's clock, read now that the earlier runs are seen finished (a time
            // taken before could precede the finish of the run this one follows); the time
            // the lease was taken comes back as `updated_at`.
            let taken: Option<(i64, i64)> = sqlx::query_as(on_db_clock(
                p,
                "UPDATE stacks SET lease_holder = $1, lease_expires_at = {now} + $2,
                   generation = generation + 1, updated_at = {now}
                 WHERE name = $3 AND (lease_holder IS NULL OR lease_expires_at < {now})
                 RETURNING generation, updated_at",
            ))
            .bind(holder)
            .bind(ttl_ms(ttl))
            .bind(&stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let Some((generation, now)) = taken else {
                return Ok(Begin::Wait);
            };
            // Conditional on the row as it is now, not on the status read above (Postgres
            // read it without a lock): a cancel that committed since wins, and one still
            // in flight waits for this transaction and then sees the run running. The run's
            // config is pinned when it first starts: a resumed run, or one whose config is
            // saved again meanwhile, applies exactly what it started with.
            let run: Option<(String, Option<String>, bool)> = sqlx::query_as(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, $1),
                   config_version = COALESCE(config_version, (SELECT c.version FROM environment_configs c
                     JOIN stacks s ON s.tenant_id = c.tenant_id AND s.env = c.env WHERE s.name = $3)),
                   config = COALESCE(config, (SELECT c.config FROM environment_configs c
                     JOIN stacks s ON s.tenant_id = c.tenant_id AND s.env = c.env WHERE s.name = $3))
                 WHERE id = $2 AND (status = 'running' OR (status = 'queued' AND NOT cancel_requested))
                 RETURNING kind, config, cancel_requested",
            )
            .bind(now)
            .bind(run_id)
            .bind(&stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let Some((kind, config, cancel_requested)) = run else {
                // Cancelled (or ended) meanwhile: the lease is not taken either.
                tx.rollback().await.map_err(|e| self.query_error(e))?;
                return Ok(ended(self.run(run_id).await?.status).unwrap_or(Begin::Wait));
            };
            // A deploy fixes where the stack lives until a destroy empties it.
            if kind == RunKind::Deploy.as_str()
                && let Some(region) = config.as_deref().and_then(config_region)
            {
                sqlx::query("UPDATE stacks SET region = COALESCE(region, $1) WHERE name = $2")
                    .bind(region)
                    .bind(&stack)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.query_error(e))?;
            }
            tx.commit().await.map_err(|e| self.query_error(e))?;
            let lease = Lease {
                stack,
                holder: holder.to_string(),
                generation,
            };
            Ok(if cancel_requested {
                Begin::CancelRequested(lease)
            } else {
                Begin::Started(lease)
            })
        })
    }

    /// Extends the lease by `ttl` from the database's clock; `Fenced` if it was taken over.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<(), DbError> {
        let renewed = with_pool!(self, p => {
            sqlx::query(on_db_clock(
                p,
                "UPDATE stacks SET lease_expires_at = {now} + $1
                 WHERE name = $2 AND generation = $3 AND lease_holder = $4",
            ))
            .bind(ttl_ms(ttl))
            .bind(&lease.stack)
            .bind(lease.generation)
            .bind(&lease.holder)
            .execute(p)
            .await
            .map_err(|e| self.query_error(e))?
            .rows_affected()
        });
        if renewed == 1 {
            Ok(())
        } else {
            Err(fenced(lease))
        }
    }

    /// Ends a run and releases its lease, in one transaction; `Fenced` if the lease was lost.
    pub async fn finish_run(
        &self,
        run_id: &str,
        lease: &Lease,
        status: RunStatus,
        error: Option<&str>,
        summary: Option<&Value>,
    ) -> Result<(), DbError> {
        let summary = summary.map(Value::to_string);
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            // The stack's status says what its last deploy or destroy left. The run ends at
            // the database's clock, as it started.
            let released: Option<i64> = sqlx::query_scalar(on_db_clock(
                p,
                "UPDATE stacks SET lease_holder = NULL, lease_expires_at = NULL, updated_at = {now},
                 status = CASE (SELECT kind FROM runs WHERE id = $1)
                   WHEN 'deploy' THEN CASE WHEN $2 = 'succeeded' THEN 'deployed' ELSE 'incomplete' END
                   WHEN 'destroy' THEN CASE WHEN $2 = 'succeeded' THEN 'destroyed' ELSE 'incomplete' END
                   ELSE status END,
                 region = CASE WHEN $2 = 'succeeded' AND (SELECT kind FROM runs WHERE id = $1) = 'destroy'
                   THEN NULL ELSE region END
                 WHERE name = $3 AND generation = $4
                 RETURNING updated_at",
            ))
            .bind(run_id)
            .bind(status.as_str())
            .bind(&lease.stack)
            .bind(lease.generation)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let Some(now) = released else {
                return Err(fenced(lease));
            };
            sqlx::query("UPDATE runs SET status = $1, finished_at = $2, error = $3, summary = $4 WHERE id = $5")
                .bind(status.as_str())
                .bind(now)
                .bind(error)
                .bind(&summary)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })
    }

    /// Asks a run to stop: a queued run is cancelled at once and never starts; a running one
    /// sees the flag at its next lease renewal (or, if its worker is gone, when it is
    /// resumed). `Conflict`, naming its status, for a run that has already finished.
    pub async fn request_cancel(&self, run_id: &str, actor: &str) -> Result<Run, DbError> {
        let now = now_ms();
        // Conditional on the row as it is when updated: on Postgres a start in flight makes
        // this wait, then flag the running run (see `begin_run`).
        let sql = format!(
            "UPDATE runs SET cancel_requested = TRUE,
             status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
             finished_at = CASE WHEN status = 'queued' THEN {{now}} ELSE finished_at END
             WHERE id = $1 AND status IN ('queued', 'running')
             RETURNING {RUN_COLUMNS}"
        );
        let row: Option<RunRow> = with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let row = sqlx::query_as(on_db_clock(p, &sql))
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
            if row.is_some() {
                audit!(&mut *tx, actor, "run.cancel", run_id, now)
                    .map_err(|e| self.query_error(e))?;
            }
            tx.commit().await.map_err(|e| self.query_error(e))?;
            row
        });
        match row {
            Some(row) => run_from_row(row),
            None => Err(DbError::Conflict(format!(
                "run {run_id} has already finished ({}): there is nothing to cancel",
                self.run(run_id).await?.status
            ))),
        }
    }

    /// Breaks a stack's lease, fencing its holder out (generation + 1: every write carrying
    /// the old generation is refused), for an operator when the holder is known dead or stuck.
    /// Conflict when no lease is held (nothing to unlock), and while the lease is live (not
    /// expired) unless `force`. Audited with what was broken.
    pub async fn force_unlock(
        &self,
        stack: &str,
        actor: &str,
        force: bool,
    ) -> Result<Unlocked, DbError> {
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            // Live or not by the database's clock, as `begin_run` judges it.
            let held: Option<(Option<String>, Option<i64>, i64, i64)> = sqlx::query_as(on_db_clock(
                p,
                "SELECT lease_holder, lease_expires_at, generation, {now} FROM stacks WHERE name = $1",
            ))
            .bind(stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let Some((holder, expires_at, generation, now)) = held else {
                return Err(DbError::NotFound(format!("stack {stack}")));
            };
            let Some(holder) = holder else {
                return Err(DbError::Conflict(format!(
                    "stack {stack} is not locked: no worker holds its lease, there is nothing to unlock"
                )));
            };
            let run_id: Option<String> = sqlx::query_scalar(
                "SELECT id FROM runs WHERE stack = $1 AND status = 'running' ORDER BY seq LIMIT 1",
            )
            .bind(stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let live = expires_at.is_some_and(|at| at >= now);
            if live && !force {
                let secs = (expires_at.unwrap_or(now) - now) / 1000;
                let run = run_id.as_deref().map(|r| format!(", run {r}")).unwrap_or_default();
                return Err(DbError::Conflict(format!(
                    "stack {stack} is locked by {holder} (generation {generation}{run}), whose lease is live for another {secs}s: \
                     its holder is renewing it, so it is probably still working. Break it with force only if that worker is dead or stuck"
                )));
            }
            let broken = sqlx::query(
                "UPDATE stacks SET lease_holder = NULL, lease_expires_at = NULL, generation = generation + 1, updated_at = $1
                 WHERE name = $2 AND generation = $3",
            )
            .bind(now)
            .bind(stack)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?
            .rows_affected();
            if broken != 1 {
                return Err(DbError::Conflict(format!(
                    "the lease of stack {stack} changed while it was being broken; look again"
                )));
            }
            let details = serde_json::json!({
                "holder": holder,
                "generation": generation,
                "expires_at": expires_at,
                "was_live": live,
                "force": force,
                "run_id": run_id,
            });
            audit!(&mut *tx, actor, "stack.force_unlock", stack, now, &details)
                .map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))?;
            Ok(Unlocked {
                stack: crate::db::stored(stack)?,
                holder,
                generation,
                new_generation: generation + 1,
                expires_at,
                was_live: live,
                run_id: run_id.as_deref().map(crate::db::stored).transpose()?,
            })
        })
    }

    /// Appends an event to a run's stream under the run's `lease`; returns its sequence
    /// number. `Fenced` once the lease was taken over, like the journal's writes.
    pub async fn record_event(
        &self,
        lease: &Lease,
        run_id: &str,
        level: &str,
        resource: Option<&str>,
        message: &str,
        data: Option<&Value>,
    ) -> Result<i64, DbError> {
        let data = data.map(Value::to_string);
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            // Fence first, as `RunStore::record_outcome` does: the no-op update locks the
            // stack's row until commit (Postgres), so a takeover cannot interleave, and one
            // that committed meanwhile is seen.
            let current = sqlx::query(
                "UPDATE stacks SET generation = generation WHERE name = $1 AND generation = $2",
            )
            .bind(&lease.stack)
            .bind(lease.generation)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?
            .rows_affected();
            if current != 1 {
                return Err(fenced(lease));
            }
            // The run's own counter numbers its events: the update holds the run's row until
            // commit, so two writers never take one number (MAX(seq) + 1 could, on Postgres).
            let seq: Option<i64> = sqlx::query_scalar(
                "UPDATE runs SET event_seq = event_seq + 1 WHERE id = $1 AND stack = $2
                 RETURNING event_seq",
            )
            .bind(run_id)
            .bind(&lease.stack)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let seq = seq.ok_or_else(|| {
                DbError::NotFound(format!("run {run_id} of stack {}", lease.stack))
            })?;
            sqlx::query(
                "INSERT INTO run_events (run_id, seq, at, level, resource, message, data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(run_id)
            .bind(seq)
            .bind(now_ms())
            .bind(level)
            .bind(resource)
            .bind(message)
            .bind(&data)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))?;
            Ok(seq)
        })
    }

    /// Events of a run with seq > `after_seq`, in order, at most `limit` (1..=1000): a client
    /// follows the stream by passing the last seq it has seen.
    pub async fn run_events(
        &self,
        run_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RunEvent>, DbError> {
        if !(1..=1000).contains(&limit) {
            return Err(DbError::Invalid(format!(
                "limit {limit} is out of range: use 1 to 1000"
            )));
        }
        type Row = (i64, i64, String, Option<String>, String, Option<String>);
        let rows: Vec<Row> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT seq, at, level, resource, message, data FROM run_events
                 WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(run_id)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        if rows.is_empty() {
            // No new events, or no such run: asked only when there is nothing to return.
            self.run(run_id).await?;
        }
        rows.into_iter()
            .map(|(seq, at, level, resource, message, data)| {
                let data = data
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(|e| {
                        DbError::Corrupt(format!("stored data of event {seq} of run {run_id}: {e}"))
                    })?;
                Ok(RunEvent {
                    seq,
                    at,
                    level,
                    resource,
                    message,
                    data,
                })
            })
            .collect()
    }

    /// The plan a run stored ([`Database::record_plan`]), if any; NotFound for an unknown run.
    pub async fn run_plan(&self, run_id: &str) -> Result<Option<Value>, DbError> {
        let row: Option<Option<String>> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT plan FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        row.ok_or_else(|| DbError::NotFound(format!("run {run_id}")))?
            .map(|plan| {
                serde_json::from_str(&plan)
                    .map_err(|e| DbError::Corrupt(format!("stored plan of run {run_id}: {e}")))
            })
            .transpose()
    }

    /// Saves an environment's config (JSON: the blueprint reads it), creating its stack
    /// record; returns the new version (1 for the first save). The config is kept as given.
    pub async fn save_config(
        &self,
        tenant_id: &str,
        slug: &str,
        env: &str,
        config: &Value,
        actor: &str,
    ) -> Result<i64, DbError> {
        self.save_environment(tenant_id, slug, env, config, config, actor)
            .await
    }

    /// Saves an environment's effective config (what runs use) and the raw one it was
    /// completed from (what the caller sent). `StackNameTaken` if the stack name
    /// `{slug}-{env}` belongs to another tenant's environment.
    pub async fn save_environment(
        &self,
        tenant_id: &str,
        slug: &str,
        env: &str,
        config: &Value,
        raw: &Value,
        actor: &str,
    ) -> Result<i64, DbError> {
        let (slug, env) = (
            byoc_model::TenantSlug::new(slug)?,
            byoc_model::EnvName::new(env)?,
        );
        let stack = byoc_model::StackName::of(&slug, &env).to_string();
        let env = env.as_str();
        let now = now_ms();
        let text = config.to_string();
        let raw = raw.to_string();
        let version = with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            // First, so that a taken name leaves nothing written.
            claim_stack!(self, tx, &stack, tenant_id, env, now).await?;
            // A deployed environment's resources stay where they are: a new region would send
            // every call about them elsewhere.
            let deployed_in: Option<String> =
                sqlx::query_scalar("SELECT region FROM stacks WHERE name = $1")
                    .bind(&stack)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.query_error(e))?;
            if let Some(deployed_in) = deployed_in
                && config
                    .get("region")
                    .and_then(Value::as_str)
                    .is_some_and(|region| region != deployed_in)
            {
                return Err(DbError::Refused {
                    field: "region",
                    message: format!(
                        "environment {env} of tenant {slug} is deployed in {deployed_in}: its region cannot change in place. Destroy it first (its resources are deleted), or create a new environment in the new region"
                    ),
                });
            }
            let version: i64 = sqlx::query_scalar(
                "INSERT INTO environment_configs (tenant_id, env, config, version, updated_at, raw) VALUES ($1, $2, $3, 1, $4, $5)
                 ON CONFLICT (tenant_id, env) DO UPDATE SET config = excluded.config, raw = excluded.raw,
                 version = environment_configs.version + 1, updated_at = excluded.updated_at
                 RETURNING version",
            )
            .bind(tenant_id)
            .bind(env)
            .bind(&text)
            .bind(now)
            .bind(&raw)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            audit!(&mut *tx, actor, "config.save", &stack, now).map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))?;
            version
        });
        Ok(version)
    }

    /// Everything a worker needs to run `run_id`, in one read: the run's kind and stack, who
    /// it acts for, the tenant's external id as stored (sealed), the config pinned when the
    /// run started (`None` for a trust verification's stack, which has none), and where the
    /// stack lives.
    pub async fn run_context(&self, run_id: &str) -> Result<RunContext, DbError> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Vec<u8>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let row: Option<Row> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT r.kind, r.stack, t.slug, t.aws_account_id, t.trust_stack_name,
                        t.trust_region, t.external_id_sealed, r.config_version, r.config, r.desired, s.region,
                        s.state_version, a.id, a.plan, a.config_version, a.state_version
                 FROM runs r
                 JOIN stacks s ON s.name = r.stack
                 JOIN tenants t ON t.id = s.tenant_id
                 LEFT JOIN runs a ON a.id = r.approved_plan
                 WHERE r.id = $1",
            )
            .bind(run_id)
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        let (
            kind,
            stack,
            tenant_slug,
            account_id,
            trust_stack_name,
            trust_region,
            sealed,
            config_version,
            config,
            desired,
            region,
            state_version,
            approved_id,
            approved_plan,
            approved_config_version,
            approved_state_version,
        ) = row.ok_or_else(|| DbError::NotFound(format!("run {run_id} or its tenant")))?;
        let config = config
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| DbError::Corrupt(format!("stored config of {stack}: {e}")))?;
        let desired = desired
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| DbError::Corrupt(format!("pinned resources of run {run_id}: {e}")))?;
        Ok(RunContext {
            kind: crate::db::stored(&kind)?,
            stack: crate::db::stored(&stack)?,
            tenant_slug: crate::db::stored(&tenant_slug)?,
            account_id: crate::db::stored(&account_id)?,
            trust_stack_name,
            trust_region: trust_region.as_deref().map(crate::db::stored).transpose()?,
            sealed_external_id: sealed,
            config_version,
            config,
            desired,
            region: region.as_deref().map(crate::db::stored).transpose()?,
            state_version,
            approved: match (approved_id, approved_plan) {
                (Some(id), Some(plan)) => Some(ApprovedPlan {
                    plan: serde_json::from_str(&plan)
                        .map_err(|e| DbError::Corrupt(format!("plan of preview {id}: {e}")))?,
                    preview: id,
                    config_version: approved_config_version,
                    state_version: approved_state_version,
                }),
                _ => None,
            },
        })
    }

    /// Whether a cancel was requested for the run.
    pub async fn cancel_requested(&self, run_id: &str) -> Result<bool, DbError> {
        Ok(self.run(run_id).await?.cancel_requested)
    }

    /// Records a new state version for a finished run: what it changed, and the stack's
    /// resources as they are now (the full state at that version).
    pub async fn record_history(
        &self,
        run_id: &str,
        lease: &Lease,
        changes: &Value,
    ) -> Result<i64, DbError> {
        let now = now_ms();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let version: Option<i64> = sqlx::query_scalar(
                "UPDATE stacks SET state_version = state_version + 1, updated_at = $1
                 WHERE name = $2 AND generation = $3 RETURNING state_version",
            )
            .bind(now)
            .bind(&lease.stack)
            .bind(lease.generation)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let version = version.ok_or_else(|| fenced(lease))?;
            sqlx::query("INSERT INTO state_history (stack, version, run_id, at, changes) VALUES ($1, $2, $3, $4, $5)")
                .bind(&lease.stack)
                .bind(version)
                .bind(run_id)
                .bind(now)
                .bind(changes.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
            crate::stacks::record_state!(self, tx, &lease.stack, version).await?;
            tx.commit().await.map_err(|e| self.query_error(e))?;
            Ok(version)
        })
    }

    /// Stores a run's plan (JSON) as it was made, and the first time the desired resources
    /// it was made from (see [`RunContext::desired`]); fenced like every write of a run.
    pub async fn record_plan(
        &self,
        run_id: &str,
        lease: &Lease,
        plan: &Value,
        desired: Option<&Value>,
    ) -> Result<(), DbError> {
        let n = with_pool!(self, p => {
            sqlx::query(
                "UPDATE runs SET plan = $1, desired = COALESCE(desired, $5),
                   state_version = (SELECT state_version FROM stacks WHERE name = $3)
                 WHERE id = $2
                 AND EXISTS (SELECT 1 FROM stacks WHERE name = $3 AND generation = $4)",
            )
            .bind(plan.to_string())
            .bind(run_id)
            .bind(&lease.stack)
            .bind(lease.generation)
            .bind(desired.map(Value::to_string))
            .execute(p)
            .await
            .map_err(|e| self.query_error(e))?
            .rows_affected()
        });
        if n == 1 { Ok(()) } else { Err(fenced(lease)) }
    }

    /// Ids of runs queued or running, oldest first.
    pub async fn unfinished_runs(&self) -> Result<Vec<String>, DbError> {
        with_pool!(self, p => {
            sqlx::query_scalar("SELECT id FROM runs WHERE status IN ('queued', 'running') ORDER BY seq")
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))
        })
    }
}
