//! What the worker tests on the in-memory cloud share: a blueprint whose desired state is the
//! config's `resources` list, and a worker of it with short leases and quick retries.

use std::sync::Arc;
use std::time::Duration;

use byoc_engine::testing::{FakeCloud, providers};
use byoc_engine::{CancellationToken, Providers, Resource, RetryPolicy};
use byoc_stacks::{Database, Sealer};
use byoc_workers::{Blueprint, RunTarget, Worker, WorkerConfig};
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
        Arc::new(ListBlueprint(cloud.clone())),
        wc,
        CancellationToken::new(),
    ))
}
