//! Retention: what finished long ago is deleted, so the store does not grow forever. Runs
//! and their events and journal entries go after one age, the audit log after a longer one.

use crate::db::{BeginWrite, with_pool};
use crate::{Database, DbError};

/// How long what finished is kept (days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Finished runs, their events and settled journal entries.
    pub runs_days: u32,
    /// Audit entries: kept longest.
    pub audit_days: u32,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            runs_days: 90,
            audit_days: 730,
        }
    }
}

/// What one pruning deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub events: u64,
    pub journal: u64,
    pub audit: u64,
}

const DAY_MS: i64 = 86_400_000;

/// Finished runs older than the cutoff, except a preview whose plan a queued or running
/// deploy is still to apply.
const OLD_RUNS: &str = "SELECT id FROM runs WHERE status IN ('succeeded', 'failed', 'cancelled')
    AND finished_at < $1
    AND id NOT IN (SELECT approved_plan FROM runs
                   WHERE approved_plan IS NOT NULL AND status IN ('queued', 'running'))";

impl Database {
    /// Deletes what `retention` no longer keeps, as of `now` (Unix ms). Idempotent: any
    /// number of workers may run it.
    pub async fn prune(&self, retention: Retention, now: i64) -> Result<Pruned, DbError> {
        let runs_before = now - i64::from(retention.runs_days) * DAY_MS;
        let audit_before = now - i64::from(retention.audit_days) * DAY_MS;
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let mut deleted = [0u64; 4];
            let statements = [
                (format!("DELETE FROM run_events WHERE run_id IN ({OLD_RUNS})"), runs_before),
                (format!("DELETE FROM runs WHERE id IN ({OLD_RUNS})"), runs_before),
                ("DELETE FROM journal WHERE phase <> 'intent' AND finished_at < $1".into(), runs_before),
                ("DELETE FROM audit_log WHERE at < $1".into(), audit_before),
            ];
            for (n, (sql, before)) in deleted.iter_mut().zip(statements) {
                *n = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.query_error(e))?
                    .rows_affected();
            }
            tx.commit().await.map_err(|e| self.query_error(e))?;
            let [events, runs, journal, audit] = deleted;
            Ok(Pruned { runs, events, journal, audit })
        })
    }
}
