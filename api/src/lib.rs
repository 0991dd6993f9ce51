//! The HTTP API (axum).
//!
//! Invariant: knows no AWS, no components and no workers. The API records, enqueues and
//! reads; everything that touches a cloud runs in a worker.

mod audit;
mod auth;
mod environments;
mod error;
mod health;
mod metrics;
mod runs;
mod tenants;
mod tokens;
mod validate;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::routing::{get, post};
use byoc_stacks::{Database, JobQueue, QueueConfig, Sealer, Tenant};
use tokio::sync::{OnceCell, watch};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use auth::Caller;
pub use error::ApiError;

/// Request bodies above this are refused (413): configs are a few KiB.
const BODY_LIMIT: usize = 256 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    schema: watch::Receiver<SchemaState>,
    sealer: Sealer,
    /// Set up on first use: apalis' tables come with the migrations.
    queue: OnceCell<JobQueue>,
    /// Requests per token.
    limiter: DefaultKeyedRateLimiter<String>,
}

/// Requests per second per token, and the burst above it, by default.
pub const DEFAULT_RATE: (u32, u32) = (50, 100);

/// Whether the store's migrations have been applied yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    Pending { last_error: Option<String> },
    Ready,
}

impl AppState {
    /// `schema` reports the migration task's progress: the server answers while its database
    /// is still coming up, and is ready only once the schema is.
    pub fn new(db: Database, schema: watch::Receiver<SchemaState>, sealer: Sealer) -> AppState {
        AppState::with_rate(db, schema, sealer, DEFAULT_RATE)
    }

    /// `rate`: (requests per second, burst) allowed to each token; more answer 429.
    pub fn with_rate(
        db: Database,
        schema: watch::Receiver<SchemaState>,
        sealer: Sealer,
        rate: (u32, u32),
    ) -> AppState {
        let per_second = NonZeroU32::new(rate.0.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(rate.1.max(rate.0).max(1)).expect("at least 1");
        AppState {
            inner: Arc::new(Inner {
                db,
                schema,
                sealer,
                queue: OnceCell::new(),
                limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            }),
        }
    }

    /// Whether `token` may make another request now; if not, how long until it may.
    fn admit(&self, token: &str) -> Result<(), Duration> {
        self.inner
            .limiter
            .check_key(&token.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    async fn queue(&self) -> Result<&JobQueue, ApiError> {
        if *self.inner.schema.borrow() != SchemaState::Ready {
            return Err(ApiError::NotReady(
                "database migrations are being applied".into(),
            ));
        }
        self.inner
            .queue
            .get_or_try_init(|| JobQueue::setup(&self.inner.db, QueueConfig::default()))
            .await
            .map_err(ApiError::from)
    }

    /// The tenant `slug`, if `caller` may see it; 404 otherwise.
    async fn visible_tenant(&self, caller: &Caller, slug: &str) -> Result<Tenant, ApiError> {
        validate::slug(slug)?;
        let tenant = self.db().tenant(slug).await?;
        caller.may_see(tenant)
    }
}

pub fn router(state: AppState) -> Router {
    let env = "/api/v1/tenants/{slug}/environments/{env}";
    let api = Router::new()
        .route("/api/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/api/v1/tenants/{slug}",
            get(tenants::show).delete(tenants::delete),
        )
        .route(
            "/api/v1/tenants/{slug}/external-id/rotate",
            post(tenants::rotate_external_id),
        )
        .route(
            &format!("{env}/config"),
            post(environments::set_config)
                .get(environments::get_config)
                .delete(environments::delete_config),
        )
        .route(env, axum::routing::delete(environments::destroy))
        .route(&format!("{env}/deploy"), post(environments::deploy))
        .route(&format!("{env}/preview"), post(environments::preview))
        .route(&format!("{env}/refresh"), post(environments::refresh))
        .route(&format!("{env}/status"), get(environments::status))
        .route(&format!("{env}/state"), get(environments::state_of))
        .route(&format!("{env}/runs"), get(environments::runs))
        .route(&format!("{env}/state/history"), get(environments::history))
        .route(&format!("{env}/graph"), get(environments::graph))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/runs/{id}", get(runs::show))
        .route("/api/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/api/v1/runs/{id}/events", get(runs::events))
        .route("/api/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .merge(api)
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
