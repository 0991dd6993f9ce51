//! Engine benchmarks: `cargo bench -p byoc-engine`. Prints its figures; asserts nothing.
//!
//! 1. plan + apply of a 10,000-resource layered DAG (fan-out 10), no-op provider, in-memory
//!    store: total time and microseconds per resource (goal: under 1 s in all).
//! 2. state write cost per step at 100, 1,000 and 10,000 resources (goal: flat).
//! 3. critical-path efficiency on a ~35-resource DAG shaped like a real environment, each
//!    provider call sleeping a per-type latency: wall time / critical path (goal: <= 1.05).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use byoc_engine::testing::{FakeCloud, providers};
use byoc_engine::{
    Created, Ctx, ErrorClass, ExecOptions, Executor, Graph, MemoryStore, NoEvents, Observed,
    Provider, ProviderError, Providers, Resource, RunStatus, Snapshot, plan, reference,
};
use serde_json::{Value, json};

/// Answers at once: measures the engine alone.
struct Noop;

#[async_trait]
impl Provider for Noop {
    async fn create(&self, ctx: &Ctx, _: &Value) -> Result<Created, ProviderError> {
        Ok(Created {
            physical_id: ctx.resource.clone(),
            outputs: json!({"id": ctx.resource}),
        })
    }
    async fn read(&self, _: &Ctx, id: &str, inputs: &Value) -> Result<Observed, ProviderError> {
        Ok(Observed {
            inputs: inputs.clone(),
            outputs: json!({"id": id}),
        })
    }
    async fn update(
        &self,
        _: &Ctx,
        id: &str,
        _: &Value,
        _: &Value,
    ) -> Result<Value, ProviderError> {
        Ok(json!({"id": id}))
    }
    async fn delete(&self, _: &Ctx, _: &str, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn find_existing(&self, _: &Ctx, _: &Value) -> Result<Option<Created>, ProviderError> {
        Ok(None)
    }
    fn classify(&self, _: &ProviderError) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// `n` resources in layers: each resource references one in the layer above, ten per parent.
fn layered(n: usize) -> Vec<Resource> {
    (0..n)
        .map(|i| {
            let inputs = if i == 0 {
                json!({"cidr": "10.0.0.0/16"})
            } else {
                json!({"parent": reference(&format!("n{}", (i - 1) / 10), "id"), "index": i})
            };
            Resource::new("noop", format!("n{i}"), inputs)
        })
        .collect()
}

/// Plans `resources` from an empty state and applies the plan: (time to plan, time to plan
/// and apply, the store written to).
async fn plan_and_apply(
    resources: Vec<Resource>,
    providers: Providers,
) -> (Duration, Duration, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let started = Instant::now();
    let graph = Graph::new(resources).unwrap();
    let p = plan(
        "bench",
        "r1",
        &graph,
        &Snapshot::default(),
        &providers,
        None,
    )
    .unwrap();
    let planned = started.elapsed();
    let executor = Executor::new(
        providers,
        store.clone(),
        Arc::new(NoEvents),
        ExecOptions::default(),
    );
    let report = executor.apply(&p, &Snapshot::default()).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    (planned, started.elapsed(), store)
}

fn noop() -> Providers {
    Providers::new().with("noop", Arc::new(Noop))
}

/// A ~35-resource environment: networking across 3 AZs, IAM, cluster, node groups, add-ons.
fn environment() -> (Vec<Resource>, BTreeMap<&'static str, u64>) {
    let latency = BTreeMap::from([
        ("vpc", 50),
        ("subnet", 40),
        ("igw", 40),
        ("igw_attachment", 30),
        ("eip", 30),
        ("nat", 400),
        ("route_table", 30),
        ("route", 20),
        ("rta", 20),
        ("role", 60),
        ("policy_attachment", 30),
        ("cluster", 800),
        ("oidc", 50),
        ("nodegroup", 600),
        ("helm", 200),
    ]);
    let mut r = vec![
        Resource::new("vpc", "vpc", json!({})),
        Resource::new("igw", "igw", json!({})),
        Resource::new(
            "igw_attachment",
            "igw-attach",
            json!({"vpc": reference("vpc", "id"), "igw": reference("igw", "id")}),
        ),
        Resource::new(
            "route_table",
            "public-rt",
            json!({"vpc": reference("vpc", "id")}),
        ),
        Resource::new(
            "route",
            "public-default",
            json!({"rt": reference("public-rt", "id"), "igw": reference("igw-attach", "id")}),
        ),
        Resource::new("role", "cluster-role", json!({})),
        Resource::new(
            "policy_attachment",
            "cluster-policy",
            json!({"role": reference("cluster-role", "id")}),
        ),
        Resource::new("role", "node-role", json!({})),
        Resource::new(
            "policy_attachment",
            "node-policy",
            json!({"role": reference("node-role", "id")}),
        ),
    ];
    for az in ["a", "b", "c"] {
        r.push(Resource::new(
            "subnet",
            format!("public-{az}"),
            json!({"vpc": reference("vpc", "id")}),
        ));
        r.push(Resource::new(
            "subnet",
            format!("private-{az}"),
            json!({"vpc": reference("vpc", "id")}),
        ));
        r.push(Resource::new("rta", format!("public-{az}-rta"), json!({"s": reference(&format!("public-{az}"), "id"), "rt": reference("public-rt", "id")})));
        r.push(Resource::new(
            "route_table",
            format!("private-{az}-rt"),
            json!({"vpc": reference("vpc", "id")}),
        ));
        r.push(Resource::new("rta", format!("private-{az}-rta"), json!({"s": reference(&format!("private-{az}"), "id"), "rt": reference(&format!("private-{az}-rt"), "id")})));
    }
    r.push(Resource::new("eip", "nat-eip", json!({})));
    r.push(
        Resource::new(
            "nat",
            "nat",
            json!({"subnet": reference("public-a", "id"), "eip": reference("nat-eip", "id")}),
        )
        .depends_on("igw-attach"),
    );
    for az in ["a", "b", "c"] {
        r.push(Resource::new("route", format!("private-{az}-default"), json!({"rt": reference(&format!("private-{az}-rt"), "id"), "nat": reference("nat", "id")})));
    }
    r.push(Resource::new(
        "cluster",
        "cluster",
        json!({"role": reference("cluster-policy", "id"), "subnets": [reference("private-a", "id"), reference("private-b", "id"), reference("private-c", "id")]}),
    ));
    r.push(Resource::new(
        "oidc",
        "oidc",
        json!({"cluster": reference("cluster", "id")}),
    ));
    let ng = Resource::new(
        "nodegroup",
        "system",
        json!({"cluster": reference("cluster", "id"), "role": reference("node-policy", "id")}),
    )
    .depends_on("private-a-default")
    .depends_on("private-b-default")
    .depends_on("private-c-default");
    r.push(ng);
    for chart in ["karpenter", "argocd", "cert-manager", "external-secrets"] {
        r.push(
            Resource::new(
                "helm",
                chart,
                json!({"cluster": reference("cluster", "id"), "oidc": reference("oidc", "id")}),
            )
            .depends_on("system"),
        );
    }
    (r, latency)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "byoc-engine benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Warm up allocator and runtime once.
    rt.block_on(plan_and_apply(layered(1_000), noop()));
    let (planned, total, _) = (0..3)
        .map(|_| rt.block_on(plan_and_apply(layered(10_000), noop())))
        .min_by_key(|(_, total, _)| *total)
        .unwrap();
    println!(
        "10,000-resource layered DAG (fan-out 10), no-op provider, in-memory store (best of 3):\n  plan {:.1} ms, plan + apply {:.1} ms = {:.1} us/resource (goal: < 1000 ms total, {:.2}x of budget)",
        planned.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / 10_000.0,
        total.as_secs_f64()
    );

    println!("state write cost per step (goal: flat as the stack grows):");
    for n in [100, 1_000, 10_000] {
        // Best of five: the figure is the engine's cost, not the scheduler's noise.
        let runs: Vec<_> = (0..5)
            .map(|_| rt.block_on(plan_and_apply(layered(n), noop())))
            .collect();
        let (_, _, store) = &runs[0];
        let (writes, bytes) = store.write_cost();
        let apply = runs
            .iter()
            .map(|(planned, total, _)| *total - *planned)
            .min()
            .unwrap();
        println!(
            "  {n:>6} resources: {:.1} writes/step, {:.0} bytes/step, {:.2} us/step (apply)",
            writes as f64 / n as f64,
            bytes as f64 / n as f64,
            apply.as_secs_f64() * 1e6 / n as f64
        );
    }

    let (resources, latency) = environment();
    let cloud = FakeCloud::new();
    for (kind, ms) in &latency {
        cloud.set_latency(kind, Duration::from_millis(*ms));
    }
    let kinds: Vec<&str> = latency.keys().copied().collect();
    let providers = providers(&cloud, &kinds);
    let graph = Graph::new(resources.clone()).unwrap();
    let bound = graph.critical_path(|r| Duration::from_millis(latency[r.kind.as_str()]));
    let (planned, total, _) = rt.block_on(plan_and_apply(resources.clone(), providers));
    let wall = total - planned;
    println!(
        "critical path, {}-resource environment DAG with per-type latencies:\n  wall {:.0} ms, critical path {:.0} ms, ratio {:.3} (goal: <= 1.05)",
        resources.len(),
        wall.as_secs_f64() * 1e3,
        bound.as_secs_f64() * 1e3,
        wall.as_secs_f64() / bound.as_secs_f64()
    );
}
