//! The engine's [`StateStore`] on SQL: per-resource rows and the journal, every write fenced
//! by the stack lease's generation.

use async_trait::async_trait;
use byoc_engine::{Intent, Outcome, ResourceState, Snapshot, StateStore, StoreError, deposed_key};

use crate::db::BeginWrite;
use crate::db::with_pool;
use crate::runs::Lease;
use crate::{Database, DbError, now_ms};

/// The state of one stack, as written by one run under one lease.
pub struct RunStore {
    db: Database,
    run_id: String,
    lease: Lease,
}

impl RunStore {
    pub fn new(db: Database, run_id: &str, lease: Lease) -> RunStore {
        RunStore {
            db,
            run_id: run_id.to_string(),
            lease,
        }
    }
}

/// Fencing stays fencing (the stack belongs to another worker now); anything else is a
/// journal failure that aborts the run.
impl From<DbError> for StoreError {
    fn from(e: DbError) -> StoreError {
        match e {
            DbError::Fenced(m) => StoreError::Fenced(m),
            other => StoreError::Other(other.to_string()),
        }
    }
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("state serializes")
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Other(format!("corrupt {what} in the state: {e}")))
}

type ResourceRow = (String, String, String, String, String, String, String);
type IntentRow = (String, String, String, String, i64, String, String);

impl Database {
    /// The recorded state of a stack, with its unfinished intents.
    pub async fn snapshot(&self, stack: &str) -> Result<Snapshot, StoreError> {
        let (resources, pending): (Vec<ResourceRow>, Vec<IntentRow>) = with_pool!(self, p => {
            let resources = sqlx::query_as(
                "SELECT key, kind, physical_id, inputs, outputs, depends_on, lifecycle FROM resources WHERE stack = $1",
            )
            .bind(stack)
            .fetch_all(p)
            .await
            .map_err(|e| StoreError::from(self.query_error(e)))?;
            let pending = sqlx::query_as(
                "SELECT run_id, resource, kind, operation, attempt, token, inputs FROM journal
                 WHERE stack = $1 AND phase = 'intent' ORDER BY id",
            )
            .bind(stack)
            .fetch_all(p)
            .await
            .map_err(|e| StoreError::from(self.query_error(e)))?;
            (resources, pending)
        });
        let mut snapshot = Snapshot::default();
        for (key, kind, physical_id, inputs, outputs, depends_on, lifecycle) in resources {
            let state = ResourceState {
                kind,
                name: key.clone(),
                physical_id,
                inputs: parse("inputs", &inputs)?,
                outputs: parse("outputs", &outputs)?,
                depends_on: parse("depends_on", &depends_on)?,
                lifecycle: parse("lifecycle", &lifecycle)?,
            };
            snapshot.resources.insert(key, state);
        }
        for (run_id, resource, kind, operation, attempt, token, inputs) in pending {
            snapshot.pending.push(Intent {
                run_id,
                resource,
                kind,
                operation: serde_json::from_value(serde_json::Value::String(operation))
                    .map_err(|e| StoreError::Other(format!("corrupt journal operation: {e}")))?,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                token,
                inputs: parse("intent inputs", &inputs)?,
            });
        }
        Ok(snapshot)
    }
}

