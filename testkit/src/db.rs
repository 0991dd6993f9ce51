use std::future::Future;

use anyhow::{Context, Result};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tempfile::TempDir;

/// Postgres server for tests: `BYOC_TEST_DATABASE_URL`, by default the local trust-auth one.
pub fn postgres_admin_url() -> String {
    std::env::var("BYOC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database of one test's own: a fresh SQLite file in a temporary directory, or a fresh
/// Postgres database cloned from a template. Both are removed when it is dropped, also when
/// the test panics.
pub struct TestDb {
    url: String,
    postgres_name: Option<String>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> Result<TestDb> {
        let dir = tempfile::Builder::new().prefix("byoc-test-").tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("byoc.db").display());
        Ok(TestDb {
            url,
            postgres_name: None,
            _dir: Some(dir),
        })
    }

    /// A fresh Postgres database cloned from the template `byoc_tpl_{fingerprint}`, which
    /// `setup` builds once (e.g. runs the migrations) the first time any test asks for it.
    /// Change the fingerprint when what `setup` does changes (e.g. a hash of the migrations).
    /// Cloning a template is a file copy, far faster than migrating every test database.
    pub async fn postgres<F, Fut>(fingerprint: &str, setup: F) -> Result<TestDb>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let admin_url = postgres_admin_url();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connect to test Postgres at {admin_url}"))?;
        let template = format!("byoc_tpl_{}", sanitize(fingerprint));
        // Test binaries run in parallel processes: one builds the template, the others wait.
        admin
            .execute("SELECT pg_advisory_lock(727274)")
            .await
            .context("lock the template")?;
        let built = ensure_template(&mut admin, &admin_url, &template, setup).await;
        admin.execute("SELECT pg_advisory_unlock(727274)").await?;
        built?;

        let name = format!("byoc_test_{}", uuid::Uuid::new_v4().simple());
        // CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template; only
        // setup connects to it, and that has finished.
        exec_admin(
            &mut admin,
            format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
        )
        .await
        .with_context(|| format!("clone {template} into {name}"))?;
        Ok(TestDb {
            url: with_database(&admin_url, &name),
            postgres_name: Some(name),
            _dir: None,
        })
    }

    /// A fresh SQLite file and a fresh Postgres database, both prepared by `setup` (which
    /// builds the Postgres template once, as in [`TestDb::postgres`]): for tests that must
    /// behave the same on both engines.
    pub async fn both<F, Fut>(fingerprint: &str, setup: F) -> Result<[TestDb; 2]>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let sqlite = TestDb::sqlite().await?;
        setup(sqlite.url.clone())
            .await
            .context("set up the SQLite test database")?;
        let postgres = TestDb::postgres(fingerprint, &setup).await?;
        Ok([sqlite, postgres])
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: use a runtime of
        // its own on a thread of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let mut admin = PgConnection::connect(&postgres_admin_url()).await?;
                    exec_admin(
                        &mut admin,
                        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
                    )
                    .await?;
                    anyhow::Ok(())
                })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a test database: {e:#}");
        }
    }
}

async fn ensure_template<F, Fut>(
    admin: &mut PgConnection,
    admin_url: &str,
    template: &str,
    setup: F,
) -> Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let ready: Option<(bool,)> =
        sqlx::query_as("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind(template)
            .fetch_optional(&mut *admin)
            .await?;
    match ready {
        Some((true,)) => return Ok(()),
        // A half-built template from an interrupted run.
        Some((false,)) => {
            exec_admin(admin, format!(r#"DROP DATABASE "{template}" WITH (FORCE)"#)).await?;
        }
        None => {}
    }
    exec_admin(admin, format!(r#"CREATE DATABASE "{template}""#))
        .await
        .with_context(|| format!("create template {template}"))?;
    setup(with_database(admin_url, template))
        .await
        .with_context(|| format!("set up template {template}"))?;
    // Marked only once complete, so a crash during setup is retried, never cloned.
    exec_admin(
        admin,
        format!(r#"ALTER DATABASE "{template}" WITH IS_TEMPLATE true"#),
    )
    .await?;
    Ok(())
}

/// Runs `sql` on the test database at `url` behind the store's back (what a worker or an
/// operator would have written).
pub async fn exec(url: &str, sql: &str) -> Result<()> {
    let sql = AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite") {
        sqlx::query(sql)
            .execute(&sqlx::SqlitePool::connect(url).await?)
            .await?;
    } else {
        sqlx::query(sql)
            .execute(&sqlx::PgPool::connect(url).await?)
            .await?;
    }
    Ok(())
}

/// Statements built at run time from names this module generated itself.
async fn exec_admin(conn: &mut PgConnection, statement: String) -> sqlx::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(conn)
        .await
        .map(drop)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
