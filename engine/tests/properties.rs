//! Property tests on random DAGs: order, reverse order on destroy, determinism.

use std::time::Duration;

use byoc_engine::testing::{FakeCloud, providers};
use byoc_engine::{
    ExecOptions, Executor, Graph, MemoryStore, NoEvents, Resource, RunStatus, StateStore, plan,
    plan_destroy, reference,
};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

const KINDS: &[&str] = &["a", "b", "c"];

/// A random DAG: resource i may reference any j < i (by output) or depend on it explicitly.
fn dag() -> impl Strategy<Value = Vec<Resource>> {
    (1usize..30)
        .prop_flat_map(|n| {
            let edges = proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4), 0..n * 2);
            (Just(n), edges, proptest::collection::vec(0usize..3, n))
        })
        .prop_map(|(n, edges, kinds)| {
            let mut resources: Vec<Resource> = (0..n)
                .map(|i| Resource::new(KINDS[kinds[i]], format!("r{i:02}"), json!({"n": i})))
                .collect();
            for (k, (pick, how)) in edges.iter().enumerate() {
                let i = 1 + k % n.max(2).saturating_sub(1);
                if i >= n {
                    continue;
                }
                let j = pick.index(i);
                let target = format!("r{j:02}");
                match how {
                    0 => resources[i].depends_on.push(target),
                    _ => resources[i].inputs[format!("ref{k}")] = reference(&target, "id"),
                }
            }
            resources
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn plans_are_deterministic(resources in dag(), seed in any::<u64>()) {
        let cloud = FakeCloud::new();
        let providers = providers(&cloud, KINDS);
        let a = plan("s", "r1", &Graph::new(resources.clone()).unwrap(), &Default::default(), &providers, None).unwrap();
        let mut shuffled = resources;
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
        let b = plan("s", "r1", &Graph::new(shuffled).unwrap(), &Default::default(), &providers, None).unwrap();
        prop_assert_eq!(a.to_json(), b.to_json());
    }

    #[test]
    fn no_step_starts_before_its_dependencies_finish_and_destroy_reverses(resources in dag()) {
        runtime().block_on(async {
            let cloud = FakeCloud::new();
            for (i, kind) in KINDS.iter().enumerate() {
                cloud.set_latency(kind, Duration::from_millis(i as u64));
            }
            let providers = providers(&cloud, KINDS);
            let store = Arc::new(MemoryStore::new());
            let graph = Graph::new(resources.clone()).unwrap();
            let executor = Executor::new(providers.clone(), store.clone(), Arc::new(NoEvents), ExecOptions::default());

            let p = plan("s", "r1", &graph, &Default::default(), &providers, None).unwrap();
            let report = executor.apply(&p, &Default::default()).await.unwrap();
            assert_eq!(report.status, RunStatus::Succeeded);
            let calls = cloud.calls();
            let call = |op: &str, name: &str| calls.iter().find(|c| c.op == op && c.resource == name).unwrap().clone();
            for r in &resources {
                let me = call("create", &r.name);
                for dep in graph.dependencies(&r.name) {
                    assert!(call("create", dep).finished <= me.started, "{} before {dep}", r.name);
                }
            }

            let snapshot = store.load().await.unwrap();
            assert_eq!(snapshot.resources.len(), resources.len());
            let p = plan_destroy("s", "r2", &snapshot).unwrap();
            let report = executor.apply(&p, &snapshot).await.unwrap();
            assert_eq!(report.status, RunStatus::Succeeded);
            let calls = cloud.calls();
            let call = |op: &str, name: &str| calls.iter().find(|c| c.op == op && c.resource == name).unwrap().clone();
            for r in &resources {
                let me = call("delete", &r.name);
                for dep in graph.dependencies(&r.name) {
                    assert!(me.finished <= call("delete", dep).started, "{dep} deleted before {}", r.name);
                }
            }
            assert!(cloud.objects().is_empty());
        });
    }
}
