//! The whole system as an operator runs it: the emulator behind its latency and fault
//! wrapper, `byoc serve` answering the API (no workers of its own) and separate `byoc
//! worker` processes, driven through the HTTP API alone, on SQLite and on Postgres. What
//! the tests check in the emulator they read with the platform's own credentials.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use byoc_components::{Platform, PlatformOptions, Target};
use byoc_testkit::{ADMIN_TOKEN, ByocProcess, Emulator, EmulatorOptions, PostgresServer, TestDb};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_byoc");

/// The emulator of the lifecycle tests: every call 2-10 ms late, NAT gateways, clusters
/// and node groups a second in the making (and in the unmaking).
fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        Emulator::start(&EmulatorOptions {
            create_seconds: 1.0,
            delete_seconds: 1.0,
            latency_ms: Some("2-10".into()),
            ..EmulatorOptions::default()
        })
        .expect("start the emulator")
    })
}

/// `byoc serve --no-workers` and `workers` separate `byoc worker` processes on one database.
struct System {
    api: Api,
    database_url: String,
    endpoint: String,
    _server: ByocProcess,
    workers: Vec<ByocProcess>,
}

impl System {
    async fn start(database_url: &str, endpoint: &str, workers: usize) -> anyhow::Result<System> {
        let mut serve = ByocProcess::command(Path::new(BIN), database_url, Some(endpoint));
        serve
            .args(["serve", "--no-workers", "--listen", "127.0.0.1:0"])
            .env("BYOC_DEFAULT_REGION", "us-east-1")
            .env("BYOC_LOG", "warn");
        let server = ByocProcess::serve(serve)?;
        let api = Api::new(server.url());
        // The server migrates the database before it is ready; workers start after that.
        api.until_ready().await?;
        let mut system = System {
            api,
            database_url: database_url.to_string(),
            endpoint: endpoint.to_string(),
            _server: server,
            workers: Vec::new(),
        };
        for _ in 0..workers {
            system.add_worker(&[])?;
        }
        Ok(system)
    }

    fn add_worker(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut cmd =
            ByocProcess::command(Path::new(BIN), &self.database_url, Some(&self.endpoint));
        cmd.arg("worker")
            .env("BYOC_LOG", "warn")
            .env("BYOC_LEASE_TTL_SECONDS", "10")
            .envs(env.iter().copied());
        self.workers.push(ByocProcess::spawn(cmd)?);
        Ok(())
    }
}

