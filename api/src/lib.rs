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
mod params;
mod runs;
mod streams;
mod tenants;
mod tokens;
mod validate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::routing::get;
use byoc_model::{AllowedChartSources, Tenant, TenantSlug};
use byoc_stacks::{Database, JobQueue, QueueConfig, Sealer};
use tokio::sync::{OnceCell, watch};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::{Scalar, Servable};

use crate::error::ErrorBody;

pub use auth::{AUTH_CACHE_TTL, Caller};
pub use error::ApiError;
pub use streams::StreamLimits;
use streams::Streams;

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
    /// Requests without a valid token, per client address (`None`: the address is not
    /// known): past it, a client is refused before its token is looked up.
    strikes: DefaultKeyedRateLimiter<Option<IpAddr>>,
    /// Clients refused for too many bad tokens, until when.
    blocked: std::sync::Mutex<HashMap<Option<IpAddr>, Instant>>,
    /// Where the trust template is published (an S3 URL), for console quick-create links.
    template_url: Option<String>,
    /// The region of a config that names none.
    default_region: Option<String>,
    /// Live event streams: shared pollers and caps.
    streams: Arc<Streams>,
    /// The chart repositories and registries a config may name.
    chart_sources: AllowedChartSources,
    /// Tokens that authenticated in the last second.
    auth: auth::AuthCache,
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
                // A client address gets the rate of a token for requests without a valid one.
                strikes: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                blocked: Default::default(),
                streams: Arc::new(Streams::new(StreamLimits::default())),
                template_url: None,
                default_region: None,
                chart_sources: AllowedChartSources::pinned(),
                auth: auth::AuthCache::new(),
            }),
        }
    }

    /// Where the trust template is published, so tenants get a console quick-create link.
    pub fn with_template_url(mut self, url: Option<String>) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("configured before the state is shared")
            .template_url = url;
        self
    }

    /// Caps on live event streams (`byoc serve --max-streams...`).
    pub fn with_stream_limits(mut self, limits: StreamLimits) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("configured before the state is shared")
            .streams = Arc::new(Streams::new(limits));
        self
    }

    fn streams(&self) -> &Arc<Streams> {
        &self.inner.streams
    }

    /// The region a config saved without one is deployed to (`byoc serve --default-region`).
    pub fn with_default_region(mut self, region: Option<String>) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("configured before the state is shared")
            .default_region = region;
        self
    }

    /// The chart sources configs may name (`byoc serve --chart-sources`); by default the
    /// pinned catalog's.
    pub fn with_chart_sources(mut self, sources: AllowedChartSources) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("configured before the state is shared")
            .chart_sources = sources;
        self
    }

    fn chart_sources(&self) -> &AllowedChartSources {
        &self.inner.chart_sources
    }

    fn default_region(&self) -> Option<&str> {
        self.inner.default_region.as_deref()
    }

    fn template_url(&self) -> Option<&str> {
        self.inner.template_url.as_deref()
    }

    /// Whether `token` may make another request now; if not, how long until it may.
    fn admit(&self, token: &str) -> Result<(), Duration> {
        self.inner
            .limiter
            .check_key(&token.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Whether `client` may present a token now: not while it is refused for bad ones.
    fn admit_client(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let blocked = self.inner.blocked.lock().expect("not poisoned");
        match blocked.get(&client) {
            Some(until) if *until > Instant::now() => Err(*until - Instant::now()),
            _ => Ok(()),
        }
    }

    /// Counts a request of `client` without a valid token; past the quota, it is refused
    /// (for how long is the `Err`).
    fn strike(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let Err(not_until) = self.inner.strikes.check_key(&client) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let now = Instant::now();
        let mut blocked = self.inner.blocked.lock().expect("not poisoned");
        blocked.retain(|_, until| *until > now);
        blocked.insert(client, now + wait);
        Err(wait)
    }

    /// The live token of a bearer text, from the authentication cache or the store.
    async fn authenticate(&self, text: &str) -> Result<Option<byoc_model::ApiToken>, ApiError> {
        Ok(self.inner.auth.authenticate(&self.inner.db, text).await?)
    }

    /// Tokens revoked or deleted through this host: they stop authenticating here at once
    /// (elsewhere within [`auth::AUTH_CACHE_TTL`]).
    fn forget_tokens(&self, gone: impl Fn(&byoc_model::ApiToken) -> bool) {
        self.inner.auth.forget(gone);
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
    async fn visible_tenant(&self, caller: &Caller, slug: &TenantSlug) -> Result<Tenant, ApiError> {
        let tenant = self.db().tenant(slug).await?;
        caller.may_see(tenant)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "byoc",
        description = "Control plane for bring-your-own-cloud deployments: tenants, environment configs, runs and stack state. Every /api route needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The API's routes and their OpenAPI description, from the same annotated handlers.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use environments as e;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::show, tenants::delete))
        .routes(routes!(tenants::rotate_external_id))
        .routes(routes!(tenants::trust_template))
        .routes(routes!(tenants::verify))
        .routes(routes!(e::set_config, e::get_config, e::delete_config))
        .routes(routes!(e::destroy))
        .routes(routes!(e::deploy))
        .routes(routes!(e::preview))
        .routes(routes!(e::refresh))
        .routes(routes!(e::status))
        .routes(routes!(e::state_of))
        .routes(routes!(e::runs))
        .routes(routes!(e::history))
        .routes(routes!(e::state_version))
        .routes(routes!(e::state_diff))
        .routes(routes!(e::unlock))
        .routes(routes!(e::graph))
        .routes(routes!(runs::show))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::events))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .split_for_parts()
}

/// The OpenAPI 3.1 description of the API, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    openapi_json(&api().1)
}

/// The document as JSON. utoipa 5 writes a link's fields in snake case (`operation_id`);
/// OpenAPI spells them in camel case, and clients follow links only by those names.
fn openapi_json(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::Value;
    fn mend(value: &mut Value, in_links: bool) {
        match value {
            Value::Object(map) => {
                if in_links {
                    for link in map.values_mut().filter_map(Value::as_object_mut) {
                        for (from, to) in [
                            ("operation_id", "operationId"),
                            ("operation_ref", "operationRef"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(v) = link.remove(from) {
                                link.insert(to.into(), v);
                            }
                        }
                    }
                    return;
                }
                for (key, v) in map.iter_mut() {
                    mend(v, key == "links");
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| mend(v, false)),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    mend(&mut json, false);
    json
}

/// `/metrics` alone, without a token: for a listener of its own that only the operator's
/// monitoring reaches.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render_open))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let api = api.layer(DefaultBodyLimit::max(BODY_LIMIT));
    let request_id = HeaderName::from_static("x-request-id");
    let spec = Arc::new(openapi_json(&openapi));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(spec.as_ref().clone()) }),
        )
        .merge(Scalar::with_url("/docs", openapi))
        .merge(api)
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(error::request_id_on_faults))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
