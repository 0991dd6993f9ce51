use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use byoc_api::{AppState, SchemaState};
use byoc_model::AllowedChartSources;
use byoc_stacks::{Database, RunLimits, Sealer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::worker::{WorkerArgs, work};

/// The embedded default: a SQLite file in ./byoc-data, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://byoc-data/byoc.db";

/// Where the store is, and the key of its secrets.
#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// sqlite://PATH (embedded, the default) or postgres://... (many workers on many hosts).
    #[arg(long, env = "BYOC_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// 64 hex digits sealing secrets at rest; on SQLite, a key file beside the database is
    /// created and used when this is not set.
    #[arg(long, env = "BYOC_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
}

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BYOC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// A second address serving `/metrics` without a token, for the operator's monitoring
    /// (keep it private); on the API's address, `/metrics` needs an admin token.
    #[arg(long, env = "BYOC_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Live event streams (SSE) one token may hold open; more are answered 429.
    #[arg(long, env = "BYOC_MAX_STREAMS_PER_TOKEN", default_value_t = byoc_api::StreamLimits::default().per_token)]
    max_streams_per_token: usize,
    /// Live event streams open in all on this server; more are answered 429.
    #[arg(long, env = "BYOC_MAX_STREAMS", default_value_t = byoc_api::StreamLimits::default().total)]
    max_streams: usize,
    /// Serve the API only; runs are executed by `byoc worker` processes.
    #[arg(long, env = "BYOC_NO_WORKERS")]
    no_workers: bool,
    #[command(flatten)]
    worker: WorkerArgs,
    /// The first admin token (`byoc_<16 hex>_<64 hex>`), registered when the database has
    /// none; without it, one is made and printed once.
    #[arg(long, env = "BYOC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// API requests per second each token may make (bursts up to twice that); more are
    /// answered 429 with Retry-After.
    #[arg(long, env = "BYOC_API_RATE", default_value_t = byoc_api::DEFAULT_RATE.0)]
    api_rate: u32,
    /// Unfinished (queued or running) runs one environment may have; a request past it is
    /// answered 429 (`too_many_runs`). A request joining a queued run of its kind adds none.
    #[arg(long, env = "BYOC_MAX_RUNS_PER_STACK", default_value_t = RunLimits::DEFAULT.per_stack, value_parser = clap::value_parser!(u32).range(1..))]
    max_runs_per_stack: u32,
    /// Unfinished runs one tenant may have across its environments and trust verifications;
    /// a request past it is answered 429 (`too_many_runs`).
    #[arg(long, env = "BYOC_MAX_RUNS_PER_TENANT", default_value_t = RunLimits::DEFAULT.per_tenant, value_parser = clap::value_parser!(u32).range(1..))]
    max_runs_per_tenant: u32,
    /// Where cfn-templates/customer-iam-role.yaml is published (an S3 HTTPS URL): tenants
    /// then get an AWS console quick-create link.
    #[arg(long, env = "BYOC_TEMPLATE_URL")]
    template_url: Option<String>,
    /// The region of environment configs saved without one (e.g. eu-west-1). Without it,
    /// a config must name its region.
    #[arg(long, env = "BYOC_DEFAULT_REGION")]
    default_region: Option<byoc_model::Region>,
    /// The chart repositories and OCI registries environment configs may name, as
    /// comma-separated URL prefixes (https:// or oci://, e.g.
    /// `https://charts.jetstack.io,oci://public.ecr.aws/karpenter/`); a config naming another
    /// is refused (422). Default: the sources of the charts byoc pins.
    #[arg(long, env = "BYOC_CHART_SOURCES", default_value_t = AllowedChartSources::pinned())]
    chart_sources: AllowedChartSources,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The embedded workers share the caps: a drift repair they queue counts too.
    let db = Database::connect(&args.database.database_url)
        .await?
        .with_run_limits(RunLimits {
            per_stack: args.max_runs_per_stack,
            per_tenant: args.max_runs_per_tenant,
        });
    // Checked at start-up, so a missing key fails here rather than at the first tenant.
    let sealer = Sealer::for_database(&db, args.database.secret_key.as_deref())?;
    let (schema_tx, schema_rx) = watch::channel(SchemaState::Pending { last_error: None });
    tokio::spawn(migrate(
        db.clone(),
        schema_tx,
        args.admin_token.clone(),
        args.worker.platform_account_id.clone(),
        sealer.clone(),
    ));
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    let workers = (!args.no_workers).then(|| {
        let (db, shutdown, worker_args) = (db.clone(), shutdown.clone(), args.worker.clone());
        let sealer = sealer.clone();
        let mut schema = schema_rx.clone();
        tokio::spawn(async move {
            // The queue's tables come with the schema.
            if schema
                .wait_for(|s| matches!(s, SchemaState::Ready))
                .await
                .is_err()
            {
                return Ok(());
            }
            work(db, sealer, worker_args, shutdown).await
        })
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // On stdout, so scripts and tests can find the port when they asked for port 0.
    println!("byoc listening on http://{addr} (database {})", db.url());
    let state = AppState::with_rate(
        db,
        schema_rx,
        sealer,
        (args.api_rate, args.api_rate.saturating_mul(2)),
    )
    .with_template_url(args.template_url)
    .with_default_region(args.default_region.map(String::from))
    .with_chart_sources(args.chart_sources)
    .with_stream_limits(byoc_api::StreamLimits {
        per_token: args.max_streams_per_token,
        total: args.max_streams,
        ..Default::default()
    });
    if let Some(at) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .with_context(|| format!("listen on {at} for metrics"))?;
        println!("byoc metrics on http://{}/metrics", listener.local_addr()?);
        let metrics = byoc_api::metrics_router(state.clone());
        let stop = shutdown.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, metrics)
                .with_graceful_shutdown(stop)
                .await
        });
    }
    let app = byoc_api::router(state);
    // The peer's address keys the limit on requests without a valid token.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("serve HTTP")?;
    if let Some(workers) = workers {
        workers.await.context("the workers panicked")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// On a database with no admin token, registers `BYOC_ADMIN_TOKEN` or makes one and prints
/// it once: nobody could call the API otherwise.
async fn bootstrap_admin(db: &Database, given: Option<String>) {
    let result = async {
        if db.has_admin_token().await? {
            return Ok(());
        }
        match given {
            Some(text) => {
                db.import_token("admin (BYOC_ADMIN_TOKEN)", None, &text, "bootstrap")
                    .await?;
                tracing::info!("registered BYOC_ADMIN_TOKEN as the first admin token");
            }
            None => {
                let (_, secret) = db
                    .create_token("admin (first start)", None, "bootstrap")
                    .await?;
                // Not println!: stdout may be a pipe nobody reads any more.
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "byoc admin token (shown once, keep it safe): {secret}"
                );
            }
        }
        Ok::<(), byoc_stacks::DbError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not create the first admin token");
    }
}

/// Applies migrations, retrying while the database is unreachable, so the server can come up
/// before its database does; `/readyz` reports progress meanwhile.
/// The first admin token is made before the server reports ready.
async fn migrate(
    db: Database,
    schema: watch::Sender<SchemaState>,
    admin_token: Option<String>,
    platform_account_id: Option<String>,
    sealer: Sealer,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match db.migrate().await {
            Ok(()) => {
                tracing::info!(database = db.url(), "schema is current");
                bootstrap_admin(&db, admin_token).await;
                match db.bind_sealed_secrets(&sealer).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        tenants = n,
                        "external ids sealed again, bound to their tenant"
                    ),
                    Err(e) => tracing::error!(error = %e, "could not seal external ids again"),
                }
                // Configured: known to the API even when no worker runs here.
                if let Some(account) = platform_account_id
                    && let Err(e) = db
                        .set_fact(byoc_model::facts::PLATFORM_ACCOUNT_ID, &account)
                        .await
                {
                    tracing::warn!(error = %e, "could not record the platform account id");
                }
                schema.send_replace(SchemaState::Ready);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "migrations not applied; retrying in {delay:?}");
                schema.send_replace(SchemaState::Pending {
                    last_error: Some(e.to_string()),
                });
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
