//! Bearer tokens: admin tokens, and tenant tokens that see and act on their own tenant
//! only (another tenant's objects answer 404, never 403, so their existence does not leak).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use byoc_model::{ApiToken, Run, Tenant};
use byoc_stacks::{Database, DbError};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// How long a token that authenticated is taken as valid without asking the store again: a
/// token revoked (or expired, or deleted with its tenant) through another API host, or in the
/// database directly, stops authenticating here within this long. Revoked through this host,
/// at once.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(1);

/// At most this many tokens are cached per API host (each entry is a few hundred bytes).
const AUTH_CACHE_ENTRIES: u64 = 10_000;

/// The tokens that authenticated in the last [`AUTH_CACHE_TTL`], by the SHA-256 of their
/// text: a hit is that exact text, and no usable token is kept in memory. Only tokens that
/// authenticated are cached: an unknown, wrong or revoked one is asked of the store every
/// time (and counts against its client's address), so bad tokens cannot fill the cache.
pub(crate) struct AuthCache {
    tokens: moka::sync::Cache<[u8; 32], ApiToken>,
    /// Counts the revocations made through this host. A lookup that a revocation overtook
    /// (it read the token before the revocation committed) does not fill the cache.
    revocations: AtomicU64,
    /// Orders the fill after a lookup with a revocation's forgetting.
    fill: Mutex<()>,
}

impl AuthCache {
    pub(crate) fn new() -> AuthCache {
        AuthCache {
            tokens: moka::sync::Cache::builder()
                .max_capacity(AUTH_CACHE_ENTRIES)
                .time_to_live(AUTH_CACHE_TTL)
                .build(),
            revocations: AtomicU64::new(0),
            fill: Mutex::new(()),
        }
    }

    /// [`Database::authenticate`], answered from the cache while the token's entry lives.
    /// An expiry is exact even then.
    pub(crate) async fn authenticate(
        &self,
        db: &Database,
        text: &str,
    ) -> Result<Option<ApiToken>, DbError> {
        let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(token) = self.tokens.get(&key) {
            if token.expires_at.is_none_or(|at| at > byoc_stacks::now_ms()) {
                return Ok(Some(token));
            }
            self.tokens.invalidate(&key);
        }
        let seen = self.revocations.load(Ordering::Acquire);
        let found = db.authenticate(text).await?;
        if let Some(token) = &found {
            let _fill = self.fill.lock().expect("not poisoned");
            if self.revocations.load(Ordering::Acquire) == seen {
                self.tokens.insert(key, token.clone());
            }
        }
        Ok(found)
    }

    /// After the store committed a revocation (or a deletion) of the tokens `gone` matches:
    /// they stop authenticating through this host at once.
    pub(crate) fn forget(&self, gone: impl Fn(&ApiToken) -> bool) {
        let _fill = self.fill.lock().expect("not poisoned");
        self.revocations.fetch_add(1, Ordering::AcqRel);
        for (key, token) in self.tokens.iter() {
            if gone(&token) {
                self.tokens.invalidate(&*key);
            }
        }
    }
}

