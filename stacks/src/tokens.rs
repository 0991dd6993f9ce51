//! API tokens: bearer texts `byoc_{id}_{secret}`. The id is public (it finds the row and
//! names the token in lists and the audit log); only the SHA-256 of the secret is stored, so
//! the database never holds a usable token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::random_bytes;
use crate::db::BeginWrite;
use crate::db::{audit, with_pool};
use crate::{Database, DbError, now_ms};
use byoc_model::ApiToken;

const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
pub const TOKEN_NAME_MAX: usize = 64;
/// `last_used_at` is only rewritten when older than this: a token used many times a second
/// must not turn every request into a write.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

const COLUMNS: &str =
    "id, name, tenant_id, created_at, created_by, last_used_at, revoked_at, expires_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    tenant_id: Option<String>,
    created_at: i64,
    created_by: String,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
}

/// A [`TokenRow`] with the secret's hash.
#[derive(sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    token: TokenRow,
    secret_hash: String,
}

/// A token to store.
struct NewToken<'a> {
    name: &'a str,
    tenant_id: Option<&'a str>,
    id: &'a str,
    secret: &'a str,
    expires_at: Option<i64>,
}

fn token_from_row(row: TokenRow) -> ApiToken {
    ApiToken {
        id: row.id,
        name: row.name,
        tenant_id: row.tenant_id,
        created_at: row.created_at,
        created_by: row.created_by,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
        expires_at: row.expires_at,
    }
}

