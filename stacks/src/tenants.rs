//! Tenants: the customers whose AWS accounts byoc deploys into.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Sealer, random_bytes};
use crate::db::BeginWrite;
use crate::db::{audit, with_pool};
use crate::model::{OnboardingStatus, validate_account_id, validate_slug};
use crate::{Database, DbError, now_ms};

#[derive(Clone, Debug, Deserialize)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub aws_account_id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub aws_account_id: String,
    pub labels: BTreeMap<String, String>,
    pub onboarding_status: OnboardingStatus,
    pub onboarding_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, slug, name, aws_account_id, labels, onboarding_status, onboarding_message, created_at, updated_at";

type TenantRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
);

fn tenant_from_row(row: TenantRow) -> Result<Tenant, DbError> {
    let (
        id,
        slug,
        name,
        aws_account_id,
        labels,
        status,
        onboarding_message,
        created_at,
        updated_at,
    ) = row;
    Ok(Tenant {
        id,
        slug,
        name,
        aws_account_id,
        labels: serde_json::from_str(&labels)
            .map_err(|e| DbError::Invalid(format!("tenant labels: {e}")))?,
        onboarding_status: status.parse()?,
        onboarding_message,
        created_at,
        updated_at,
    })
}

/// A fresh external id: 32 random bytes, hex (256 bits; AWS allows 2-1224 characters).
fn new_external_id() -> String {
    hex::encode(random_bytes::<32>())
}

impl Database {
    /// Creates a tenant and returns it with its external id, which is stored only sealed and
    /// never returned again.
    pub async fn create_tenant(
        &self,
        sealer: &Sealer,
        new: &NewTenant,
        actor: &str,
    ) -> Result<(Tenant, String), DbError> {
        validate_slug(&new.slug)?;
        validate_account_id(&new.aws_account_id)?;
        if new.name.trim().is_empty() {
            return Err(DbError::Invalid("tenant name is empty".into()));
        }
        let external_id = new_external_id();
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let labels = serde_json::to_string(&new.labels).expect("labels serialize");
        let sealed = sealer.seal(&external_id);
        let result = with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, slug, name, aws_account_id, labels, external_id_sealed, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(&new.slug)
            .bind(&new.name)
            .bind(&new.aws_account_id)
            .bind(&labels)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(DbError::Conflict(format!("a tenant with slug {:?} exists", new.slug)));
                }
                other => other.map_err(|e| self.query_error(e))?,
            };
            audit!(&mut *tx, actor, "tenant.create", &new.slug, now).map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        });
        result?;
        Ok((self.tenant(&new.slug).await?, external_id))
    }

    pub async fn tenant(&self, slug: &str) -> Result<Tenant, DbError> {
        self.tenant_where("slug = $1", slug, &format!("tenant {slug:?}"))
            .await
    }

    /// The tenant a stack belongs to.
    pub async fn stack_tenant(&self, stack: &str) -> Result<Tenant, DbError> {
        self.tenant_where(
            "id = (SELECT tenant_id FROM stacks WHERE name = $1)",
            stack,
            &format!("tenant of stack {stack:?}"),
        )
        .await
    }

    async fn tenant_where(&self, filter: &str, value: &str, what: &str) -> Result<Tenant, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE {filter}");
        with_pool!(self, p => {
            let row: TenantRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
                .ok_or_else(|| DbError::NotFound(what.to_string()))?;
            tenant_from_row(row)
        })
    }

    /// The tenant's external id, opened: only a worker assuming the tenant's role needs it.
    pub async fn tenant_external_id(&self, sealer: &Sealer, slug: &str) -> Result<String, DbError> {
        let sealed: Vec<u8> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT external_id_sealed FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
                .ok_or_else(|| DbError::NotFound(format!("tenant {slug:?}")))?
        });
        sealer.open(&sealed)
    }
}
