//! Tenants: the customers whose AWS accounts byoc deploys into.

use std::collections::BTreeMap;

use byoc_model::Tenant;
use serde::Deserialize;

use crate::crypto::{Sealer, random_bytes};
use crate::db::BeginWrite;
use crate::db::{audit, with_pool};
use crate::runs::{Lease, claim_stack, fenced};
use crate::stacks::{PURGE_STACKS, STACK_USE, StackUse, refuse_if_in_use};
use crate::{Database, DbError, now_ms};
use byoc_model::Verdict;
use byoc_model::{
    AccountId, OnboardingStatus, Region, StackName, TRUST_ENV, TenantSlug, validate_display_name,
    validate_labels,
};

/// The longest tenant name, in characters.
pub const TENANT_NAME_MAX: usize = 200;

/// A tenant to create; [`Database::create_tenant`] checks the slug and account id (with
/// [`TenantSlug::new`] and [`AccountId::new`]) along with the name and labels.
#[derive(Clone, Debug, Deserialize)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub aws_account_id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

const COLUMNS: &str = "id, slug, name, aws_account_id, labels, onboarding_status, onboarding_message, trust_stack_name, trust_region, trust_template_version, verified_at, created_at, updated_at";

type TenantRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
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
        trust_stack_name,
        trust_region,
        trust_template_version,
        verified_at,
        created_at,
        updated_at,
    ) = row;
    let labels = serde_json::from_str(&labels)
        .map_err(|e| DbError::Corrupt(format!("labels of tenant {slug}: {e}")))?;
    Ok(Tenant {
        id,
        slug: crate::db::stored(&slug)?,
        name,
        aws_account_id: crate::db::stored(&aws_account_id)?,
        labels,
        onboarding_status: crate::db::stored(&status)?,
        onboarding_message,
        trust_stack_name,
        trust_region: trust_region.as_deref().map(crate::db::stored).transpose()?,
        trust_template_version,
        verified_at,
        created_at,
        updated_at,
    })
}

