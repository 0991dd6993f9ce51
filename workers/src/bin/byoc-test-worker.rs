//! A worker daemon for crash tests, with a fast heartbeat and lease: killed mid-run, its
//! successor must finish the run without a duplicate or orphaned object. Not for production.
//!
//! Environment: `BYOC_DATABASE_URL` (the store), `WORKER_NAME`, and either
//! - `FAKE_CLOUD` (SQLite file holding a fake cloud's objects, shared by every worker
//!   process) and `CREATE_MS` (latency of each create), or
//! - `BLUEPRINT=aws`: the real AWS blueprint against `AWS_ENDPOINT_URL` (the emulator).
//!
//! `PARALLELISM` bounds the steps run at once. `CRASH_POINT=before|after:R1,R2,...` aborts
//! the process (as kill -9 would: nothing is flushed or released) just before or just after
//! the first create, update or delete call of any of the listed resources, saying which
//! (`R~deposed`: the delete of R's old object after a create-before-destroy replacement).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use byoc_components::{Platform, PlatformOptions, WaitPolicy};
use byoc_engine::{
    CancellationToken, Created, Ctx, ErrorClass, Observed, Provider, ProviderError, Providers,
    Resource,
};
use byoc_stacks::{Database, JobQueue, QueueConfig};
use byoc_workers::{AwsBlueprint, Blueprint, RunTarget, Worker, WorkerConfig, run_daemon};
use serde_json::{Value, json};
use sqlx::SqlitePool;

/// Objects live in a SQLite file, so they outlive any worker process.
struct FileCloud {
    pool: SqlitePool,
    create_latency: Duration,
}

fn failed(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::with_code("Throttling", e.to_string())
}

#[async_trait]
impl Provider for FileCloud {
    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        tokio::time::sleep(self.create_latency).await;
        let id = format!("obj-{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO objects (id, stack, resource, token, inputs) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&ctx.stack)
        .bind(&ctx.resource)
        .bind(&ctx.token)
        .bind(inputs.to_string())
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(Created {
            outputs: json!({"id": id}),
            physical_id: id,
        })
    }

    async fn read(&self, _: &Ctx, id: &str, _: &Value) -> Result<Observed, ProviderError> {
        let inputs: Option<String> = sqlx::query_scalar("SELECT inputs FROM objects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        let inputs = inputs.ok_or_else(|| ProviderError::with_code("NotFound", id.to_string()))?;
        Ok(Observed {
            inputs: serde_json::from_str(&inputs).map_err(failed)?,
            outputs: json!({"id": id}),
        })
    }

    async fn update(
        &self,
        _: &Ctx,
        id: &str,
        _: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        sqlx::query("UPDATE objects SET inputs = $1 WHERE id = $2")
            .bind(new.to_string())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(json!({"id": id}))
    }

    async fn delete(&self, _: &Ctx, id: &str, _: &Value) -> Result<(), ProviderError> {
        sqlx::query("DELETE FROM objects WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(failed)
    }

    async fn find_existing(&self, ctx: &Ctx, _: &Value) -> Result<Option<Created>, ProviderError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM objects WHERE stack = $1 AND resource = $2 AND token = $3",
        )
        .bind(&ctx.stack)
        .bind(&ctx.resource)
        .bind(&ctx.token)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        Ok(id.map(|id| Created {
            outputs: json!({"id": id}),
            physical_id: id,
        }))
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        match error.code.as_deref() {
            Some("NotFound") => ErrorClass::NotFound,
            _ => ErrorClass::Transient,
        }
    }
}

/// The config's `resources` list is the desired state; every type is the file cloud.
struct ListBlueprint(Arc<FileCloud>);