/// How a tenant token sees an actor that is not one of its tenant's tokens.
pub const NEUTRAL_ACTOR: &str = "operator";

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller(pub ApiToken);

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.0.tenant_id.is_none()
    }

    /// What the audit log records as the actor.
    pub fn actor(&self) -> String {
        format!("token:{} ({})", self.0.id, self.0.name)
    }

    /// Runs as this caller may see them: a tenant token sees its own tenant's tokens as the
    /// requesters, and every other actor (the provider's admin tokens) as `operator`.
    pub async fn present(
        &self,
        state: &AppState,
        mut runs: Vec<Run>,
    ) -> Result<Vec<Run>, ApiError> {
        let Some(own) = &self.0.tenant_id else {
            return Ok(runs);
        };
        let mut seen: std::collections::HashMap<String, bool> = Default::default();
        for run in &mut runs {
            let shown = match seen.get(&run.requested_by) {
                Some(shown) => *shown,
                None => {
                    let token_id = run
                        .requested_by
                        .strip_prefix("token:")
                        .and_then(|rest| rest.split(' ').next());
                    let shown = match token_id {
                        Some(id) => match state.db().token(id).await {
                            Ok(token) => token.tenant_id.as_ref() == Some(own),
                            Err(DbError::NotFound(_)) => false,
                            Err(e) => return Err(e.into()),
                        },
                        None => false,
                    };
                    seen.insert(run.requested_by.clone(), shown);
                    shown
                }
            };
            if !shown {
                run.requested_by = NEUTRAL_ACTOR.to_string();
            }
        }
        Ok(runs)
    }

    /// A run's requester as this caller may see it: `own` says whether it is a token of the
    /// caller's tenant (what [`Caller::present`] looks up).
    pub fn present_requester(&self, run: &mut Run, own: bool) {
        if !self.is_admin() && !own {
            run.requested_by = NEUTRAL_ACTOR.to_string();
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this needs an admin token; a tenant token acts on its own tenant only".into(),
            ))
        }
    }

    /// The tenant, if this caller may see it; 404 otherwise, as if it did not exist.
    pub fn may_see(&self, tenant: Tenant) -> Result<Tenant, ApiError> {
        match &self.0.tenant_id {
            Some(own) if *own != tenant.id => {
                Err(ApiError::NotFound(format!("tenant {:?}", tenant.slug)))
            }
            _ => Ok(tenant),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        // A client that keeps presenting bad tokens is refused before the store is asked.
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let too_many = |wait| ApiError::TooManyRequests { retry_after: wait };
        state.admit_client(client).map_err(too_many)?;
        let refused = |message: &str| match state.strike(client) {
            Err(wait) => too_many(wait),
            Ok(()) => ApiError::Unauthorized(message.into()),
        };
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Err(refused("missing Authorization: Bearer <token>"));
        };
        let Some(text) = header.to_str().ok().and_then(bearer) else {
            return Err(refused("the Authorization header is not Bearer <token>"));
        };
        let Some(token) = state.authenticate(text).await? else {
            return Err(refused("the token is unknown, revoked or expired"));
        };
        state.admit(&token.id).map_err(too_many)?;
        Ok(Caller(token))
    }
}

#[cfg(test)]
mod tests {
    use super::{AUTH_CACHE_TTL, AuthCache, bearer};
    use byoc_stacks::{Database, migrate_url};

    /// A token revoked behind this host's back (as through another host) still authenticates
    /// from the cache, for at most its time to live; one revoked through this host stops at
    /// once. Texts that authenticate nothing are never cached.
    #[tokio::test]
    async fn the_cache_answers_for_a_second_and_keeps_only_live_tokens() -> anyhow::Result<()> {
        let t = byoc_testkit::TestDb::sqlite().await?;
        migrate_url(t.url()).await?;
        let db = Database::connect(t.url()).await?;
        db.create_token("admin", None, "test").await?;
        let cache = AuthCache::new();
        let (token, text) = db.create_token("ci", None, "test").await?;
        assert_eq!(
            cache.authenticate(&db, &text).await?,
            db.authenticate(&text).await?
        );
        let revoked_at = std::time::Instant::now();
        db.revoke_token(&token.id, "test").await?;
        let cached = cache.authenticate(&db, &text).await?;
        if revoked_at.elapsed() < AUTH_CACHE_TTL {
            assert_eq!(
                cached.map(|t| t.id),
                Some(token.id.clone()),
                "from the cache"
            );
        }
        tokio::time::sleep(AUTH_CACHE_TTL).await;
        assert_eq!(
            cache.authenticate(&db, &text).await?,
            None,
            "after its time to live"
        );

        let (token, text) = db.create_token("ci 2", None, "test").await?;
        assert!(cache.authenticate(&db, &text).await?.is_some());
        db.revoke_token(&token.id, "test").await?;
        cache.forget(|cached| cached.id == token.id);
        assert_eq!(
            cache.authenticate(&db, &text).await?,
            None,
            "forgotten at once"
        );

        for i in 0..100 {
            let bad = format!("byoc_{:016x}_{}", i, "ab".repeat(32));
            assert_eq!(cache.authenticate(&db, &bad).await?, None);
        }
        assert_eq!(cache.authenticate(&db, &format!("{text}x")).await?, None);
        cache.tokens.run_pending_tasks();
        assert_eq!(
            cache.tokens.entry_count(),
            0,
            "nothing but live tokens is cached"
        );
        Ok(())
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t", "bearer t", "BEARER  t ", "BeArEr t"] {
            assert_eq!(bearer(header), Some("t"), "{header:?}");
        }
        for header in ["Basic t", "Bearer", "Bearer ", "Bearert", "t"] {
            assert_eq!(bearer(header), None, "{header:?}");
        }
    }
}
