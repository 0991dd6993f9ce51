//! The store on a per-test SQLite file and a per-test Postgres database.

use byoc_stacks::{Database, schema_fingerprint};
use byoc_testkit::TestDb;

async fn migrated_postgres() -> anyhow::Result<TestDb> {
    TestDb::postgres(&schema_fingerprint(), |url| async move {
        let db = Database::connect(&url).await?;
        db.migrate().await?;
        db.close().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn sqlite_file_per_test() -> anyhow::Result<()> {
    let (one, two) = (TestDb::sqlite().await?, TestDb::sqlite().await?);
    assert_ne!(one.url(), two.url());
    let a = Database::connect(one.url()).await?;
    a.migrate().await?;
    a.ping().await?;
    a.set_fact("platform_account_id", "123456789012").await?;
    a.set_fact("platform_account_id", "210987654321").await?;
    assert_eq!(
        a.fact("platform_account_id").await?.as_deref(),
        Some("210987654321")
    );

    let b = Database::connect(two.url()).await?;
    b.migrate().await?;
    assert_eq!(
        b.fact("platform_account_id").await?,
        None,
        "test databases are separate"
    );
    Ok(())
}

#[tokio::test]
async fn postgres_database_per_test_from_a_migrated_template() -> anyhow::Result<()> {
    let (one, two) = (migrated_postgres().await?, migrated_postgres().await?);
    assert_ne!(one.url(), two.url());
    let a = Database::connect(one.url()).await?;
    // The clone already has the schema: no migration run here.
    a.set_fact("platform_account_id", "123456789012").await?;
    assert_eq!(
        a.fact("platform_account_id").await?.as_deref(),
        Some("123456789012")
    );
    a.migrate().await?; // and it is current: a no-op

    let b = Database::connect(two.url()).await?;
    assert_eq!(
        b.fact("platform_account_id").await?,
        None,
        "test databases are separate"
    );

    let name = one.url().rsplit('/').next().unwrap().to_string();
    drop(one);
    let admin = sqlx::PgPool::connect(&byoc_testkit::postgres_admin_url()).await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&admin)
        .await?;
    assert_eq!(left, 0, "{name} was not dropped");
    Ok(())
}

#[tokio::test]
async fn unsupported_and_unreachable_urls_are_clear_errors() {
    let err = Database::connect("mysql://localhost/x").await.unwrap_err();
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );

    let db = Database::connect("postgres://byoc:hunter2@127.0.0.1:1/none")
        .await
        .unwrap();
    let err = db.ping().await.unwrap_err().to_string();
    assert!(err.contains("unreachable"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}
