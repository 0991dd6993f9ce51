//! Environments as operators see them: their configs, their stacks' status and recorded
//! resources, and removing what is no longer deployed.

use byoc_model::api::{StateDiff, StateVersionView};
use byoc_model::{AuditEntry, HistoryEntry, ResourceRecord, Run, StackStatus};
use serde_json::Value;

use crate::db::BeginWrite;
use crate::db::{audit, with_pool};
use crate::runs::{RUN_COLUMNS, RunRow, run_from_row};
use crate::{Database, DbError, now_ms};
use byoc_model::{EnvName, StackName, TRUST_ENV, Tenant, TenantSlug};

/// The stacks of tenant `$1`, only environment `$2` unless it is NULL.
macro_rules! stacks_of {
    () => {
        "SELECT name FROM stacks WHERE tenant_id = $1 AND ($2 IS NULL OR env = $2)"
    };
}

/// Per stack chosen like [`stacks_of`]: environment, resources, unsettled journal intents
/// (their cloud objects may exist) and unfinished runs. Any of them means the stack's records
/// are still needed.
pub(crate) const STACK_USE: &str = "SELECT s.env,
    (SELECT COUNT(*) FROM resources r WHERE r.stack = s.name),
    (SELECT COUNT(*) FROM journal j WHERE j.stack = s.name AND j.phase = 'intent'),
    (SELECT COUNT(*) FROM runs u WHERE u.stack = s.name AND u.status IN ('queued', 'running'))
    FROM stacks s WHERE s.tenant_id = $1 AND ($2 IS NULL OR s.env = $2) ORDER BY s.env";

pub(crate) type StackUse = (String, i64, i64, i64);

/// Deletes the records of the stacks chosen like [`stacks_of`] and their configs, in foreign
/// key order. Resources are not deleted: [`refuse_if_in_use`] has made sure there are none,
/// and if one appeared since, the stack's delete fails instead of forgetting it.
pub(crate) const PURGE_STACKS: [&str; 7] = [
    concat!(
        "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE stack IN (",
        stacks_of!(),
        "))"
    ),
    concat!(
        "DELETE FROM state_versions WHERE stack IN (",
        stacks_of!(),
        ")"
    ),
    concat!("DELETE FROM runs WHERE stack IN (", stacks_of!(), ")"),
    concat!("DELETE FROM journal WHERE stack IN (", stacks_of!(), ")"),
    concat!(
        "DELETE FROM state_history WHERE stack IN (",
        stacks_of!(),
        ")"
    ),
    "DELETE FROM stacks WHERE tenant_id = $1 AND ($2 IS NULL OR env = $2)",
    "DELETE FROM environment_configs WHERE tenant_id = $1 AND ($2 IS NULL OR env = $2)",
];

/// Conflict naming the first environment whose stack is still in use.
pub(crate) fn refuse_if_in_use(slug: &str, stacks: &[StackUse]) -> Result<(), DbError> {
    for (env, resources, intents, runs) in stacks {
        let why = if *runs > 0 {
            "an unfinished (queued or running) run: wait for it or cancel it".to_string()
        } else if *resources > 0 {
            format!("{resources} resources: destroy it first")
        } else if *intents > 0 {
            format!(
                "{intents} operations of unknown outcome (their cloud objects may exist): run a deploy or destroy to settle them"
            )
        } else {
            continue;
        };
        let what = if env == TRUST_ENV {
            "the trust verification".to_string()
        } else {
            format!("environment {env:?}")
        };
        return Err(DbError::Conflict(format!(
            "{what} of tenant {slug:?} still has {why}"
        )));
    }
    Ok(())
}

/// A row of `resources`, as [`RESOURCE_COLUMNS`] selects it.
type ResourceRow = (String, String, String, String, String, String, i64);

pub(crate) const RESOURCE_COLUMNS: &str =
    "key, kind, physical_id, status, inputs, outputs, updated_at";