/// A fresh external id (32 random bytes, hex: 256 bits; AWS allows 2-1224 characters) and
/// its sealed form, the only one stored.
fn new_external_id(sealer: &Sealer, slug: &TenantSlug) -> (String, Vec<u8>) {
    let external_id = hex::encode(random_bytes::<32>());
    let sealed = sealer.seal(slug.as_str(), &external_id);
    (external_id, sealed)
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
        let slug = TenantSlug::new(new.slug.as_str())?;
        let account_id = AccountId::new(new.aws_account_id.as_str())?;
        validate_display_name("tenant name", &new.name, TENANT_NAME_MAX)?;
        validate_labels(&new.labels)?;
        let (external_id, sealed) = new_external_id(sealer, &slug);
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let labels = serde_json::to_string(&new.labels).expect("labels serialize");
        let result = with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, slug, name, aws_account_id, labels, external_id_sealed, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(slug.as_str())
            .bind(&new.name)
            .bind(account_id.as_str())
            .bind(&labels)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(DbError::Conflict(format!("a tenant with slug {:?} exists", slug.as_str())));
                }
                other => other.map_err(|e| self.query_error(e))?,
            };
            audit!(&mut *tx, actor, "tenant.create", &slug, now).map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        });
        result?;
        Ok((self.tenant(&slug).await?, external_id))
    }

    /// Tenants ordered by slug, `limit` (1..=500) after the slug cursor `after`.
    pub async fn tenants(&self, after: Option<&str>, limit: u32) -> Result<Vec<Tenant>, DbError> {
        if !(1..=500).contains(&limit) {
            return Err(DbError::Invalid(format!(
                "limit {limit} is out of range: use 1 to 500"
            )));
        }
        // Slugs are never empty: "" sorts before every one of them.
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE slug > $1 ORDER BY slug LIMIT $2");
        let rows: Vec<TenantRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        rows.into_iter().map(tenant_from_row).collect()
    }

    /// Deletes a tenant and everything recorded about it (configs, stacks, runs, run events,
    /// journal, history, its tokens); the audit log keeps what was done. Conflict while any
    /// of its stacks has resources, an unsettled operation or an unfinished run: deleting
    /// then would forget cloud objects that still exist.
    pub async fn delete_tenant(&self, slug: &TenantSlug, actor: &str) -> Result<(), DbError> {
        let now = now_ms();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let id: String = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
                .bind(slug.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?
                .ok_or_else(|| DbError::NotFound(format!("tenant {slug:?}")))?;
            let busy: Vec<StackUse> = sqlx::query_as(STACK_USE)
                .bind(&id)
                .bind(None::<&str>)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
            refuse_if_in_use(slug, &busy)?;
            for sql in PURGE_STACKS {
                sqlx::query(sql)
                    .bind(&id)
                    .bind(None::<&str>)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.purge_error(slug, e))?;
            }
            for sql in [
                "DELETE FROM api_tokens WHERE tenant_id = $1",
                "DELETE FROM tenants WHERE id = $1",
            ] {
                sqlx::query(sql)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.purge_error(slug, e))?;
            }
            audit!(&mut *tx, actor, "tenant.delete", slug, now).map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })
    }

    /// Replaces the tenant's external id (e.g. after it leaked) and sets onboarding back to
    /// pending_trust: the tenant's role must trust the new id before byoc can act again.
    /// Returns the new plaintext, which is never returned again.
    pub async fn rotate_external_id(
        &self,
        sealer: &Sealer,
        slug: &TenantSlug,
        actor: &str,
    ) -> Result<String, DbError> {
        let (external_id, sealed) = new_external_id(sealer, slug);
        let now = now_ms();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let n = sqlx::query(
                "UPDATE tenants SET external_id_sealed = $1, onboarding_status = $2,
                 onboarding_message = NULL, updated_at = $3 WHERE slug = $4",
            )
            .bind(&sealed)
            .bind(OnboardingStatus::PendingTrust.as_str())
            .bind(now)
            .bind(slug.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?
            .rows_affected();
            if n == 0 {
                return Err(DbError::NotFound(format!("tenant {slug:?}")));
            }
            audit!(&mut *tx, actor, "tenant.rotate_external_id", slug, now)
                .map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })?;
        Ok(external_id)
    }

    pub async fn tenant(&self, slug: &TenantSlug) -> Result<Tenant, DbError> {
        self.tenant_where("slug = $1", slug, &format!("tenant {slug:?}"))
            .await
    }

    /// The tenant with this id (a tenant token's own).
    pub async fn tenant_by_id(&self, id: &str) -> Result<Tenant, DbError> {
        self.tenant_where("id = $1", id, "the token's tenant").await
    }

    /// The tenant a stack belongs to.
    pub async fn stack_tenant(&self, stack: &StackName) -> Result<Tenant, DbError> {
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
    pub async fn tenant_external_id(
        &self,
        sealer: &Sealer,
        slug: &TenantSlug,
    ) -> Result<String, DbError> {
        sealer.open(slug.as_str(), &self.sealed_external_id(slug).await?)
    }

    /// The tenant's external id as stored (sealed).
    pub async fn sealed_external_id(&self, slug: &TenantSlug) -> Result<Vec<u8>, DbError> {
        with_pool!(self, p => {
            sqlx::query_scalar("SELECT external_id_sealed FROM tenants WHERE slug = $1")
                .bind(slug.as_str())
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
                .ok_or_else(|| DbError::NotFound(format!("tenant {slug:?}")))
        })
    }

    /// Records where `slug`'s trust stack is (what `location` gives; the rest stays) and
    /// makes sure the stack record its verifications run under exists. Returns that record's
    /// name.
    pub async fn prepare_verification(
        &self,
        slug: &TenantSlug,
        location: &TrustLocation,
    ) -> Result<StackName, DbError> {
        location.validate()?;
        let stack = StackName::trust(slug);
        let now = now_ms();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let id: String = sqlx::query_scalar(
                "UPDATE tenants SET trust_region = COALESCE($1, trust_region),
                 trust_stack_name = COALESCE($2, trust_stack_name), updated_at = $3
                 WHERE slug = $4 RETURNING id",
            )
            .bind(location.region.as_deref())
            .bind(&location.stack_name)
            .bind(now)
            .bind(slug.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?
            .ok_or_else(|| DbError::NotFound(format!("tenant {slug:?}")))?;
            claim_stack!(self, tx, stack.as_str(), &id, TRUST_ENV, now).await?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })?;
        Ok(stack)
    }

    /// Records a verification's verdict on the tenant whose trust stack record `lease` holds,
    /// unless the tenant's external id is no longer `sealed`, the one the verification
    /// assumed the role with: a rotation meanwhile makes the verdict moot. Returns whether it
    /// was recorded; `Fenced` if the lease was lost.
    pub async fn record_verdict(
        &self,
        lease: &Lease,
        sealed: &[u8],
        verdict: &Verdict,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let held: Option<(String, String)> = sqlx::query_as(
                "SELECT s.tenant_id, t.slug FROM stacks s JOIN tenants t ON t.id = s.tenant_id
                 WHERE s.name = $1 AND s.generation = $2",
            )
            .bind(&lease.stack)
            .bind(lease.generation)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let (tenant_id, slug) = held.ok_or_else(|| fenced(lease))?;
            let recorded = sqlx::query(
                "UPDATE tenants SET onboarding_status = $1, onboarding_message = $2,
                 trust_template_version = $3, verified_at = $4, updated_at = $4
                 WHERE id = $5 AND external_id_sealed = $6",
            )
            .bind(verdict.status.as_str())
            .bind(&verdict.message)
            .bind(&verdict.template_version)
            .bind(now)
            .bind(&tenant_id)
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?
            .rows_affected()
                == 1;
            if recorded {
                let action = format!("tenant.verify.{}", verdict.status.as_str());
                audit!(&mut *tx, &lease.holder, &action, &slug, now).map_err(|e| self.query_error(e))?;
            }
            tx.commit().await.map_err(|e| self.query_error(e))?;
            Ok(recorded)
        })
    }
}

