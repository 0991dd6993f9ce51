//! byoc's store on a test database of its own (feature `stacks`).

use anyhow::Result;
use byoc_stacks::{Database, NewTenant, Pool, Sealer, migrate_url, schema_fingerprint};

use crate::TestDb;

/// A migrated SQLite file and a migrated Postgres database, each the test's own, with a
/// store on each (the `TestDb` keeps its database alive).
pub async fn databases() -> Result<Vec<(TestDb, Database)>> {
    let mut out = Vec::new();
    for t in TestDb::both(&schema_fingerprint(), |url| async move {
        Ok(migrate_url(&url).await?)
    })
    .await?
    {
        let db = Database::connect(t.url()).await?;
        out.push((t, db));
    }
    Ok(out)
}

/// Tenant `slug` (account 111111111111, its external id sealed with `sealer`) with a stack
/// record for each of `envs`: their stack names, in order.
pub async fn tenant_with_stacks(
    db: &Database,
    sealer: &Sealer,
    slug: &str,
    envs: &[&str],
) -> Result<Vec<String>> {
    let new = NewTenant {
        slug: slug.into(),
        name: "Acme".into(),
        aws_account_id: "111111111111".into(),
        labels: Default::default(),
    };
    let (tenant, _) = db.create_tenant(sealer, &new, "test").await?;
    let mut names = Vec::new();
    for env in envs {
        let name = format!("{slug}-{env}");
        db.ensure_stack(&name, &tenant.id, env).await?;
        names.push(name);
    }
    Ok(names)
}

/// Marks tenant `slug` trusted behind the store's back, as if its trust stack had been
/// verified.
pub async fn trust_tenant(db: &Database, slug: &str) -> Result<()> {
    let sql = "UPDATE tenants SET onboarding_status = 'trusted' WHERE slug = $1";
    match db.pool() {
        Pool::Sqlite(p) => sqlx::query(sql).bind(slug).execute(p).await.map(drop)?,
        Pool::Postgres(p) => sqlx::query(sql).bind(slug).execute(p).await.map(drop)?,
    }
    Ok(())
}