/// The records of a stack's resource rows, by key (byte order on both engines, like
/// [`Database::configs`]).
pub(crate) fn resource_records(
    stack: &str,
    rows: Vec<ResourceRow>,
) -> Result<Vec<ResourceRecord>, DbError> {
    let mut records = rows
        .into_iter()
        .map(
            |(key, kind, physical_id, status, inputs, outputs, updated_at)| {
                Ok(ResourceRecord {
                    inputs: parse_json(|| format!("inputs of {stack}/{key}"), &inputs)?,
                    outputs: parse_json(|| format!("outputs of {stack}/{key}"), &outputs)?,
                    key,
                    kind,
                    physical_id,
                    status,
                    updated_at,
                })
            },
        )
        .collect::<Result<Vec<_>, DbError>>()?;
    records.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(records)
}

/// Keeps the stack `$stack`'s resources as they are now as the full state of its version
/// `$version`, inside the transaction `$tx` that records the version.
macro_rules! record_state {
    ($db:expr, $tx:expr, $stack:expr, $version:expr) => {
        async {
            let sql = format!(
                "SELECT {} FROM resources WHERE stack = $1",
                $crate::stacks::RESOURCE_COLUMNS
            );
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind($stack)
                .fetch_all(&mut *$tx)
                .await
                .map_err(|e| $db.query_error(e))?;
            let records = $crate::stacks::resource_records($stack, rows)?;
            let text = serde_json::to_string(&records).expect("records serialize");
            sqlx::query(
                "INSERT INTO state_versions (stack, version, resources) VALUES ($1, $2, $3)",
            )
            .bind($stack)
            .bind($version)
            .bind(text)
            .execute(&mut *$tx)
            .await
            .map_err(|e| $db.query_error(e))?;
            Ok::<(), DbError>(())
        }
    };
}
pub(crate) use record_state;

fn parse_json(what: impl FnOnce() -> String, text: &str) -> Result<Value, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(format!("stored {}: {e}", what())))
}

type ConfigRow = (String, String, Option<String>, i64, i64);

const CONFIG_COLUMNS: &str = "env, config, raw, version, updated_at";

/// An environment's config as stored: JSON, which the workers' blueprint reads.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredConfig {
    pub env: EnvName,
    /// The effective config (defaults filled in when it was saved).
    pub config: Value,
    /// The config as the caller sent it.
    pub raw: Value,
    pub version: i64,
    pub updated_at: i64,
}

fn record_from_row(row: ConfigRow) -> Result<StoredConfig, DbError> {
    let (env, config, raw, version, updated_at) = row;
    let env: EnvName = crate::db::stored(&env)?;
    let config = parse_json(|| format!("config of environment {env:?}"), &config)?;
    Ok(StoredConfig {
        // Saved before the raw form was kept: it is the effective one.
        raw: match raw {
            Some(raw) => parse_json(|| format!("raw config of environment {env:?}"), &raw)?,
            None => config.clone(),
        },
        config,
        env,
        version,
        updated_at,
    })
}

