//! The store's side of scheduled drift checks: which environments may be due, runs recorded
//! once per schedule slot, what a scheduled check found, and how many environments drifted.

use byoc_model::{MIN_EVERY_MINUTES, Run, RunKind, StackName};
use serde_json::Value;

use crate::db::with_pool;
use crate::{Database, DbError};

/// A deployed environment of a trusted tenant with no run queued or running: a scheduled
/// check may be due, as its config's `drift_check` and the server's default say.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckCandidate {
    pub stack: StackName,
    /// The environment's saved config (effective), as stored.
    pub config: Value,
    /// The slot of its last scheduled run, if any.
    pub last_slot: Option<i64>,
}

/// A scheduled refresh that succeeded: what the worker's follow-up needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledCheck {
    pub stack: StackName,
    pub summary: Option<Value>,
    pub config: Option<Value>,
}

/// A refresh summary that lists at least one drifted resource (`{"drift": [{...}, ...]}`).
const DRIFT_FOUND: &str = "%\"drift\":[{%";

impl Database {
    /// In one query, the environments a scheduled check may be due for at `now`: deployed,
    /// of a trusted tenant, with no run queued or running, whose last scheduled slot began
    /// at least the shortest period ago, and (unless `server_default`, when every
    /// environment has a schedule) whose config mentions `drift_check`. Whether one is due
    /// is then [`byoc_model::DriftSchedule::due`].
    pub async fn check_candidates(
        &self,
        now: i64,
        server_default: bool,
    ) -> Result<Vec<CheckCandidate>, DbError> {
        let recent = now - i64::from(MIN_EVERY_MINUTES) * 60_000;
        let rows: Vec<(String, String, Option<i64>)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT s.name, c.config, l.slot
                 FROM stacks s
                 JOIN tenants t ON t.id = s.tenant_id
                 JOIN environment_configs c ON c.tenant_id = s.tenant_id AND c.env = s.env
                 LEFT JOIN (SELECT stack, MAX(schedule_slot) AS slot FROM runs
                            WHERE schedule_slot IS NOT NULL GROUP BY stack) l ON l.stack = s.name
                 WHERE s.status = 'deployed' AND t.onboarding_status = 'trusted'
                   AND (l.slot IS NULL OR l.slot <= $1)
                   AND ($2 OR c.config LIKE '%\"drift_check\"%')
                   AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.stack = s.name AND q.status IN ('queued', 'running'))
                 ORDER BY s.name",
            )
            .bind(recent)
            .bind(server_default)
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        rows.into_iter()
            .map(|(stack, config, last_slot)| {
                let config = serde_json::from_str(&config)
                    .map_err(|e| DbError::Corrupt(format!("stored config of {stack}: {e}")))?;
                Ok(CheckCandidate {
                    stack: crate::db::stored(&stack)?,
                    config,
                    last_slot,
                })
            })
            .collect()
    }

    /// Records a run of `kind` for the schedule slot `slot` (its start, Unix ms) of `stack`,
    /// unless the slot already has its run, the stack has a run queued or running, or its
    /// tenant has as many unfinished runs as it may: `None` then (the check is due again at
    /// the next round). Atomic: of schedulers racing for one slot, one records the run.
    pub async fn request_scheduled_run(
        &self,
        stack: &StackName,
        kind: RunKind,
        slot: i64,
        requested_by: &str,
    ) -> Result<Option<Run>, DbError> {
        match self
            .record_request(stack.as_str(), kind, requested_by, None, Some(slot))
            .await
        {
            Ok(recorded) => Ok(recorded.map(|(run, _)| run)),
            Err(e @ DbError::TooManyRuns { .. }) => {
                tracing::info!(%stack, error = %e, "scheduled check postponed");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The run `run_id` if it is a scheduled refresh that succeeded, with its environment's
    /// config; `None` for any other run.
    pub async fn scheduled_check(&self, run_id: &str) -> Result<Option<ScheduledCheck>, DbError> {
        let row: Option<(String, Option<String>, Option<String>)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT r.stack, r.summary, c.config FROM runs r
                 JOIN stacks s ON s.name = r.stack
                 LEFT JOIN environment_configs c ON c.tenant_id = s.tenant_id AND c.env = s.env
                 WHERE r.id = $1 AND r.kind = 'refresh' AND r.status = 'succeeded'
                   AND r.schedule_slot IS NOT NULL",
            )
            .bind(run_id)
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        let Some((stack, summary, config)) = row else {
            return Ok(None);
        };
        let parse = |what: &str, text: Option<String>| {
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| DbError::Corrupt(format!("stored {what} of {stack}: {e}")))
        };
        Ok(Some(ScheduledCheck {
            summary: parse("summary of a run", summary)?,
            config: parse("config", config)?,
            stack: crate::db::stored(&stack)?,
        }))
    }

    /// The slot of the stack's last scheduled run, if any.
    pub async fn last_schedule_slot(&self, stack: &StackName) -> Result<Option<i64>, DbError> {
        with_pool!(self, p => {
            sqlx::query_scalar("SELECT MAX(schedule_slot) FROM runs WHERE stack = $1")
                .bind(stack.as_str())
                .fetch_one(p)
                .await
                .map_err(|e| self.query_error(e))
        })
    }

    /// How many environments drifted, in one query: those whose latest succeeded refresh,
    /// deploy or destroy is a refresh that found drift (a deploy since repaired it, or
    /// destroyed it).
    pub async fn drifted_environments(&self) -> Result<i64, DbError> {
        with_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM runs r
                 WHERE r.kind = 'refresh' AND r.status = 'succeeded' AND r.summary LIKE $1
                   AND r.seq = (SELECT MAX(x.seq) FROM runs x WHERE x.stack = r.stack
                                AND x.status = 'succeeded' AND x.kind IN ('refresh', 'deploy', 'destroy'))",
            )
            .bind(DRIFT_FOUND)
            .fetch_one(p)
            .await
            .map_err(|e| self.query_error(e))
        })
    }
}
