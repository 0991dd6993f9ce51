use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::runs::RunLimits;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller waits for a pooled connection before the database counts as unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A valid value the stack's current state does not allow (a deployed environment's
    /// region, say): refused, naming the field.
    #[error("{field}: {message}")]
    Refused {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another tenant's environment already has this stack name (`{slug}-{env}`), which AWS
    /// names and tags are derived from: the stack name must stay unique.
    #[error("stack name {0} is taken")]
    StackNameTaken(String),
    /// A stored record byoc cannot read back: a bug or a hand edit, never the caller's input.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The stack's lease was taken over: this worker must stop writing.
    #[error("stack lease lost: {0}")]
    Fenced(String),
    /// A stack or a tenant has as many unfinished runs as [`RunLimits`] allow: the request
    /// is refused, not queued.
    #[error(
        "{scope} has {unfinished} unfinished runs (queued or running), and the cap is {cap} per {per}: wait for some to finish, or cancel some, then ask again"
    )]
    TooManyRuns {
        /// `stack NAME` or `tenant SLUG`.
        scope: String,
        /// `stack` or `tenant`.
        per: &'static str,
        unfinished: i64,
        cap: u32,
    },
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("invalid database URL {url:?}")]
    InvalidUrl {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create directory {path} for the SQLite database")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database {url} unreachable: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating database {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: MigrateError,
    },
    #[error("query on {url} failed: {source}")]
    Query {
        url: String,
        #[source]
        source: sqlx::Error,
    },
}

impl DbError {
    /// The database could not be reached or is overloaded: worth retrying later, and not the
    /// caller's fault (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unreachable { .. } => true,
            DbError::Query { source, .. } => match source {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(d) => d.code().is_some_and(|code| {
                    // Postgres: connection exceptions (08), insufficient resources (53),
                    // operator intervention such as a shutdown (57). SQLite: busy, locked.
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57")
                        || code == "5"
                        || code == "6"
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A value read back from the store: one that does not parse is corrupt, not invalid input.
pub(crate) fn stored<T: std::str::FromStr<Err = byoc_model::Invalid>>(
    text: &str,
) -> Result<T, DbError> {
    text.parse()
        .map_err(|e: byoc_model::Invalid| DbError::Corrupt(e.0))
}

impl From<byoc_model::Invalid> for DbError {
    fn from(e: byoc_model::Invalid) -> DbError {
        DbError::Invalid(e.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// A connection pool to the store, on SQLite or Postgres.
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
    /// The URL with any password removed: safe for errors and logs.
    url: String,
    /// Caps on the unfinished runs a request may add to.
    limits: RunLimits,
    /// Wakes this process's queue consumers when it pushes a job.
    pushed: crate::queue::JobsPushed,
}

/// The typed pool, for what must use one (the queue's storage).
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` once per engine with `$pool` bound to the typed pool. Queries are written once:
/// `$n` placeholders (first used in ascending order) mean the same to SQLite as to Postgres,
/// and every column type (TEXT, BIGINT, BLOB/BYTEA, BOOLEAN) binds the same Rust types.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Appends to the audit log on `$conn` (inside the caller's transaction); the target is
/// text or an identity (a slug, a stack name).
macro_rules! audit {
    ($conn:expr, $actor:expr, $action:expr, $target:expr, $at:expr) => {
        sqlx::query("INSERT INTO audit_log (actor, action, target, at) VALUES ($1, $2, $3, $4)")
            .bind($actor)
            .bind($action)
            .bind(AsRef::<str>::as_ref($target))
            .bind($at)
            .execute($conn)
            .await
            .map(drop)
    };
    ($conn:expr, $actor:expr, $action:expr, $target:expr, $at:expr, $details:expr) => {
        sqlx::query(
            "INSERT INTO audit_log (actor, action, target, at, details) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($actor)
        .bind($action)
        .bind(AsRef::<str>::as_ref($target))
        .bind($at)
        .bind(serde_json::Value::to_string($details))
        .execute($conn)
        .await
        .map(drop)
    };
}
pub(crate) use audit;

impl Database {
    /// Opens the store at `url`. A SQLite file (and its directory) is created if missing. A
    /// Postgres pool connects lazily, so a server can start while its database is still down
    /// and report that through its readiness check.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        let shown = redact_url(url);
        let invalid = |source| DbError::InvalidUrl {
            url: shown.clone(),
            source,
        };
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(invalid)?
                .create_if_missing(true)
                // WAL lets readers (the API) proceed while a worker writes.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true);
            if let Some(dir) = opts
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(opts)
                .await
                .map_err(|source| DbError::Unreachable {
                    url: shown.clone(),
                    source,
                })?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(invalid)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(opts),
            )
        } else {
            return Err(DbError::UnsupportedUrl(shown));
        };
        Ok(Database {
            pool,
            url: shown,
            limits: RunLimits::DEFAULT,
            pushed: Default::default(),
        })
    }

    /// The same store, refusing run requests past `limits` (`byoc serve
    /// --max-runs-per-stack`, `--max-runs-per-tenant`).
    pub fn with_run_limits(mut self, limits: RunLimits) -> Database {
        self.limits = limits;
        self
    }

    pub fn run_limits(&self) -> RunLimits {
        self.limits
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The wake-up of this process's queue consumers on this database (shared by its clones).
    pub fn jobs_pushed(&self) -> &crate::queue::JobsPushed {
        &self.pushed
    }

    /// The SQLite file, for the embedded default's key file beside it.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p.connect_options().get_filename().to_path_buf()),
            Pool::Postgres(_) => None,
        }
    }

    /// Reverts the latest applied migration; `Ok(None)` when none is applied.
    pub async fn migrate_down(&self) -> Result<Option<i64>, DbError> {
        let applied = self.migration_status().await?;
        let Some(latest) = applied
            .iter()
            .filter(|m| m.applied)
            .map(|m| m.version)
            .max()
        else {
            return Ok(None);
        };
        let below = applied
            .iter()
            .filter(|m| m.version < latest)
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let result = match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.undo(p, below).await,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.undo(p, below).await,
        };
        result.map_err(|source| DbError::Migrate {
            url: self.url.clone(),
            source,
        })?;
        Ok(Some(latest))
    }

    /// Every migration this build knows, and whether it is applied.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, DbError> {
        let migrator = match &self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        // No table yet means nothing applied.
        let applied: Vec<i64> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(p)
                .await
                .unwrap_or_default()
        });
        Ok(migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    /// Applies every pending migration of this database's engine.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let result = match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        };
        result.map_err(|source| DbError::Migrate {
            url: self.url.clone(),
            source,
        })
    }

    /// Round-trips a trivial query: is the database reachable right now?
    pub async fn ping(&self) -> Result<(), DbError> {
        let result = match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
        };
        result.map_err(|source| DbError::Unreachable {
            url: self.url.clone(),
            source,
        })
    }