impl Database {
    /// NotFound names the tenant and environment.
    pub async fn config(&self, tenant: &Tenant, env: &EnvName) -> Result<StoredConfig, DbError> {
        let sql = format!(
            "SELECT {CONFIG_COLUMNS} FROM environment_configs WHERE tenant_id = $1 AND env = $2"
        );
        let row: Option<ConfigRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&tenant.id)
            .bind(env.as_str())
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        record_from_row(row.ok_or_else(|| {
            DbError::NotFound(format!(
                "config of environment {env:?} of tenant {:?}",
                tenant.slug
            ))
        })?)
    }

    /// The name of the stack of `tenant`'s environment `env`. Every read of an environment's
    /// records starts here, from the (tenant, environment) pair, never from a name built
    /// from strings: a name someone else holds is never reached. NotFound until the
    /// environment's config is first saved.
    pub async fn stack_of(&self, tenant: &Tenant, env: &EnvName) -> Result<StackName, DbError> {
        let name: Option<String> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT name FROM stacks WHERE tenant_id = $1 AND env = $2")
                .bind(&tenant.id)
                .bind(env.as_str())
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        let name = name.ok_or_else(|| {
            DbError::NotFound(format!("environment {env:?} of tenant {:?}", tenant.slug))
        })?;
        crate::db::stored(&name)
    }

    /// Every environment config of a tenant, by env name.
    pub async fn configs(&self, tenant_id: &str) -> Result<Vec<StoredConfig>, DbError> {
        let sql = format!("SELECT {CONFIG_COLUMNS} FROM environment_configs WHERE tenant_id = $1");
        let rows: Vec<ConfigRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        let mut records = rows
            .into_iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // Byte order on both engines (a Postgres locale would order '-' differently).
        records.sort_by(|a, b| a.env.cmp(&b.env));
        Ok(records)
    }

    /// Deletes an environment's config, and its stack with its finished runs' records.
    /// Conflict while the stack `{slug}-{env}` has resources, an unsettled operation or an
    /// unfinished run; NotFound if there is no config.
    pub async fn delete_config(
        &self,
        tenant_id: &str,
        slug: &TenantSlug,
        env: &EnvName,
        actor: &str,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let what = format!("environment {env:?} of tenant {slug:?}");
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM environment_configs WHERE tenant_id = $1 AND env = $2",
            )
            .bind(tenant_id)
            .bind(env.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            if n == 0 {
                return Err(DbError::NotFound(format!("config of {what}")));
            }
            let busy: Vec<StackUse> = sqlx::query_as(STACK_USE)
                .bind(tenant_id)
                .bind(env.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
            refuse_if_in_use(slug, &busy)?;
            for sql in PURGE_STACKS {
                sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(env.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.purge_error(&what, e))?;
            }
            audit!(&mut *tx, actor, "config.delete", StackName::of(slug, env).as_str(), now)
                .map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })
    }

    /// A foreign key violation while purging: a run or resource was recorded concurrently
    /// (the checks and the deletes are one transaction, but Postgres reads committed rows).
    pub(crate) fn purge_error(&self, what: &str, e: sqlx::Error) -> DbError {
        match e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => DbError::Conflict(format!(
                "{what} got new records while being deleted; try again"
            )),
            other => self.query_error(other),
        }
    }

    pub async fn stack_status(&self, stack: &StackName) -> Result<StackStatus, DbError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE stack = $1 ORDER BY seq DESC LIMIT 1");
        // Three reads, no transaction: on Postgres (READ COMMITTED) one would not give them a
        // common snapshot anyway, and the status is read far more often than it changes. A
        // run ending between the reads shows in the next status.
        let (row, counts, last): (_, Vec<(String, i64)>, Option<RunRow>) = with_pool!(self, p => {
            let row: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(
                "SELECT status, state_version, generation, lease_holder FROM stacks WHERE name = $1",
            )
            .bind(stack.as_str())
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))?;
            let counts = sqlx::query_as("SELECT status, COUNT(*) FROM resources WHERE stack = $1 GROUP BY status")
                .bind(stack.as_str())
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?;
            let last = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(stack.as_str())
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?;
            (row, counts, last)
        });
        let (status, state_version, generation, lease_holder) =
            row.ok_or_else(|| DbError::NotFound(format!("stack {stack}")))?;
        Ok(StackStatus {
            stack: stack.clone(),
            status,
            state_version,
            generation,
            lease_holder,
            resources: counts.into_iter().collect(),
            last_run: last.map(run_from_row).transpose()?,
        })
    }

    /// The stack's recorded resources, by key. NotFound for an unknown stack (an existing one
    /// may have none).
    pub async fn resources(&self, stack: &StackName) -> Result<Vec<ResourceRecord>, DbError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE stack = $1");
        let rows: Vec<ResourceRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(stack.as_str())
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        if rows.is_empty() {
            // An empty stack or none at all: asked only when there is nothing to list.
            let n: i64 = with_pool!(self, p => {
                sqlx::query_scalar("SELECT COUNT(*) FROM stacks WHERE name = $1")
                    .bind(stack.as_str())
                    .fetch_one(p)
                    .await
                    .map_err(|e| self.query_error(e))?
            });
            if n == 0 {
                return Err(DbError::NotFound(format!("stack {stack}")));
            }
        }
        resource_records(stack.as_str(), rows)
    }
}