#[async_trait]
impl StateStore for RunStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.db.snapshot(&self.lease.stack).await
    }

    async fn record_intent(&self, intent: &Intent) -> Result<(), StoreError> {
        let db = &self.db;
        let inserted = with_pool!(db, p => {
            // One statement: the insert happens only while this lease's generation is current.
            sqlx::query(
                "INSERT INTO journal (stack, run_id, resource, kind, operation, attempt, token, inputs, phase, started_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'intent', $9
                 WHERE EXISTS (SELECT 1 FROM stacks WHERE name = $1 AND generation = $10)",
            )
            .bind(&self.lease.stack)
            .bind(&self.run_id)
            .bind(&intent.resource)
            .bind(&intent.kind)
            .bind(intent.operation.as_str())
            .bind(i64::from(intent.attempt))
            .bind(&intent.token)
            .bind(json(&intent.inputs))
            .bind(now_ms())
            .bind(self.lease.generation)
            .execute(p)
            .await
            .map_err(|e| StoreError::from(db.query_error(e)))?
            .rows_affected()
        });
        if inserted == 1 {
            Ok(())
        } else {
            Err(self.fenced())
        }
    }

    async fn record_outcome(&self, intent: &Intent, outcome: &Outcome) -> Result<(), StoreError> {
        let db = &self.db;
        let stack = &self.lease.stack;
        let now = now_ms();
        let (phase, error) = match outcome {
            Outcome::Failed { error } => ("failed", Some(error.as_str())),
            _ => ("succeeded", None),
        };
        let q = |e: sqlx::Error| StoreError::from(db.query_error(e));
        with_pool!(db, p => {
            let mut tx = p.begin_write().await.map_err(q)?;
            // Fence first: this also locks the stack row until commit (Postgres), so a
            // takeover cannot interleave with this outcome.
            let current = sqlx::query("UPDATE stacks SET updated_at = $1 WHERE name = $2 AND generation = $3")
                .bind(now)
                .bind(stack)
                .bind(self.lease.generation)
                .execute(&mut *tx)
                .await
                .map_err(q)?
                .rows_affected();
            if current != 1 {
                return Err(self.fenced());
            }
            sqlx::query(
                "UPDATE journal SET phase = $1, error = $2, finished_at = $3
                 WHERE stack = $4 AND run_id = $5 AND resource = $6 AND operation = $7 AND attempt = $8 AND token = $9
                 AND phase = 'intent'",
            )
            .bind(phase)
            .bind(error)
            .bind(now)
            .bind(stack)
            .bind(&intent.run_id)
            .bind(&intent.resource)
            .bind(intent.operation.as_str())
            .bind(i64::from(intent.attempt))
            .bind(&intent.token)
            .execute(&mut *tx)
            .await
            .map_err(q)?;
            match outcome {
                Outcome::Created { state, depose } => {
                    if *depose {
                        sqlx::query(
                            "UPDATE resources SET key = $1, updated_at = $2
                             WHERE stack = $3 AND key = $4 AND physical_id <> $5",
                        )
                        .bind(deposed_key(&state.name))
                        .bind(now)
                        .bind(stack)
                        .bind(&state.name)
                        .bind(&state.physical_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(q)?;
                    }
                    upsert!(&mut *tx, stack, state, now).map_err(q)?;
                }
                Outcome::Updated { state } => {
                    upsert!(&mut *tx, stack, state, now).map_err(q)?;
                }
                Outcome::Deleted => {
                    sqlx::query("DELETE FROM resources WHERE stack = $1 AND key = $2")
                        .bind(stack)
                        .bind(&intent.resource)
                        .execute(&mut *tx)
                        .await
                        .map_err(q)?;
                }
                Outcome::Failed { .. } => {}
            }
            tx.commit().await.map_err(q)
        })
    }
}

/// Inserts or replaces one resource row.
macro_rules! upsert {
    ($conn:expr, $stack:expr, $state:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO resources (stack, key, kind, physical_id, inputs, outputs, depends_on, lifecycle, status, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ready', $9)
             ON CONFLICT (stack, key) DO UPDATE SET kind = excluded.kind, physical_id = excluded.physical_id,
             inputs = excluded.inputs, outputs = excluded.outputs, depends_on = excluded.depends_on,
             lifecycle = excluded.lifecycle, status = excluded.status, updated_at = excluded.updated_at",
        )
        .bind($stack)
        .bind(&$state.name)
        .bind(&$state.kind)
        .bind(&$state.physical_id)
        .bind(json(&$state.inputs))
        .bind(json(&$state.outputs))
        .bind(json(&$state.depends_on))
        .bind(json(&$state.lifecycle))
        .bind($now)
        .execute($conn)
        .await
    };
}
use upsert;

impl RunStore {
    fn fenced(&self) -> StoreError {
        StoreError::Fenced(format!(
            "{} no longer holds stack {} at generation {}",
            self.lease.holder, self.lease.stack, self.lease.generation
        ))
    }
}
