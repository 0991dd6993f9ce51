//! Lease takeover across real processes: a worker is killed with SIGKILL mid-run, a second
//! one resumes the run from the journal and finishes it with no duplicate object.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use byoc_engine::{Resource, reference};
use byoc_model::{RunKind, RunStatus};
use byoc_stacks::{
    Database, JobQueue, NewTenant, QueueConfig, Sealer, migrate_url, schema_fingerprint,
};
use byoc_testkit::TestDb;
use serde_json::json;

/// `byoc-test-worker` as a child process, SIGKILLed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(db_url: &str, cloud: &std::path::Path, name: &str) -> anyhow::Result<WorkerProcess> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_byoc-test-worker"))
            .env("BYOC_DATABASE_URL", db_url)
            .env("FAKE_CLOUD", cloud)
            .env("WORKER_NAME", name)
            .env("CREATE_MS", "300")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        anyhow::ensure!(line.trim() == "ready", "worker said {line:?}");
        Ok(WorkerProcess(child))
    }

    fn kill9(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn objects(cloud: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", cloud.display())).await?;
    let rows = sqlx::query_as("SELECT id, resource FROM objects ORDER BY resource")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    Ok(rows)
}

fn resources() -> Vec<Resource> {
    let mut r = vec![Resource::new("vpc", "vpc", json!({}))];
    for s in ["a", "b", "c"] {
        r.push(Resource::new(
            "subnet",
            format!("subnet-{s}"),
            json!({"vpc": reference("vpc", "id")}),
        ));
    }
    r.push(Resource::new(
        "nat",
        "nat",
        json!({"subnet": reference("subnet-a", "id")}),
    ));
    r.push(Resource::new(
        "route",
        "route",
        json!({"nat": reference("nat", "id")}),
    ));
    r
}

#[tokio::test]
async fn a_killed_workers_run_is_finished_by_another_without_duplicates() -> anyhow::Result<()> {
    let databases = TestDb::both(&schema_fingerprint(), |url| async move {
        Ok(migrate_url(&url).await?)
    })
    .await?;
    for t in &databases {
        let dir = tempfile::tempdir()?;
        let cloud = dir.path().join("cloud.db");
        let db = Database::connect(t.url()).await?;
        let sealer = Sealer::from_hex(&"ab".repeat(32))?;
        let new = NewTenant {
            slug: "acme".into(),
            name: "Acme".into(),
            aws_account_id: "111111111111".into(),
            labels: Default::default(),
        };
        let (tenant, _) = db.create_tenant(&sealer, &new, "test").await?;
        db.save_config(
            &tenant.id,
            "acme",
            "dev",
            &json!({ "resources": resources() }),
            "test",
        )
        .await?;
        let queue = JobQueue::setup(&db, QueueConfig::default()).await?;
        let (run, _) = queue
            .request(&db, "acme-dev", RunKind::Deploy, "alice")
            .await?;

        let mut first = WorkerProcess::start(t.url(), &cloud, "worker-1")?;
        let started = Instant::now();
        while objects(&cloud).await?.len() < 2 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "worker 1 made no progress"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        first.kill9();
        let at_kill = objects(&cloud).await?.len();
        assert!(at_kill < resources().len(), "killed mid-run");
        assert_eq!(db.run(&run.id).await?.status, RunStatus::Running);

        let _second = WorkerProcess::start(t.url(), &cloud, "worker-2")?;
        let status = loop {
            let run = db.run(&run.id).await?;
            if run.status.is_finished() {
                break run.status;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "run still {}",
                run.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status, RunStatus::Succeeded);

        let objects = objects(&cloud).await?;
        let names: Vec<&str> = objects.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            names,
            ["nat", "route", "subnet-a", "subnet-b", "subnet-c", "vpc"],
            "one object each"
        );
        let state = db
            .snapshot("acme-dev")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (id, resource) in &objects {
            assert_eq!(
                &state.resources[resource].physical_id, id,
                "state matches the cloud"
            );
        }
        assert!(state.pending.is_empty());
        eprintln!(
            "{}: killed worker 1 after {at_kill} objects; worker 2 finished in {:?}",
            t.url(),
            started.elapsed()
        );
    }
    Ok(())
}