/// What `GET .../environments/{env}/status` shows, read by [`Database::environment_status`].
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentRead {
    /// With the last run as recorded (its requester not yet hidden from a tenant token).
    pub status: StackStatus,
    /// Whether the last run was requested by a token of the viewer's tenant (false for an
    /// admin viewer, who sees every requester anyway).
    pub last_run_by_viewer: bool,
    /// The recorded resources, by key.
    pub resources: Vec<ResourceRecord>,
    /// The latest refresh that succeeded.
    pub last_refresh: Option<Run>,
    /// The effective config.
    pub config: Value,
    /// The slot of the stack's last scheduled run.
    pub last_schedule_slot: Option<i64>,
    /// The server's default drift-check period ([`byoc_model::DRIFT_CHECK_EVERY_FACT`]).
    pub drift_check_every: Option<String>,
}

/// The columns of a run ([`RUN_COLUMNS`]) of the table aliased `$p`.
macro_rules! run_columns {
    ($p:literal) => {
        concat!(
            $p,
            ".id, ",
            $p,
            ".seq, ",
            $p,
            ".stack, ",
            $p,
            ".kind, ",
            $p,
            ".status, ",
            $p,
            ".requested_by, ",
            $p,
            ".created_at, ",
            $p,
            ".started_at, ",
            $p,
            ".finished_at, ",
            $p,
            ".error, ",
            $p,
            ".summary, ",
            $p,
            ".cancel_requested, ",
            $p,
            ".config_version"
        )
    };
}

/// [`Database::environment_status`]'s query, given the engine's JSON array of the stack's
/// resource rows: `$1` the drift-check fact's key, `$2` the viewer's tenant id (NULL: an
/// admin), `$3` the environment, `$4` the tenant's slug. The tenant is found by its slug and
/// must be the viewer's (a tenant token sees its own only), the stack by (tenant,
/// environment); then its config, its last run and last succeeded refresh (by seq, the
/// request order), the server's drift-check default and the last schedule slot.
macro_rules! environment_status {
    ($resources:literal) => {
        concat!(
            "SELECT s.name, s.status, s.state_version, s.generation, s.lease_holder, c.config,
                (SELECT f.value FROM platform_facts f WHERE f.key = $1),
                (SELECT MAX(q.schedule_slot) FROM runs q WHERE q.stack = s.name),
                ",
            $resources,
            ",
                EXISTS (SELECT 1 FROM api_tokens a WHERE a.id = substr(l.requested_by, 7, 16)
                        AND a.tenant_id = $2
                        AND (l.requested_by = 'token:' || a.id
                             OR substr(l.requested_by, 1, length(a.id) + 7) = 'token:' || a.id || ' ')),
                ",
            run_columns!("l"),
            ", ",
            run_columns!("d"),
            "
             FROM tenants t
             LEFT JOIN stacks s ON s.tenant_id = t.id AND s.env = $3
             LEFT JOIN environment_configs c ON c.tenant_id = t.id AND c.env = $3
             LEFT JOIN runs l ON l.seq = (SELECT MAX(x.seq) FROM runs x WHERE x.stack = s.name)
             LEFT JOIN runs d ON d.seq = (SELECT MAX(x.seq) FROM runs x WHERE x.stack = s.name
                                          AND x.kind = 'refresh' AND x.status = 'succeeded')
             WHERE t.slug = $4 AND ($2 IS NULL OR t.id = $2)"
        )
    };
}

