//! What the worker tests share: on the in-memory cloud, a blueprint whose desired state is
//! the config's `resources` list and a worker of it with short leases and quick retries; on
//! the emulator, a trusted tenant's environment and a worker with the AWS blueprint.
#![allow(dead_code)] // each test binary uses part of this module

use std::sync::Arc;
use std::time::Duration;

use byoc_components::{Aws, Platform, PlatformOptions, Target, WaitPolicy};
use byoc_engine::testing::{FakeCloud, providers};
use byoc_engine::{CancellationToken, Providers, Resource, RetryPolicy};
use byoc_model::{EnvironmentConfig, RunStatus};
use byoc_stacks::{Database, JobQueue, NewTenant, QueueConfig, Sealer, migrate_url};
use byoc_testkit::{Emulator, TestDb, trust_tenant};
use byoc_workers::{AwsBlueprint, Blueprint, RunTarget, Worker, WorkerConfig};
use serde_json::Value;

const KINDS: &[&str] = &["vpc", "subnet", "nat"];

/// The config's `resources` are the resource list.
pub struct ListBlueprint(pub Arc<FakeCloud>);

impl Blueprint for ListBlueprint {
    fn build(&self, _: &RunTarget, config: &Value) -> Result<(Vec<Resource>, Providers), String> {
        let resources =
            serde_json::from_value(config["resources"].clone()).map_err(|e| e.to_string())?;
        Ok((resources, providers(&self.0, KINDS)))
    }
}

/// A worker `name` of [`ListBlueprint`] on `cloud`, with leases of `lease_ttl`, polling
/// every 20 ms, and three quick attempts per call.
pub fn list_worker(
    db: &Database,
    cloud: &Arc<FakeCloud>,
    name: &str,
    lease_ttl: Duration,
) -> anyhow::Result<Worker> {
    worker_of(db, Arc::new(ListBlueprint(cloud.clone())), name, lease_ttl)
}

/// As [`list_worker`], with `blueprint`.
pub fn worker_of(
    db: &Database,
    blueprint: Arc<dyn Blueprint>,
    name: &str,
    lease_ttl: Duration,
) -> anyhow::Result<Worker> {
    let mut wc = WorkerConfig::new(name);
    wc.lease_ttl = lease_ttl;
    wc.poll = Duration::from_millis(20);
    wc.retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(5),
    };
    Ok(Worker::new(
        db.clone(),
        Sealer::from_hex(&"ab".repeat(32))?,
        blueprint,
        wc,
        CancellationToken::new(),
    ))
}

pub const REGION: &str = "us-east-1";

/// Tenant `acme` (trusted, in a fresh emulated account) with environment `dev` saved as
/// `config`, a SQLite store with its queue, and a worker with the AWS blueprint.
pub struct AwsWorld {
    _file: TestDb,
    pub db: Database,
    pub queue: JobQueue,
    pub worker: Worker,
    /// What the customer sees in the account (the console).
    pub console: Arc<Aws>,
    pub stack: &'static str,
    tenant_id: String,
}

impl AwsWorld {
    pub async fn new(config: Value) -> anyhow::Result<AwsWorld> {
        let emulator = Emulator::shared();
        let account = emulator.fresh_account();
        let file = TestDb::sqlite().await?;
        migrate_url(file.url()).await?;
        let db = Database::connect(file.url()).await?;
        let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
        let options = PlatformOptions {
            endpoint: Some(emulator.endpoint().to_string()),
            wait: WaitPolicy::emulator(),
            ..PlatformOptions::default()
        };
        let platform =
            Platform::load_with_keys("AKIADEFAULTACCOUNT01", "secret", REGION, options).await;
        let sealer = Sealer::from_hex(&"ab".repeat(32))?;
        let worker = Worker::new(
            db.clone(),
            sealer.clone(),
            Arc::new(AwsBlueprint::new(platform.clone())),
            WorkerConfig::new("aws-worker"),
            CancellationToken::new(),
        );
        let new = NewTenant {
            slug: "acme".into(),
            name: "Acme".into(),
            aws_account_id: account.clone(),
            labels: Default::default(),
        };
        let (tenant, _) = db.create_tenant(&sealer, &new, "test").await?;
        trust_tenant(&db, "acme").await?;
        let console = platform.session(Target {
            account_id: account,
            external_id: "console".into(),
            region: REGION.into(),
            stack: "acme-dev".into(),
            run_id: "console".into(),
        });
        let world = AwsWorld {
            _file: file,
            db,
            queue,
            worker,
            console,
            stack: "acme-dev",
            tenant_id: tenant.id,
        };
        world.save(config).await?;
        Ok(world)
    }

    /// Saves `config` (defaults filled in, as the API does).
    pub async fn save(&self, config: Value) -> anyhow::Result<()> {
        let config = serde_json::to_value(EnvironmentConfig::resolve(&config, None)?)?;
        self.db
            .save_config(&self.tenant_id, "acme", "dev", &config, "test")
            .await?;
        Ok(())
    }

    /// Requests a run of `kind` and executes it: its status.
    pub async fn run(&self, kind: byoc_model::RunKind) -> anyhow::Result<(String, RunStatus)> {
        let (run, _) = self.db.request_run(self.stack, kind, "alice").await?;
        let status = self.worker.execute(run.id.as_str()).await?;
        Ok((run.id.to_string(), status))
    }

    /// The physical id of a recorded resource.
    pub async fn id(&self, name: &str) -> anyhow::Result<String> {
        let state = self
            .db
            .snapshot(self.stack)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(state.resources[name].physical_id.clone())
    }
}