/// `(id, secret)` of a well-formed token text. Lowercase hex only, so that one token has one
/// text and its id one spelling.
fn parse(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("byoc_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some((id, secret))
}

/// Hex SHA-256 of a secret's text: what is stored and compared.
fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant time, so the comparison does not reveal how much of a guessed secret matched.
fn hash_matches(stored: &str, secret: &str) -> bool {
    stored
        .as_bytes()
        .ct_eq(secret_hash(secret).as_bytes())
        .into()
}

fn validate_name(name: &str) -> Result<(), DbError> {
    Ok(byoc_model::validate_display_name(
        "token name",
        name,
        TOKEN_NAME_MAX,
    )?)
}

/// What [`Database::put_token`] found.
enum Put {
    Stored,
    /// Exactly this token exists already.
    Exists,
    /// Another writer inserted the same id first: look again.
    Raced,
}

impl Database {
    /// Creates a token, for a tenant or (`tenant_id` None) an admin token. Returns it with
    /// its text, which is never available again.
    pub async fn create_token(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        actor: &str,
    ) -> Result<(ApiToken, String), DbError> {
        self.create_expiring_token(name, tenant_id, None, actor)
            .await
    }

    /// [`Database::create_token`], authenticating only until `expires_at` (ms since the
    /// epoch) when given.
    pub async fn create_expiring_token(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<(ApiToken, String), DbError> {
        let id = hex::encode(random_bytes::<{ ID_HEX / 2 }>());
        let secret = hex::encode(random_bytes::<{ SECRET_HEX / 2 }>());
        let text = format!("byoc_{id}_{secret}");
        let new = NewToken {
            name,
            tenant_id,
            id: &id,
            secret: &secret,
            expires_at,
        };
        let token = self.put_token(new, actor, "token.create").await?;
        Ok((token, text))
    }

    /// For BYOC_ADMIN_TOKEN: registers a given token text (must parse as
    /// byoc_{16 hex}_{64 hex}, else Invalid naming the expected format); idempotent if that
    /// exact token already exists, so every start (and every host) may import it.
    pub async fn import_token(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        text: &str,
        actor: &str,
    ) -> Result<ApiToken, DbError> {
        let (id, secret) = parse(text).ok_or_else(|| {
            DbError::Invalid(format!(
                "token text is malformed: expected byoc_{{{ID_HEX} lowercase hex digits}}_{{{SECRET_HEX} lowercase hex digits}}"
            ))
        })?;
        let new = NewToken {
            name,
            tenant_id,
            id,
            secret,
            expires_at: None,
        };
        self.put_token(new, actor, "token.import").await
    }

    /// Stores a token unless exactly it (same secret, same tenant) exists already; Conflict
    /// if its id exists with another secret or tenant.
    async fn put_token(
        &self,
        new: NewToken<'_>,
        actor: &str,
        action: &str,
    ) -> Result<ApiToken, DbError> {
        let NewToken {
            name,
            tenant_id,
            id,
            secret,
            expires_at,
        } = new;
        validate_name(name)?;
        let hash = secret_hash(secret);
        // Two hosts importing the same token at once: the loser of the insert finds the
        // winner's row on its second look.
        for _ in 0..2 {
            let now = now_ms();
            let put = with_pool!(self, p => {
                let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
                let existing: Option<(Option<String>, String)> =
                    sqlx::query_as("SELECT tenant_id, secret_hash FROM api_tokens WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| self.query_error(e))?;
                if let Some((owner, stored)) = existing {
                    if !(hash_matches(&stored, secret) && owner.as_deref() == tenant_id) {
                        return Err(DbError::Conflict(format!(
                            "token {id} exists with another secret or tenant"
                        )));
                    }
                    Put::Exists
                } else {
                if let Some(tenant_id) = tenant_id {
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE id = $1")
                        .bind(tenant_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.query_error(e))?;
                    if n == 0 {
                        return Err(DbError::NotFound(format!("tenant with id {tenant_id:?}")));
                    }
                }
                let inserted = sqlx::query(
                    "INSERT INTO api_tokens (id, name, tenant_id, secret_hash, created_at, created_by, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(name)
                .bind(tenant_id)
                .bind(&hash)
                .bind(now)
                .bind(actor)
                .bind(expires_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Put::Raced,
                    other => {
                        other.map_err(|e| self.query_error(e))?;
                        audit!(&mut *tx, actor, action, id, now).map_err(|e| self.query_error(e))?;
                        tx.commit().await.map_err(|e| self.query_error(e))?;
                        Put::Stored
                    }
                }
                }
            });
            match put {
                Put::Stored | Put::Exists => return self.token(id).await,
                Put::Raced => continue,
            }
        }
        Err(DbError::Conflict(format!(
            "token {id} is being stored concurrently; try again"
        )))
    }

    /// The live token a bearer text belongs to: parse, look up by id, compare SHA-256 of the
    /// secret in constant time; None for malformed, unknown, wrong secret or revoked. Sets
    /// `last_used_at` when it is older than 60 s (cheap). Not audited: it records use, not a
    /// change anyone made.
    pub async fn authenticate(&self, text: &str) -> Result<Option<ApiToken>, DbError> {
        let Some((id, secret)) = parse(text) else {
            return Ok(None);
        };
        let sql = format!("SELECT {COLUMNS}, secret_hash FROM api_tokens WHERE id = $1");
        let row: Option<AuthRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        let Some(AuthRow { token, secret_hash }) = row else {
            return Ok(None);
        };
        let now = now_ms();
        if !hash_matches(&secret_hash, secret)
            || token.revoked_at.is_some()
            || token.expires_at.is_some_and(|at| at <= now)
        {
            return Ok(None);
        }
        let mut token = token_from_row(token);
        let stale = now - LAST_USED_GRANULARITY_MS;
        if token.last_used_at.is_none_or(|at| at < stale) {
            with_pool!(self, p => {
                sqlx::query(
                    "UPDATE api_tokens SET last_used_at = $1
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(now)
                .bind(&token.id)
                .bind(stale)
                .execute(p)
                .await
                .map_err(|e| self.query_error(e))?;
            });
            token.last_used_at = Some(now);
        }
        Ok(Some(token))
    }

    /// Tokens (revoked ones too), newest first; `tenant_id` Some filters to that tenant's
    /// tokens.
    pub async fn tokens(&self, tenant_id: Option<&str>) -> Result<Vec<ApiToken>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE ($1 IS NULL OR tenant_id = $1)
             ORDER BY created_at DESC, id"
        );
        let rows: Vec<TokenRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .fetch_all(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    pub async fn token(&self, id: &str) -> Result<ApiToken, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
        let row: Option<TokenRow> = with_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(|e| self.query_error(e))?
        });
        row.map(token_from_row)
            .ok_or_else(|| DbError::NotFound(format!("token {id:?}")))
    }

    /// Revokes a token. Idempotent: revoking twice keeps the first `revoked_at`.
    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<ApiToken, DbError> {
        let now = now_ms();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await.map_err(|e| self.query_error(e))?;
            let n = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?
                .rows_affected();
            if n == 0 {
                return Err(DbError::NotFound(format!("token {id:?}")));
            }
            // Nobody could call the API again (a restart makes a new admin token only on an
            // empty table): the last admin token stays.
            let admins_left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_tokens WHERE tenant_id IS NULL AND revoked_at IS NULL",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            if admins_left == 0 {
                return Err(DbError::Conflict(format!(
                    "token {id} is the last admin token: create another admin token first"
                )));
            }
            audit!(&mut *tx, actor, "token.revoke", id, now).map_err(|e| self.query_error(e))?;
            tx.commit().await.map_err(|e| self.query_error(e))
        })?;
        self.token(id).await
    }

    /// Whether any unrevoked admin token exists (first start creates one when none does).
    pub async fn has_admin_token(&self) -> Result<bool, DbError> {
        let n: i64 = with_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_tokens WHERE tenant_id IS NULL AND revoked_at IS NULL",
            )
            .fetch_one(p)
            .await
            .map_err(|e| self.query_error(e))?
        });
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_canonical_form() {
        let (id, secret) = ("0123456789abcdef", "ab".repeat(32));
        assert_eq!(
            parse(&format!("byoc_{id}_{secret}")),
            Some((id, secret.as_str()))
        );
        for bad in [
            String::new(),
            format!("byoc_{id}"),
            format!("byoc_{id}_{secret}0"),
            format!("byoc_{}_{secret}", id.to_uppercase()),
            format!("xyz_{id}_{secret}"),
            format!("byoc_{id}_{}", "g".repeat(64)),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        assert!(hash_matches(&secret_hash("s"), "s"));
        assert!(!hash_matches(&secret_hash("s"), "t"));
    }
}