impl Blueprint for ListBlueprint {
    fn build(&self, _: &RunTarget, config: &Value) -> Result<(Vec<Resource>, Providers), String> {
        let resources: Vec<Resource> =
            serde_json::from_value(config["resources"].clone()).map_err(|e| e.to_string())?;
        let providers = resources.iter().fold(Providers::new(), |p, r| {
            p.with(r.kind.clone(), self.0.clone() as Arc<dyn Provider>)
        });
        Ok((resources, providers))
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Where to crash: the resources, and whether after their call (else before).
struct Point {
    resources: Vec<String>,
    after: bool,
}

/// A provider that aborts the process at a listed resource's call.
struct CrashAt {
    inner: Arc<dyn Provider>,
    point: Arc<Point>,
}

impl CrashAt {
    async fn boundary<T>(
        &self,
        ctx: &Ctx,
        delete: bool,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        // A listed name matches its resource's calls; `{name}~deposed` only a delete (in a
        // deploy: of the old object a create-before-destroy replacement left).
        let base = byoc_engine::base_name(&ctx.resource);
        let listed = |name: &str| self.point.resources.iter().any(|r| r == name);
        let deposed = format!("{base}~deposed");
        let resource = if delete && listed(&deposed) {
            deposed.as_str()
        } else {
            base
        };
        let here = listed(resource);
        let crash = |when: &str| {
            eprintln!("crash point {resource}:{when} reached");
            std::process::abort();
        };
        if here && !self.point.after {
            crash("before");
        }
        let result = call.await;
        if here && self.point.after {
            crash("after");
        }
        result
    }
}

#[async_trait]
impl Provider for CrashAt {
    fn check(&self, inputs: &Value) -> Result<(), String> {
        self.inner.check(inputs)
    }

    fn diff(&self, old: &Value, new: &Value) -> byoc_engine::Diff {
        self.inner.diff(old, new)
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        self.boundary(ctx, false, self.inner.create(ctx, inputs))
            .await
    }

    async fn read(&self, ctx: &Ctx, id: &str, inputs: &Value) -> Result<Observed, ProviderError> {
        self.inner.read(ctx, id, inputs).await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        self.boundary(ctx, false, self.inner.update(ctx, id, old, new))
            .await
    }

    async fn delete(&self, ctx: &Ctx, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        self.boundary(ctx, true, self.inner.delete(ctx, id, inputs))
            .await
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        inputs: &Value,
    ) -> Result<Option<Created>, ProviderError> {
        self.inner.find_existing(ctx, inputs).await
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        self.inner.classify(error)
    }
}

/// Another blueprint whose providers crash at `point`.
struct Crashing {
    inner: Arc<dyn Blueprint>,
    point: Arc<Point>,
}

#[async_trait]
impl Blueprint for Crashing {
    fn build(
        &self,
        target: &RunTarget,
        config: &Value,
    ) -> Result<(Vec<Resource>, Providers), String> {
        let (resources, providers) = self.inner.build(target, config)?;
        let providers = providers.map(|_, inner| {
            Arc::new(CrashAt {
                inner,
                point: self.point.clone(),
            }) as Arc<dyn Provider>
        });
        Ok((resources, providers))
    }
}

async fn blueprint() -> Result<Arc<dyn Blueprint>, Box<dyn std::error::Error>> {
    if std::env::var("BLUEPRINT").as_deref() == Ok("aws") {
        let platform = Platform::load(PlatformOptions {
            endpoint: Some(env("AWS_ENDPOINT_URL")),
            wait: WaitPolicy::emulator(),
            ..PlatformOptions::default()
        })
        .await;
        return Ok(Arc::new(AwsBlueprint::new(platform)));
    }
    let cloud_url = format!("sqlite://{}?mode=rwc", env("FAKE_CLOUD"));
    let pool = SqlitePool::connect(&cloud_url).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, stack TEXT, resource TEXT, token TEXT, inputs TEXT)")
        .execute(&pool)
        .await?;
    let cloud = Arc::new(FileCloud {
        pool,
        create_latency: Duration::from_millis(env("CREATE_MS").parse()?),
    });
    Ok(Arc::new(ListBlueprint(cloud)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut blueprint = blueprint().await?;
    if let Ok(point) = std::env::var("CRASH_POINT") {
        let (when, resources) = point
            .split_once(':')
            .ok_or("CRASH_POINT is before:R1,R2,... or after:R1,R2,...")?;
        blueprint = Arc::new(Crashing {
            inner: blueprint,
            point: Arc::new(Point {
                resources: resources.split(',').map(str::to_string).collect(),
                after: when == "after",
            }),
        });
    }
    let db = Database::connect(&env("BYOC_DATABASE_URL")).await?;
    let queue = JobQueue::setup(
        &db,
        QueueConfig {
            batch: 2,
            heartbeat: Duration::from_millis(500),
            ..QueueConfig::default()
        },
    )
    .await?;
    let mut config = WorkerConfig::new(env("WORKER_NAME"));
    config.lease_ttl = Duration::from_millis(1500);
    config.poll = Duration::from_millis(50);
    if let Ok(n) = std::env::var("PARALLELISM") {
        config.parallelism = Some(n.parse()?);
    }
    let shutdown = CancellationToken::new();
    // The key the tests seal their tenants' external ids with.
    let sealer = byoc_stacks::Sealer::from_hex(&"ab".repeat(32))?;
    let worker = Worker::new(db.clone(), sealer, blueprint, config, shutdown.clone());
    println!("ready");
    run_daemon(db, queue, worker, 2, shutdown).await?;
    Ok(())
}