/// The resource rows ([`RESOURCE_COLUMNS`]; inputs and outputs as the JSON texts they are
/// stored as) as one JSON text, per engine: SQLite's and Postgres' JSON functions differ.
const SQLITE_ENVIRONMENT_STATUS: &str = environment_status!(
    "(SELECT json_group_array(json_array(r.key, r.kind, r.physical_id, r.status, r.inputs, r.outputs, r.updated_at))
      FROM resources r WHERE r.stack = s.name)"
);
const POSTGRES_ENVIRONMENT_STATUS: &str = environment_status!(
    "(SELECT CAST(json_agg(json_build_array(r.key, r.kind, r.physical_id, r.status, r.inputs, r.outputs, r.updated_at)) AS TEXT)
      FROM resources r WHERE r.stack = s.name)"
);

impl Database {
    /// Everything the status of `slug`'s environment `env` shows, in one query (one round
    /// trip on Postgres): the stack's status, resource counts and last run, its resources,
    /// its last succeeded refresh, its config and what its drift-check schedule needs.
    /// `viewer`: the caller's tenant id (None: an admin); another tenant is NotFound exactly
    /// as a missing one. NotFound names the tenant, then the environment, then its config,
    /// as [`Database::tenant`], [`Database::stack_of`] and [`Database::config`] do.
    pub async fn environment_status(
        &self,
        slug: &TenantSlug,
        env: &EnvName,
        viewer: Option<&str>,
    ) -> Result<EnvironmentRead, DbError> {
        let sql = match self.pool() {
            crate::db::Pool::Sqlite(_) => SQLITE_ENVIRONMENT_STATUS,
            crate::db::Pool::Postgres(_) => POSTGRES_ENVIRONMENT_STATUS,
        };
        type Head = (
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            bool,
        );
        let read: Option<(Head, Option<RunRow>, Option<RunRow>)> = with_pool!(self, p => {
            let row = sqlx::query(sql)
                .bind(byoc_model::DRIFT_CHECK_EVERY_FACT)
                .bind(viewer)
                .bind(env.as_str())
                .bind(slug.as_str())
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?;
            match row {
                None => None,
                Some(row) => {
                    use sqlx::Row;
                    let get = |e| self.query_error(e);
                    let head: Head = (
                        row.try_get(0).map_err(get)?,
                        row.try_get(1).map_err(get)?,
                        row.try_get(2).map_err(get)?,
                        row.try_get(3).map_err(get)?,
                        row.try_get(4).map_err(get)?,
                        row.try_get(5).map_err(get)?,
                        row.try_get(6).map_err(get)?,
                        row.try_get(7).map_err(get)?,
                        row.try_get(8).map_err(get)?,
                        row.try_get(9).map_err(get)?,
                    );
                    // A run's 13 columns from `at`, if its row was joined (its id is never
                    // NULL).
                    let run = |at: usize| -> Result<Option<RunRow>, DbError> {
                        let id: Option<String> = row.try_get(at).map_err(get)?;
                        let Some(id) = id else { return Ok(None) };
                        Ok(Some((
                            id,
                            row.try_get(at + 1).map_err(get)?,
                            row.try_get(at + 2).map_err(get)?,
                            row.try_get(at + 3).map_err(get)?,
                            row.try_get(at + 4).map_err(get)?,
                            row.try_get(at + 5).map_err(get)?,
                            row.try_get(at + 6).map_err(get)?,
                            row.try_get(at + 7).map_err(get)?,
                            row.try_get(at + 8).map_err(get)?,
                            row.try_get(at + 9).map_err(get)?,
                            row.try_get(at + 10).map_err(get)?,
                            row.try_get(at + 11).map_err(get)?,
                            row.try_get(at + 12).map_err(get)?,
                        )))
                    };
                    Some((head, run(10)?, run(23)?))
                }
            }
        });
        let Some((head, last, refresh)) = read else {
            return Err(DbError::NotFound(format!("tenant {slug:?}")));
        };
        let (
            name,
            status,
            state_version,
            generation,
            lease_holder,
            config,
            drift_check_every,
            last_schedule_slot,
            resources,
            last_run_by_viewer,
        ) = head;
        let (Some(name), Some(status), Some(state_version), Some(generation)) =
            (name, status, state_version, generation)
        else {
            return Err(DbError::NotFound(format!(
                "environment {env:?} of tenant {slug:?}"
            )));
        };
        let stack: StackName = crate::db::stored(&name)?;
        let rows: Vec<ResourceRow> = match resources {
            // Postgres aggregates no rows to NULL, SQLite to `[]`.
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| DbError::Corrupt(format!("resources of stack {stack}: {e}")))?,
        };
        let resources = resource_records(stack.as_str(), rows)?;
        let mut counts = std::collections::BTreeMap::new();
        for r in &resources {
            *counts.entry(r.status.clone()).or_insert(0) += 1;
        }
        let config = config.ok_or_else(|| {
            DbError::NotFound(format!("config of environment {env:?} of tenant {slug:?}"))
        })?;
        let config = parse_json(|| format!("config of environment {env:?}"), &config)?;
        Ok(EnvironmentRead {
            status: StackStatus {
                stack,
                status,
                state_version,
                generation,
                lease_holder,
                resources: counts,
                last_run: last.map(run_from_row).transpose()?,
            },
            last_run_by_viewer,
            resources,
            last_refresh: refresh.map(run_from_row).transpose()?,
            config,
            last_schedule_slot,
            drift_check_every,
        })
    }
}

