//! Recorded state and the journal, behind the [`StateStore`] trait.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Lifecycle;

/// What byoc knows of one applied resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    pub kind: String,
    /// The state key: the logical name, or `{name}~deposed` for the old object of a
    /// create-before-destroy replacement that is still to be deleted.
    pub name: String,
    pub physical_id: String,
    /// Inputs as applied (references resolved).
    pub inputs: Value,
    pub outputs: Value,
    /// What it depended on when applied: once it leaves the config, this still orders its
    /// deletion before its dependencies'.
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

/// The state key of the old object of a create-before-destroy replacement of `name`.
pub fn deposed_key(name: &str) -> String {
    format!("{name}~deposed")
}

/// The step key for cleaning up what an interrupted create of `name` may have left.
pub fn orphan_key(name: &str) -> String {
    format!("{name}~orphan")
}

/// The logical name behind a state or step key.
pub fn base_name(key: &str) -> &str {
    key.split_once('~').map_or(key, |(name, _)| name)
}

/// A provider operation, as journaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// The name journaled and serialized (`create`, `update`, `delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// Recorded before a provider call: if the process dies during the call, the next run knows
/// the call may have happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub run_id: String,
    /// State key of the resource acted on.
    pub resource: String,
    pub kind: String,
    pub operation: Operation,
    pub attempt: u32,
    /// Idempotency token, also passed to the provider (tags, ClientToken).
    pub token: String,
    /// The resolved inputs of a create: what finds its object again after a crash.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub inputs: Value,
}

/// Recorded after a provider call, together with the resource's new state, atomically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Created (or adopted after a crash). With `depose`, the object recorded under the same
    /// name so far (if it is another object) is kept as `{name}~deposed` for a later delete
    /// (create-before-destroy).
    Created {
        state: ResourceState,
        depose: bool,
    },
    Updated {
        state: ResourceState,
    },
    /// Deleted (or found already gone): the state entry is removed.
    Deleted,
    /// The call failed for good; the state entry is unchanged.
    Failed {
        error: String,
    },
}

/// Recorded state of a stack, as loaded at the start of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub resources: BTreeMap<String, ResourceState>,
    /// Intents with no outcome: calls that may or may not have happened.
    pub pending: Vec<Intent>,
}

impl Snapshot {
    /// The unfinished create intent for state key `resource`, if any (the latest).
    pub fn pending_create(&self, resource: &str) -> Option<&Intent> {
        self.pending
            .iter()
            .rev()
            .find(|i| i.resource == resource && i.operation == Operation::Create)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another worker took the stack over: this one must stop writing at once.
    #[error("stack lease lost: {0}")]
    Fenced(String),
    #[error("state store: {0}")]
    Other(String),
}

/// Durable per-stack state and journal. Writes are per resource (O(1) in the size of the
/// stack), never a rewrite of the whole snapshot. One instance serves one stack.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn load(&self) -> Result<Snapshot, StoreError>;
    async fn record_intent(&self, intent: &Intent) -> Result<(), StoreError>;
    /// Records the outcome of `intent` and applies it to the resource's state entry, as one
    /// atomic write; the intent is then no longer pending.
    async fn record_outcome(&self, intent: &Intent, outcome: &Outcome) -> Result<(), StoreError>;
}

/// A [`StateStore`] in memory, for tests and benchmarks. Counts what a durable store would
/// write, so benchmarks can show the cost per step stays flat.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    snapshot: Snapshot,
    journal: Vec<(Intent, Option<Outcome>)>,
    bytes_written: u64,
    writes: u64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().unwrap().snapshot.clone()
    }

    /// Every intent with its outcome, in the order recorded.
    pub fn journal(&self) -> Vec<(Intent, Option<Outcome>)> {
        self.inner.lock().unwrap().journal.clone()
    }

    /// (writes, bytes) recorded so far: what a durable store would have written.
    pub fn write_cost(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap();
        (inner.writes, inner.bytes_written)
    }
}

fn encoded_len<T: Serialize>(value: &T) -> u64 {
    serde_json::to_vec(value).map_or(0, |v| v.len() as u64)
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.snapshot())
    }

    async fn record_intent(&self, intent: &Intent) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner.writes += 1;
        inner.bytes_written += encoded_len(intent);
        inner.snapshot.pending.push(intent.clone());
        inner.journal.push((intent.clone(), None));
        Ok(())
    }

    async fn record_outcome(&self, intent: &Intent, outcome: &Outcome) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner.writes += 1;
        inner.bytes_written += encoded_len(intent) + encoded_len(outcome);
        let resources = &mut inner.snapshot.resources;
        match outcome {
            Outcome::Created { state, depose } => {
                // Adopting the same object again (a replayed step) deposes nothing.
                let previous = resources.remove(&state.name);
                if let Some(mut old) =
                    previous.filter(|o| *depose && o.physical_id != state.physical_id)
                {
                    old.name = deposed_key(&state.name);
                    resources.insert(old.name.clone(), old);
                }
                resources.insert(state.name.clone(), state.clone());
            }
            Outcome::Updated { state } => {
                resources.insert(state.name.clone(), state.clone());
            }
            Outcome::Deleted => {
                resources.remove(&intent.resource);
            }
            Outcome::Failed { .. } => {}
        }
        inner.snapshot.pending.retain(|p| p != intent);
        if let Some(entry) = inner
            .journal
            .iter_mut()
            .rev()
            .find(|(i, o)| i == intent && o.is_none())
        {
            entry.1 = Some(outcome.clone());
        }
        Ok(())
    }
}