    /// Records a platform fact (e.g. `platform_account_id`), replacing any earlier value.
    pub async fn set_fact(&self, key: &str, value: &str) -> Result<(), DbError> {
        let result = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(
                "INSERT INTO platform_facts (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(key)
            .bind(value)
            .execute(p)
            .await
            .map(drop),
            Pool::Postgres(p) => sqlx::query(
                "INSERT INTO platform_facts (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
            )
            .bind(key)
            .bind(value)
            .execute(p)
            .await
            .map(drop),
        };
        result.map_err(|source| self.query_error(source))
    }

    /// A platform fact recorded by [`Database::set_fact`], if any.
    pub async fn fact(&self, key: &str) -> Result<Option<String>, DbError> {
        let result = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar("SELECT value FROM platform_facts WHERE key = ?1")
                    .bind(key)
                    .fetch_optional(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar("SELECT value FROM platform_facts WHERE key = $1")
                    .bind(key)
                    .fetch_optional(p)
                    .await
            }
        };
        result.map_err(|source| self.query_error(source))
    }

    /// Closes every pooled connection (e.g. before a SQLite file is removed).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    pub(crate) fn query_error(&self, source: sqlx::Error) -> DbError {
        DbError::Query {
            url: self.url.clone(),
            source,
        }
    }
}

/// Opens the store at `url`, applies its migrations and closes it again (e.g. to prepare a
/// test database).
pub async fn migrate_url(url: &str) -> Result<(), DbError> {
    let db = Database::connect(url).await?;
    let result = db.migrate().await;
    db.close().await;
    result
}

/// Identifies the schema the migrations produce (both engines), e.g. to name a test
/// template database: it changes whenever a migration is added or edited.
pub fn schema_fingerprint() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in SQLITE_MIGRATIONS.iter().chain(POSTGRES_MIGRATIONS.iter()) {
        m.version.hash(&mut h);
        m.checksum.hash(&mut h);
    }
    let latest = POSTGRES_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    format!("{latest}_{:016x}", h.finish())
}

/// `url` with the password (if any) replaced by `***`, for errors and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The database's clock (Unix ms) in each engine's SQL. Leases are taken, renewed and judged
/// by it, and runs' start and end times read from it, so that workers whose hosts' clocks
/// disagree still agree on when a lease expires. Postgres: `clock_timestamp()`, the time of
/// the statement (`now()` would be the transaction's start).
pub(crate) trait DbClock {
    const NOW_MS: &'static str;
}

impl DbClock for SqlitePool {
    const NOW_MS: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
}

impl DbClock for PgPool {
    const NOW_MS: &'static str = "floor(extract(epoch from clock_timestamp()) * 1000)::bigint";
}

/// `sql` with every `{now}` replaced by the database's clock of `pool`'s engine.
pub(crate) fn on_db_clock<P: DbClock>(_pool: &P, sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.replace("{now}", P::NOW_MS))
}

/// Opening a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
/// at once (waiting up to the busy timeout) instead of on the first write, where a
/// transaction that has already read fails with SQLITE_BUSY_SNAPSHOT if another connection
/// (or process) wrote in between.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://byoc:s3cret@db:5432/byoc"),
            "postgres://byoc:***@db:5432/byoc"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("sqlite://byoc-data/byoc.db"),
            "sqlite://byoc-data/byoc.db"
        );
    }
}