/// Where to look for a tenant's trust stack; what is left out keeps its recorded value.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TrustLocation {
    pub region: Option<Region>,
    pub stack_name: Option<String>,
}

impl TrustLocation {
    fn validate(&self) -> Result<(), DbError> {
        // CloudFormation's rule for stack names.
        if let Some(name) = &self.stack_name {
            let ok = (1..=128).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                return Err(DbError::Invalid(format!(
                    "stack name {name:?} is invalid: CloudFormation stack names are 1 to 128 letters, digits and '-', starting with a letter"
                )));
            }
        }
        Ok(())
    }
}

impl Database {
    /// Seals again, bound to their tenant, the external ids sealed before values were
    /// bound to their owner; the number sealed again. Run once the schema is current.
    pub async fn bind_sealed_secrets(&self, sealer: &Sealer) -> Result<usize, DbError> {
        let rows: Vec<(String, Vec<u8>)> = with_pool!(self, p => {
            sqlx::query_as("SELECT slug, external_id_sealed FROM tenants")
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        let mut bound = 0;
        for (slug, sealed) in rows {
            // One that does not open is left for whoever uses it to report.
            let Ok((external_id, true)) = sealer.open_any(&slug, &sealed) else {
                continue;
            };
            let resealed = sealer.seal(&slug, &external_id);
            // Only if it did not change meanwhile (a rotation).
            let n = with_pool!(self, p => {
                sqlx::query("UPDATE tenants SET external_id_sealed = $1 WHERE slug = $2 AND external_id_sealed = $3")
                    .bind(&resealed)
                    .bind(&slug)
                    .bind(&sealed)
                    .execute(p)
                    .await
                    .map_err(|e| self.query_error(e))?
                    .rows_affected()
            });
            bound += n as usize;
        }
        Ok(bound)
    }
}
