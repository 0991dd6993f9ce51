#![allow(dead_code)] // each test binary uses part of this module

use std::sync::Arc;
use std::time::Duration;

use byoc_engine::testing::{FakeCloud, providers};
use byoc_engine::{
    EventLog, ExecOptions, Executor, Graph, MemoryStore, Plan, Providers, Resource, RetryPolicy,
    RunReport, Snapshot, StateStore, base_name, plan, plan_destroy, reference, refresh,
};
use serde_json::json;

pub const STACK: &str = "acme-dev";
pub const KINDS: &[&str] = &[
    "vpc",
    "subnet",
    "igw",
    "eip",
    "nat",
    "route_table",
    "role",
    "cluster",
    "nodegroup",
];

/// A small environment shaped like the real one.
pub fn environment() -> Vec<Resource> {
    vec![
        Resource::new(
            "vpc",
            "vpc",
            json!({"cidr": "10.0.0.0/16", "tags": {"env": "dev"}}),
        ),
        Resource::new(
            "subnet",
            "public-a",
            json!({"vpc": reference("vpc", "id"), "force_cidr": "10.0.0.0/20"}),
        ),
        Resource::new(
            "subnet",
            "private-a",
            json!({"vpc": reference("vpc", "id"), "force_cidr": "10.0.16.0/20"}),
        ),
        Resource::new("igw", "igw", json!({"vpc": reference("vpc", "id")})),
        Resource::new("eip", "nat-eip", json!({})),
        Resource::new(
            "nat",
            "nat",
            json!({"subnet": reference("public-a", "id"), "eip": reference("nat-eip", "id")}),
        )
        .depends_on("igw"),
        Resource::new(
            "route_table",
            "private-rt",
            json!({"vpc": reference("vpc", "id"), "nat": reference("nat", "id")}),
        ),
        Resource::new("role", "cluster-role", json!({"name": "acme-dev-cluster"})),
        Resource::new(
            "cluster",
            "cluster",
            json!({"role": reference("cluster-role", "id"), "subnets": [reference("private-a", "id")], "version": "1.31"}),
        ),
        Resource::new(
            "nodegroup",
            "system",
            json!({"cluster": reference("cluster", "id"), "desired": 2}),
        )
        .depends_on("private-rt"),
    ]
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(10),
    }
}

pub struct World {
    pub cloud: Arc<FakeCloud>,
    pub store: Arc<MemoryStore>,
    pub providers: Providers,
    pub events: Arc<EventLog>,
}

impl World {
    pub fn new() -> World {
        let cloud = FakeCloud::new();
        World {
            providers: providers(&cloud, KINDS),
            cloud,
            store: Arc::new(MemoryStore::new()),
            events: Arc::new(EventLog::default()),
        }
    }

    pub fn executor(&self, options: ExecOptions) -> Executor {
        Executor::new(
            self.providers.clone(),
            self.store.clone(),
            self.events.clone(),
            options,
        )
    }

    pub async fn plan(&self, resources: &[Resource], run: &str) -> Plan {
        let snapshot = self.store.load().await.unwrap();
        plan(
            STACK,
            run,
            &Graph::new(resources.to_vec()).unwrap(),
            &snapshot,
            &self.providers,
            None,
        )
        .unwrap()
    }

    /// Refreshes, then plans against what the refresh saw (as a worker's deploy does).
    pub async fn refreshed_plan(&self, resources: &[Resource], run: &str) -> (Plan, Snapshot) {
        let snapshot = self.store.load().await.unwrap();
        let cancel = Default::default();
        let observed = refresh(
            STACK,
            &snapshot,
            &self.providers,
            None,
            &fast_retry(),
            &cancel,
        )
        .await
        .unwrap();
        let graph = Graph::new(resources.to_vec()).unwrap();
        let plan = plan(
            STACK,
            run,
            &graph,
            &snapshot,
            &self.providers,
            Some(&observed),
        )
        .unwrap();
        (plan, snapshot)
    }

    /// Plans against the recorded state and applies.
    pub async fn deploy(&self, resources: &[Resource], run: &str) -> RunReport {
        let snapshot = self.store.load().await.unwrap();
        let graph = Graph::new(resources.to_vec()).unwrap();
        let plan = plan(STACK, run, &graph, &snapshot, &self.providers, None).unwrap();
        self.apply(&plan, &snapshot).await
    }

    pub async fn destroy(&self, run: &str) -> RunReport {
        let snapshot = self.store.load().await.unwrap();
        let plan = plan_destroy(STACK, run, &snapshot).unwrap();
        self.apply(&plan, &snapshot).await
    }

    pub async fn apply(&self, plan: &Plan, snapshot: &Snapshot) -> RunReport {
        let options = ExecOptions {
            retry: fast_retry(),
            ..Default::default()
        };
        self.executor(options).apply(plan, snapshot).await.unwrap()
    }

    /// Nothing left, in the cloud or in the state.
    pub fn assert_empty(&self) {
        assert!(
            self.cloud.objects().is_empty(),
            "left in the cloud: {:?}",
            self.cloud.objects()
        );
        assert!(
            self.store.snapshot().resources.is_empty(),
            "left in the state"
        );
    }

    /// Recorded state and the cloud agree exactly: one object per recorded resource, with the
    /// recorded inputs, and nothing else.
    pub fn assert_state_matches_cloud(&self) {
        let snapshot = self.store.snapshot();
        let objects = self.cloud.objects();
        let recorded: Vec<(&str, &str)> = snapshot
            .resources
            .values()
            .map(|r| (r.physical_id.as_str(), base_name(&r.name)))
            .collect();
        let actual: Vec<(&str, &str)> = objects
            .iter()
            .map(|(id, o)| (id.as_str(), o.resource.as_str()))
            .collect();
        let mut recorded_sorted = recorded.clone();
        recorded_sorted.sort();
        assert_eq!(
            recorded_sorted, actual,
            "recorded state differs from the cloud"
        );
        for r in snapshot.resources.values() {
            assert_eq!(
                objects[&r.physical_id].inputs, r.inputs,
                "inputs of {}",
                r.name
            );
        }
    }
}