impl Database {
    /// The stack's state versions, newest first.
    pub async fn state_history(&self, stack: &StackName) -> Result<Vec<HistoryEntry>, DbError> {
        self.history_page(stack, None, u32::MAX).await
    }

    /// At most `limit` state versions of `stack` below `before` (all when `None`), newest
    /// first.
    pub async fn history_page(
        &self,
        stack: &StackName,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, DbError> {
        self.stack_status(stack).await?;
        let rows: Vec<(i64, String, i64, String)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT version, run_id, at, changes FROM state_history WHERE stack = $1 AND version < $2
                 ORDER BY version DESC LIMIT $3",
            )
            .bind(stack.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        rows.into_iter()
            .map(|(version, run_id, at, changes)| {
                Ok(HistoryEntry {
                    changes: parse_json(|| format!("history {version} of {stack}"), &changes)?,
                    version,
                    run_id: crate::db::stored(&run_id)?,
                    at,
                })
            })
            .collect()
    }

    /// The full state of the stack at state `version`: 0 is the empty state before the first
    /// recorded change. NotFound names the version when the stack has no such version, or
    /// kept only what it changed (versions recorded before full states were kept).
    pub async fn state_at(
        &self,
        stack: &StackName,
        version: i64,
    ) -> Result<StateVersionView, DbError> {
        if version < 0 {
            return Err(DbError::Invalid(format!(
                "state version {version}: versions are 0 or more"
            )));
        }
        let status = self.stack_status(stack).await?;
        if version == 0 {
            return Ok(StateVersionView {
                stack: stack.clone(),
                version,
                run_id: None,
                at: None,
                resources: vec![],
            });
        }
        let row: Option<(String, i64, Option<String>)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT h.run_id, h.at, v.resources FROM state_history h
                 LEFT JOIN state_versions v ON v.stack = h.stack AND v.version = h.version
                 WHERE h.stack = $1 AND h.version = $2",
            )
            .bind(stack.as_str())
            .bind(version)
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        let Some((run_id, at, resources)) = row else {
            return Err(DbError::NotFound(format!(
                "state version {version} of stack {stack} (its versions are 0 to {})",
                status.state_version
            )));
        };
        let Some(resources) = resources else {
            return Err(DbError::NotFound(format!(
                "the full state of version {version} of stack {stack} (recorded before byoc kept full states: only what it changed is in the history)"
            )));
        };
        let resources = serde_json::from_str(&resources).map_err(|e| {
            DbError::Corrupt(format!("stored state version {version} of {stack}: {e}"))
        })?;
        Ok(StateVersionView {
            stack: stack.clone(),
            version,
            run_id: Some(crate::db::stored(&run_id)?),
            at: Some(at),
            resources,
        })
    }