/// The HTTP API with the admin token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: url.to_string(),
        }
    }

    async fn until_ready(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            ensure!(
                start.elapsed() < Duration::from_secs(30),
                "{} never became ready",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))?
        };
        Ok((status, value))
    }

    /// A request that must succeed (2xx): its JSON body.
    async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, value) = self.send(method.clone(), path, body).await?;
        ensure!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        Ok(value)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.ok(Method::GET, path, None).await
    }

    /// Requests a run (202) and returns its id.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<String> {
        let (status, value) = self.send(method.clone(), path, body).await?;
        ensure!(status == 202, "{method} {path}: {status} {value}");
        Ok(value["run_id"].as_str().context("run_id")?.to_string())
    }

    /// Follows a run's SSE stream to its end, reconnecting after `Last-Event-ID` when the
    /// stream breaks. Returns the run's final status and every event.
    async fn follow(&self, run: &str, limit: Duration) -> anyhow::Result<(String, Vec<Value>)> {
        let mut events: Vec<Value> = Vec::new();
        match tokio::time::timeout(limit, self.follow_into(run, &mut events)).await {
            Ok(result) => result.map(|status| (status, events)),
            Err(_) => bail!(
                "run {run} not finished after {limit:?}; last events: {:?}",
                events.iter().rev().take(5).collect::<Vec<_>>()
            ),
        }
    }

    async fn follow_into(&self, run: &str, events: &mut Vec<Value>) -> anyhow::Result<String> {
        loop {
            let mut req = self
                .http
                .get(format!("{}/api/v1/runs/{run}/events", self.url))
                .bearer_auth(ADMIN_TOKEN)
                .header("accept", "text/event-stream");
            if let Some(seq) = events.last().and_then(|e| e["seq"].as_i64()) {
                req = req.header("last-event-id", seq.to_string());
            }
            let resp = match req.send().await {
                Ok(r) if r.status().is_success() => r,
                // The API may be briefly unable to answer (e.g. its database restarting).
                _ => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut body = resp.bytes_stream();
            let mut buffer = String::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let (mut kind, mut data) = (String::new(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            kind = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    match kind.as_str() {
                        "event" => events.push(serde_json::from_str(&data)?),
                        "end" => {
                            let end: Value = serde_json::from_str(&data)?;
                            let status = end["status"].as_str().context("end status")?;
                            return Ok(status.to_string());
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Requests a run, follows it to its end and insists that it succeeded.
    async fn run(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(String, Vec<Value>)> {
        let id = self.request(method, path, body).await?;
        let (status, events) = self.follow(&id, Duration::from_secs(300)).await?;
        if status != "succeeded" {
            let run = self.get(&format!("/api/v1/runs/{id}")).await?;
            bail!("run {id} {status}: {}", run["run"]["error"]);
        }
        Ok((id, events))
    }

    /// The resources a run's plan acts on (not no-ops), as `(resource, action)`.
    async fn changes(&self, run: &str) -> anyhow::Result<Vec<(String, String)>> {
        let shown = self.get(&format!("/api/v1/runs/{run}")).await?;
        let steps = shown["plan"]["steps"].as_array().context("plan steps")?;
        Ok(steps
            .iter()
            .filter(|s| s["action"] != "no_op")
            .map(|s| {
                (
                    s["resource"].as_str().unwrap_or_default().to_string(),
                    s["action"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

fn managed_config(desired: u32) -> Value {
    json!({
        "region": "us-east-1", "eks_mode": "managed", "az_count": 2,
        "node_group_config": {"desired_size": desired, "min_size": 1, "max_size": 4,
            "instance_types": ["m6i.large"], "disk_size": 50},
    })
}

fn auto_config(public_cidrs: &[&str]) -> Value {
    json!({
        "region": "us-east-1", "eks_mode": "auto", "az_count": 2, "nat_mode": "single",
        "endpoint_access": {"public": true, "private": true, "public_cidrs": public_cidrs},
    })
}

/// What of `stack` lives in `account`, read with the platform's credentials (moto's
/// default account may act in any account; the role is not needed to look).
async fn footprint(endpoint: &str, account: &str, stack: &str) -> anyhow::Result<BTreeSet<String>> {
    let options = PlatformOptions {
        endpoint: Some(endpoint.to_string()),
        ..PlatformOptions::default()
    };
    let platform =
        Platform::load_with_keys("AKIADEFAULTACCOUNT01", "secret", "us-east-1", options).await;
    let aws = platform.session(Target {
        account_id: account.into(),
        external_id: "check".into(),
        region: "us-east-1".into(),
        stack: stack.into(),
        run_id: "check".into(),
    });
    let found = aws.footprint().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// The stack's recorded resources (API), checked against the account: each has a physical
/// id and everything of the stack in the account is recorded (no orphan, no duplicate).
/// Returns how many resources are recorded.
async fn all_recorded(
    api: &Api,
    endpoint: &str,
    account: &str,
    env_path: &str,
    stack: &str,
) -> anyhow::Result<usize> {
    let state = api.get(&format!("{env_path}/state")).await?;
    let resources = state["resources"].as_array().context("resources")?;
    let recorded: BTreeSet<String> = resources
        .iter()
        .map(|r| r["physical_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ensure!(
        !recorded.contains(""),
        "a resource has no physical id: {state}"
    );
    let live = footprint(endpoint, account, stack).await?;
    let orphans: Vec<_> = live.difference(&recorded).collect();
    ensure!(
        orphans.is_empty(),
        "{stack}: in the account, not in the state: {orphans:?}"
    );
    Ok(resources.len())
}

/// [`all_recorded`], and a refresh finds no drift: the state is the account's reality.
async fn state_is_reality(
    api: &Api,
    endpoint: &str,
    account: &str,
    env_path: &str,
    stack: &str,
) -> anyhow::Result<usize> {
    let resources = all_recorded(api, endpoint, account, env_path, stack).await?;
    api.run(Method::POST, &format!("{env_path}/refresh"), None)
        .await?;
    let status = api.get(&format!("{env_path}/status")).await?;
    ensure!(
        status["drift"]["drift"] == json!([]),
        "the state differs from the account: {}",
        status["drift"]
    );
    Ok(resources)
}

/// Creates a tenant in a fresh account; returns the account and the external id.
async fn create_tenant(
    api: &Api,
    emulator: &Emulator,
    slug: &str,
) -> anyhow::Result<(String, String)> {
    let account = emulator.fresh_account();
    let created = api
        .ok(
            Method::POST,
            "/api/v1/tenants",
            Some(&json!({"slug": slug, "name": slug, "aws_account_id": account})),
        )
        .await?;
    let external_id = created["external_id"].as_str().context("external_id")?;
    Ok((account, external_id.to_string()))
}

/// Verifies the tenant's trust stack through a run, which must leave it trusted.
async fn verify(api: &Api, slug: &str) -> anyhow::Result<()> {
    api.run(
        Method::POST,
        &format!("/api/v1/tenants/{slug}/verify"),
        Some(&json!({"region": "us-east-1"})),
    )
    .await?;
    let tenant = api.get(&format!("/api/v1/tenants/{slug}")).await?;
    ensure!(
        tenant["tenant"]["onboarding_status"] == "trusted",
        "{tenant}"
    );
    Ok(())
}

/// A tenant in a fresh account whose customer launched the trust stack, verified. Returns
/// the account.
async fn onboard(api: &Api, emulator: &Emulator, slug: &str) -> anyhow::Result<String> {
    let (account, external_id) = create_tenant(api, emulator, slug).await?;
    let launched = emulator.launch_trust_stack(&account, &external_id, &["--tenant-slug", slug])?;
    ensure!(launched.contains("CREATE_COMPLETE"), "{launched}");
    verify(api, slug).await?;
    Ok(account)
}

/// Onboarding to deletion of one tenant environment: deploy, check it against the account,
/// an empty preview, one in-place update, destroy, nothing left, tenant deleted.
async fn lifecycle(database_url: &str, mode: &str) -> anyhow::Result<()> {
    let emulator = emulator();
    let system = System::start(database_url, emulator.endpoint(), 1).await?;
    let api = &system.api;
    let slug = format!("life-{mode}");
    let env_path = format!("/api/v1/tenants/{slug}/environments/dev");
    let stack = format!("{slug}-dev");
    let (config, changed, changed_resource) = match mode {
        "managed" => (managed_config(2), managed_config(3), "nodegroup-default"),
        _ => (
            auto_config(&["0.0.0.0/0"]),
            auto_config(&["203.0.113.0/24"]),
            "cluster",
        ),
    };

    // Until the customer's account trusts byoc, a deploy is refused at once.
    let (account, external_id) = create_tenant(api, emulator, &slug).await?;
    api.ok(Method::POST, &format!("{env_path}/config"), Some(&config))
        .await?;
    let (status, refused) = api
        .send(Method::POST, &format!("{env_path}/deploy"), None)
        .await?;
    ensure!(
        status == 409 && refused["error"] == "not_trusted",
        "{status} {refused}"
    );
    emulator.launch_trust_stack(&account, &external_id, &["--tenant-slug", &slug])?;
    verify(api, &slug).await?;

    // Deploy, following the live event stream to its end.
    let (deploy, events) = api
        .run(Method::POST, &format!("{env_path}/deploy"), None)
        .await?;
    let state = api.get(&format!("{env_path}/state")).await?;
    let recorded: BTreeSet<&str> = state["resources"]
        .as_array()
        .context("resources")?
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    let streamed: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["data"]["event"] == "step_succeeded")
        .filter_map(|e| e["resource"].as_str())
        .collect();
    ensure!(
        streamed == recorded,
        "the stream of run {deploy} named {streamed:?}, the state holds {recorded:?}"
    );
    let status = api.get(&format!("{env_path}/status")).await?;
    ensure!(status["status"]["status"] == "deployed", "{status}");
    ensure!(
        status["outputs"]["cluster"]["endpoint"].is_string(),
        "{status}"
    );
    let resources = state_is_reality(api, emulator.endpoint(), &account, &env_path, &stack).await?;

    // The same config plans nothing.
    let (preview, _) = api
        .run(Method::POST, &format!("{env_path}/preview"), None)
        .await?;
    let planned = api.changes(&preview).await?;
    ensure!(
        planned.is_empty(),
        "preview of the deployed config: {planned:?}"
    );

    // One changed field is one in-place update.
    api.ok(Method::POST, &format!("{env_path}/config"), Some(&changed))
        .await?;
    let (update, _) = api
        .run(Method::POST, &format!("{env_path}/deploy"), None)
        .await?;
    let applied = api.changes(&update).await?;
    ensure!(
        applied == [(changed_resource.to_string(), "update".to_string())],
        "{applied:?}"
    );
    ensure!(
        state_is_reality(api, emulator.endpoint(), &account, &env_path, &stack).await? == resources
    );

    api.run(Method::DELETE, &env_path, None).await?;
    let left = footprint(emulator.endpoint(), &account, &stack).await?;
    ensure!(
        left.is_empty(),
        "left in the account after destroy: {left:?}"
    );
    let state = api.get(&format!("{env_path}/state")).await?;
    ensure!(state["resources"] == json!([]), "{state}");
    let status = api.get(&format!("{env_path}/status")).await?;
    ensure!(status["status"]["status"] == "destroyed", "{status}");

    let (status, _) = api
        .send(Method::DELETE, &format!("/api/v1/tenants/{slug}"), None)
        .await?;
    ensure!(status == 204, "delete tenant: {status}");
    let (status, _) = api
        .send(Method::GET, &format!("/api/v1/tenants/{slug}"), None)
        .await?;
    ensure!(status == 404, "deleted tenant: {status}");
    println!(
        "{mode} on {}: {resources} resources deployed, checked, updated in place and destroyed",
        &database_url[..database_url.find(':').unwrap_or(0)]
    );
    Ok(())
}

async fn postgres() -> anyhow::Result<TestDb> {
    // Unmigrated: `byoc serve` migrates it at start, as in a first install.
    TestDb::postgres("empty", |_| async { Ok(()) }).await
}

#[tokio::test]
async fn managed_environment_lifecycle_on_sqlite() -> anyhow::Result<()> {
    lifecycle(TestDb::sqlite().await?.url(), "managed").await
}

#[tokio::test]
async fn managed_environment_lifecycle_on_postgres() -> anyhow::Result<()> {
    lifecycle(postgres().await?.url(), "managed").await
}

#[tokio::test]
async fn auto_mode_environment_lifecycle_on_sqlite() -> anyhow::Result<()> {
    lifecycle(TestDb::sqlite().await?.url(), "auto").await
}

#[tokio::test]
async fn auto_mode_environment_lifecycle_on_postgres() -> anyhow::Result<()> {
    lifecycle(postgres().await?.url(), "auto").await
}

/// One in five AWS calls throttled and every call 200 ms late: a deploy and a destroy
/// still complete, with nothing left behind. The config is the seed's example as written:
/// the server's default region and the node group defaults complete it.
#[tokio::test]
async fn deploys_and_destroys_through_throttling_and_latency() -> anyhow::Result<()> {
    let emulator = Emulator::start(&EmulatorOptions {
        latency_ms: Some("200".into()),
        throttle_rate: 0.2,
        seed: Some(7),
        ..EmulatorOptions::default()
    })?;
    let t = TestDb::sqlite().await?;
    let system = System::start(t.url(), emulator.endpoint(), 1).await?;
    let api = &system.api;
    let account = onboard(api, &emulator, "faults").await?;
    let env_path = "/api/v1/tenants/faults/environments/dev";
    let seed_example = json!({"eks_mode": "managed", "node_group_config": {"desired_size": 2}});
    let saved = api
        .ok(
            Method::POST,
            &format!("{env_path}/config"),
            Some(&seed_example),
        )
        .await?;
    ensure!(
        saved["config"]["region"] == "us-east-1"
            && saved["config"]["node_group_config"]["max_size"].as_u64() >= Some(2),
        "{saved}"
    );
    let started = Instant::now();
    let (_, events) = api
        .run(Method::POST, &format!("{env_path}/deploy"), None)
        .await?;
    let deployed_in = started.elapsed();
    let retries = events
        .iter()
        .filter(|e| e["data"]["event"] == "step_retrying")
        .count();
    state_is_reality(api, emulator.endpoint(), &account, env_path, "faults-dev").await?;
    api.run(Method::DELETE, env_path, None).await?;
    let left = footprint(emulator.endpoint(), &account, "faults-dev").await?;
    ensure!(left.is_empty(), "left after destroy: {left:?}");
    let stats: Value = serde_json::from_str(&emulator.stats()?)?;
    ensure!(stats["throttled"].as_u64() > Some(20), "{stats}");
    println!(
        "20% throttling, 200 ms per call: deploy in {:.1} s ({retries} step retries), destroy clean; emulator: {stats}",
        deployed_in.as_secs_f64()
    );
    Ok(())
}

/// The database goes away in the middle of a deploy and comes back: the run completes,
/// and the account holds exactly what the state records.
#[tokio::test]
async fn a_deploy_survives_a_postgres_restart() -> anyhow::Result<()> {
    let postgres = tokio::task::spawn_blocking(PostgresServer::start).await??;
    // Slow resources, so that the restart falls inside the run.
    let emulator = Emulator::start(&EmulatorOptions {
        create_seconds: 4.0,
        ..EmulatorOptions::default()
    })?;
    let system = System::start(&postgres.url(), emulator.endpoint(), 1).await?;
    let api = &system.api;
    let account = onboard(api, &emulator, "restart").await?;
    let env_path = "/api/v1/tenants/restart/environments/dev";
    api.ok(
        Method::POST,
        &format!("{env_path}/config"),
        Some(&managed_config(2)),
    )
    .await?;
    let run = api
        .request(Method::POST, &format!("{env_path}/deploy"), None)
        .await?;
    // Restart once a few resources exist and the slow ones are in the making.
    let start = Instant::now();
    loop {
        let events = api.get(&format!("/api/v1/runs/{run}/events")).await?;
        let done = events["events"]
            .as_array()
            .context("events")?
            .iter()
            .filter(|e| e["data"]["event"] == "step_succeeded")
            .count();
        if done >= 8 {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {events}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    postgres.stop()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    postgres.start_again()?;
    let (status, _) = api.follow(&run, Duration::from_secs(180)).await?;
    let shown = api.get(&format!("/api/v1/runs/{run}")).await?;
    ensure!(status == "succeeded", "{shown}");
    let resources =
        state_is_reality(api, emulator.endpoint(), &account, env_path, "restart-dev").await?;
    ensure!(resources == 26, "{resources} resources");
    println!(
        "Postgres stopped for 3 s mid-deploy: the run completed, {resources} resources, state = account"
    );
    Ok(())
}

/// 50 deploy requests at once on one stack: they coalesce into queued runs, the stack runs
/// one at a time, and the result is the one environment.
#[tokio::test]
async fn fifty_concurrent_deploy_requests_coalesce() -> anyhow::Result<()> {
    let emulator = emulator();
    let t = TestDb::sqlite().await?;
    let system = System::start(t.url(), emulator.endpoint(), 1).await?;
    let api = &system.api;
    let account = onboard(api, emulator, "crowd").await?;
    let env_path = "/api/v1/tenants/crowd/environments/dev";
    api.ok(
        Method::POST,
        &format!("{env_path}/config"),
        Some(&managed_config(2)),
    )
    .await?;
    let path = format!("{env_path}/deploy");
    let answers = futures::future::join_all((0..50).map(|_| {
        let (api, path) = (api.clone(), path.clone());
        async move { api.send(Method::POST, &path, None).await }
    }))
    .await;
    let mut runs = BTreeSet::new();
    let mut coalesced = 0;
    for answer in answers {
        let (status, body) = answer?;
        ensure!(status == 202, "{status} {body}");
        runs.insert(body["run_id"].as_str().context("run_id")?.to_string());
        coalesced += usize::from(body["coalesced"] == true);
    }
    // A deploy joins the queued one; a second is queued only once the first has started.
    ensure!(runs.len() <= 2, "{} runs for 50 requests", runs.len());
    ensure!(coalesced == 50 - runs.len(), "{coalesced} coalesced");
    for run in &runs {
        let (status, _) = api.follow(run, Duration::from_secs(180)).await?;
        ensure!(status == "succeeded", "run {run} {status}");
    }
    let listed = api.get(&format!("{env_path}/runs")).await?;
    let mut spans: Vec<(i64, i64)> = listed["runs"]
        .as_array()
        .context("runs")?
        .iter()
        .filter(|r| r["kind"] == "deploy")
        .map(|r| {
            (
                r["started_at"].as_i64().unwrap_or(0),
                r["finished_at"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(spans.len() == runs.len(), "{listed}");
    spans.sort();
    ensure!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "runs of one stack overlapped: {spans:?}"
    );
    let resources =
        state_is_reality(api, emulator.endpoint(), &account, env_path, "crowd-dev").await?;
    ensure!(resources == 26);
    println!(
        "50 concurrent deploy requests: {} runs, {coalesced} requests coalesced, one at a time, {resources} resources",
        runs.len()
    );
    Ok(())
}

/// 20 tenants deployed at once by two worker processes on one Postgres database: every
/// environment complete, both workers at work.
#[tokio::test]
async fn twenty_tenants_over_two_workers_on_postgres() -> anyhow::Result<()> {
    let emulator = emulator();
    let t = postgres().await?;
    let mut system = System::start(t.url(), emulator.endpoint(), 0).await?;
    for _ in 0..2 {
        system.add_worker(&[("BYOC_WORKER_CONCURRENCY", "10")])?;
    }
    let api = &system.api;
    let slugs: Vec<String> = (0..20).map(|i| format!("fleet-{i:02}")).collect();
    let mut tenants = Vec::new();
    for slug in &slugs {
        tenants.push(create_tenant(api, emulator, slug).await?);
    }
    // The customers launch their trust stacks at about the same time.
    std::thread::scope(|s| {
        let launches: Vec<_> = tenants
            .iter()
            .map(|(account, external_id)| {
                s.spawn(move || emulator.launch_trust_stack(account, external_id, &[]))
            })
            .collect();
        launches
            .into_iter()
            .map(|l| l.join().expect("a launch thread"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    futures::future::try_join_all(slugs.iter().map(|slug| verify(api, slug))).await?;
    for slug in &slugs {
        api.ok(
            Method::POST,
            &format!("/api/v1/tenants/{slug}/environments/dev/config"),
            Some(&managed_config(2)),
        )
        .await?;
    }
    let started = Instant::now();
    let runs = futures::future::try_join_all(slugs.iter().map(|slug| async move {
        let path = format!("/api/v1/tenants/{slug}/environments/dev/deploy");
        api.run(Method::POST, &path, None).await
    }))
    .await?;
    let wall = started.elapsed();
    let workers: BTreeSet<String> = runs
        .iter()
        .flat_map(|(_, events)| events.iter())
        .filter_map(|e| e["message"].as_str()?.strip_prefix("taken by worker "))
        .filter_map(|m| m.split_whitespace().next().map(str::to_string))
        .collect();
    ensure!(workers.len() == 2, "runs were taken by {workers:?}");
    for (slug, (account, _)) in slugs.iter().zip(&tenants) {
        let env_path = format!("/api/v1/tenants/{slug}/environments/dev");
        let stack = format!("{slug}-dev");
        let resources = all_recorded(api, emulator.endpoint(), account, &env_path, &stack).await?;
        ensure!(resources == 26, "{slug}: {resources} resources");
    }
    println!(
        "20 tenants over 2 worker processes on Postgres: all deployed in {:.1} s",
        wall.as_secs_f64()
    );
    Ok(())
}
