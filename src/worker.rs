//! `byoc worker`, and the workers `byoc serve` embeds: apalis workers executing runs in
//! tenant accounts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use byoc_components::helm::Helm;
use byoc_components::{Platform, PlatformOptions, RateLimits, WaitPolicy};
use byoc_model::facts;
use byoc_stacks::{Database, JobQueue, QueueConfig, Retention, Sealer};
use byoc_workers::schedule::ScheduleConfig;
use byoc_workers::{AwsBlueprint, Worker, WorkerConfig, run_daemon_with, unique_worker_name};
use tokio_util::sync::CancellationToken;

use crate::serve::{DatabaseArgs, shutdown_signal};

/// How this process's workers run.
#[derive(clap::Args, Clone)]
pub struct WorkerArgs {
    /// Runs executed at once by this process.
    #[arg(long, env = "BYOC_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds a stack lease lives without renewal: how soon another worker takes over the
    /// runs of a worker that died.
    #[arg(long, env = "BYOC_LEASE_TTL_SECONDS", default_value_t = 60)]
    pub lease_ttl_seconds: u64,
    /// The role the customer's trust template creates in each tenant account.
    #[arg(long, env = "BYOC_ROLE_NAME", default_value = byoc_components::aws::DEFAULT_ROLE_NAME)]
    pub role_name: String,
    /// Requests per second per tenant account and region, for each AWS service:
    /// `ec2=20,iam=10,eks=10,sts=10,cloudformation=5,elb=10,sqs=10,events=10,burst=50` (omitted ones keep these defaults). Every run
    /// in the process shares them; AWS throttling halves a rate until calls go through.
    #[arg(long, env = "BYOC_AWS_RATES", default_value = "")]
    pub aws_rates: RateLimits,
    /// Send every AWS call here instead (an emulator); `AWS_ENDPOINT_URL` works too.
    #[arg(long, env = "BYOC_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// How long AWS operations take here relative to AWS (waiters first poll near an
    /// operation's typical time): 1 against AWS; an emulator whose readiness delays are
    /// AWS's scaled down, that factor (e.g. 0.01). Between 0.0001 and 1.
    #[arg(long, env = "BYOC_AWS_WAIT_SCALE", default_value_t = 1.0, value_parser = wait_scale)]
    pub aws_wait_scale: f64,
    /// The helm binary for the environments' bootstrap components (helm >= 3.14); when not
    /// set, `helm` on PATH if it is usable.
    #[arg(long, env = "BYOC_HELM")]
    pub helm: Option<std::path::PathBuf>,
    /// The account tenants' trust roles trust. Default: the account of the platform
    /// credentials (STS GetCallerIdentity), which `byoc serve --no-workers` cannot ask.
    #[arg(long, env = "BYOC_PLATFORM_ACCOUNT_ID", value_parser = account_id)]
    pub platform_account_id: Option<String>,
    /// How often environments without their own `drift_check` are checked for drift (a
    /// refresh run, never a repair): `6h`, `90m`, `1d` (5 minutes to 7 days) or `off`. An
    /// environment's `drift_check` wins: its `every_minutes` (this period when it sets
    /// none), its `repair`, or `enabled: false` to never check it. Give every worker the same.
    #[arg(long, env = "BYOC_DRIFT_CHECK_EVERY", default_value = "off", value_parser = drift_every)]
    pub drift_check_every: DriftEvery,
    /// Days finished runs (with their events and journal entries) are kept; 0 keeps them
    /// forever.
    #[arg(long, env = "BYOC_RETENTION_DAYS", default_value_t = Retention::default().runs_days)]
    pub retention_days: u32,
    /// Days audit entries are kept, at least as long as runs; 0 keeps them forever.
    #[arg(long, env = "BYOC_AUDIT_RETENTION_DAYS", default_value_t = Retention::default().audit_days)]
    pub audit_retention_days: u32,
}

/// A drift-check period in minutes; `None`: off.
#[derive(Clone, Copy, Debug)]
pub struct DriftEvery(pub Option<u32>);

fn drift_every(text: &str) -> Result<DriftEvery, String> {
    byoc_model::parse_every(text).map(DriftEvery)
}

fn wait_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if (0.0001..=1.0).contains(&scale) => Ok(scale),
        _ => Err(format!("{text:?} is not a number between 0.0001 and 1")),
    }
}

fn account_id(text: &str) -> Result<String, String> {
    byoc_model::AccountId::new(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = Database::connect(&args.database.database_url).await?;
    let sealer = Sealer::for_database(&db, args.database.secret_key.as_deref())?;
    db.migrate().await.context("apply migrations")?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    println!("byoc worker started (database {})", db.url());
    work(db, sealer, args.worker, shutdown).await
}

/// Runs workers until `shutdown`; then takes no new jobs, hands back runs still waiting for
/// their turn and finishes the runs in flight.
pub async fn work(
    db: Database,
    sealer: Sealer,
    args: WorkerArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
    let helm = match &args.helm {
        // Asked for: it must work.
        Some(path) => Some(Helm::locate(path).await?),
        None => match Helm::locate("helm").await {
            Ok(helm) => Some(helm),
            Err(e) => {
                tracing::warn!(error = %e, "no helm: environments with bootstrap components will fail");
                None
            }
        },
    };
    if let Some(helm) = &helm {
        tracing::info!(version = helm.version(), "helm found");
    }
    // The role customers' trust stacks must create: the API tells them.
    db.set_fact(facts::TRUST_ROLE_NAME, &args.role_name).await?;
    let platform = Platform::load(PlatformOptions {
        endpoint: args.aws_endpoint_url,
        role_name: Some(args.role_name),
        limits: args.aws_rates,
        helm,
        wait: WaitPolicy {
            scale: args.aws_wait_scale,
            ..WaitPolicy::default()
        },
    })
    .await;
    // For the API, which holds no cloud credentials: the account tenants must trust.
    let account = match args.platform_account_id {
        Some(configured) => Ok(configured),
        None => platform.account_id().await,
    };
    match account {
        Ok(account) => db.set_fact(facts::PLATFORM_ACCOUNT_ID, &account).await?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the platform account id (STS GetCallerIdentity); set BYOC_PLATFORM_ACCOUNT_ID")
        }
    }
    let mut config = WorkerConfig::new(unique_worker_name());
    config.lease_ttl = Duration::from_secs(args.lease_ttl_seconds.max(3));
    let worker = Worker::new(
        db.clone(),
        sealer,
        Arc::new(AwsBlueprint::new(platform)),
        config,
        shutdown.clone(),
    );
    let forever = |days: u32| if days == 0 { u32::MAX / 2 } else { days };
    let retention = Retention {
        runs_days: forever(args.retention_days),
        audit_days: forever(args.audit_retention_days),
    };
    anyhow::ensure!(
        retention.audit_days >= retention.runs_days,
        "--audit-retention-days ({}) must be at least --retention-days ({}): the audit log is kept longest",
        args.audit_retention_days,
        args.retention_days
    );
    let schedule = ScheduleConfig {
        default_every_minutes: args.drift_check_every.0,
        retention: (args.retention_days > 0 || args.audit_retention_days > 0).then_some(retention),
        ..ScheduleConfig::default()
    };
    let concurrency = args.concurrency.max(1);
    run_daemon_with(db, queue, worker, concurrency, schedule, shutdown).await?;
    Ok(())
}