    /// How the state at version `to` differs from the state at version `from` (either may
    /// be the older one).
    pub async fn state_diff(
        &self,
        stack: &StackName,
        from: i64,
        to: i64,
    ) -> Result<StateDiff, DbError> {
        let old = self.state_at(stack, from).await?;
        let new = self.state_at(stack, to).await?;
        Ok(StateDiff::between(&old, &new))
    }

    /// Audit entries, newest first, with an id below `before` (a page cursor), at most
    /// `limit` (1..=1000).
    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DbError> {
        if !(1..=1000).contains(&limit) {
            return Err(DbError::Invalid(format!(
                "limit {limit} is out of range: use 1 to 1000"
            )));
        }
        let rows: Vec<(i64, String, String, String, i64, String)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT id, actor, action, target, at, details FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        rows.into_iter()
            .map(|(id, actor, action, target, at, details)| {
                Ok(AuditEntry {
                    details: parse_json(|| format!("audit entry {id}"), &details)?,
                    id,
                    actor,
                    action,
                    target,
                    at,
                })
            })
            .collect()
    }
}

/// What `/metrics` reports from the store: it holds the truth of every worker's runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMetrics {
    /// (kind, status, count)
    pub runs: Vec<(String, String, i64)>,
    /// (kind, milliseconds) of the latest finished runs.
    pub run_durations_ms: Vec<(String, i64)>,
    /// (operation, milliseconds) of the latest provider calls that succeeded.
    pub call_durations_ms: Vec<(String, i64)>,
}

/// How many recent runs and steps the duration histograms cover.
const METRICS_WINDOW: i64 = 10_000;

impl Database {
    pub async fn run_metrics(&self) -> Result<RunMetrics, DbError> {
        type Rows = (
            Vec<(String, String, i64)>,
            Vec<(String, i64)>,
            Vec<(String, i64)>,
        );
        let (runs, run_durations_ms, call_durations_ms): Rows = with_pool!(self, p => {
            let runs = sqlx::query_as("SELECT kind, status, COUNT(*) FROM runs GROUP BY kind, status ORDER BY kind, status")
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?;
            let durations = sqlx::query_as(
                "SELECT kind, finished_at - started_at FROM runs WHERE finished_at IS NOT NULL AND started_at IS NOT NULL
                 ORDER BY seq DESC LIMIT $1",
            )
            .bind(METRICS_WINDOW)
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?;
            // The journal's newest entries, by its key: no scan of the events' text.
            let calls = sqlx::query_as(
                "SELECT operation, finished_at - started_at FROM journal
                 WHERE id > (SELECT COALESCE(MAX(id), 0) FROM journal) - $1
                   AND phase = 'succeeded' AND finished_at IS NOT NULL",
            )
            .bind(METRICS_WINDOW)
            .fetch_all(p)
            .await
            .map_err(|e| self.query_error(e))?;
            (runs, durations, calls)
        });
        Ok(RunMetrics {
            runs,
            run_durations_ms,
            call_durations_ms,
        })
    }
}

impl Database {
    /// Where a run is, for whoever follows it live: its last event's seq and its status, in
    /// one read.
    pub async fn run_progress(
        &self,
        run_id: &str,
    ) -> Result<(i64, byoc_model::RunStatus), DbError> {
        let row: Option<(String, i64)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT r.status, (SELECT COALESCE(MAX(e.seq), 0) FROM run_events e WHERE e.run_id = r.id)
                 FROM runs r WHERE r.id = $1",
            )
            .bind(run_id)
            .fetch_optional(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        let (status, seq) = row.ok_or_else(|| DbError::NotFound(format!("run {run_id}")))?;
        Ok((seq, crate::db::stored(&status)?))
    }
}
