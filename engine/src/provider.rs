//! The provider trait: how the engine creates, reads, updates and deletes one resource type.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Everything a provider call knows about where it runs.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub stack: String,
    /// Logical name of the resource.
    pub resource: String,
    /// Idempotency token of this operation: the same on every retry and on resume after a
    /// crash. Creates carry it as a tag (and as ClientToken where the API has one).
    pub token: String,
    pub attempt: u32,
    pub cancel: CancellationToken,
}

/// How a change of inputs can be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diff {
    NoChange,
    /// In place; the fields that changed.
    Update(Vec<String>),
    /// Only by a new object; the fields that force it.
    Replace(Vec<String>),
}

/// What the engine does with a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, eventual consistency: retry with backoff.
    Transient,
    /// Stop the run.
    Permanent,
    /// The object does not exist (a delete of it has nothing to do).
    NotFound,
}

/// A failed provider call. Providers wrap their own errors; [`Provider::classify`] tells the
/// engine what to do about one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub message: String,
    /// A machine-readable code (e.g. the AWS error code), for classification.
    pub code: Option<String>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProviderError {
    pub fn new(message: impl Into<String>) -> ProviderError {
        ProviderError {
            message: message.into(),
            code: None,
            source: None,
        }
    }

    pub fn with_code(code: impl Into<String>, message: impl Into<String>) -> ProviderError {
        ProviderError {
            code: Some(code.into()),
            ..ProviderError::new(message)
        }
    }
}

/// A created (or found) object.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub physical_id: String,
    pub outputs: Value,
}

/// What a read sees of an existing object.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The inputs as they are now in the cloud (same shape as the recorded inputs).
    pub inputs: Value,
    pub outputs: Value,
}

/// One resource type. Every operation must be idempotent: the engine may repeat any call
/// after a crash or a transient error.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Checks desired inputs at plan time, before anything is applied; the error says what
    /// is wrong (the planner names the resource). Pure: the planner calls it for every desired
    /// resource, with references to outputs not known yet as `{"$unknown": ...}` markers. The
    /// default accepts anything.
    fn check(&self, _inputs: &Value) -> Result<(), String> {
        Ok(())
    }

    /// How `old` inputs (as applied) become `new` ones. Pure: the planner calls it. The
    /// default updates every changed top-level field in place.
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        let fields = changed_fields(old, new);
        if fields.is_empty() {
            Diff::NoChange
        } else {
            Diff::Update(fields)
        }
    }

    /// Refuses at plan time a change of inputs the type can never apply (EKS cannot downgrade
    /// a cluster), so a preview says so before anything is touched. Pure; `old` are the inputs
    /// as they are (applied or observed), `new` may hold unknown markers. The default accepts.
    fn check_change(&self, _old: &Value, _new: &Value) -> Result<(), String> {
        Ok(())
    }

    /// Whether an object with inputs `new` can exist beside the one with inputs `old`: not when
    /// both would have the same unique name. A replacement is made new-first only when they
    /// can. Pure. The default: they can.
    fn coexists(&self, _old: &Value, _new: &Value) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError>;

    /// The object as it is now; a `NotFound`-class error if it is gone.
    async fn read(
        &self,
        ctx: &Ctx,
        physical_id: &str,
        inputs: &Value,
    ) -> Result<Observed, ProviderError>;

    /// Applies `new` over `old` in place and returns the new outputs.
    async fn update(
        &self,
        ctx: &Ctx,
        physical_id: &str,
        old: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError>;

    /// Deletes the object; an object already gone is success (or a `NotFound`-class error).
    async fn delete(
        &self,
        ctx: &Ctx,
        physical_id: &str,
        inputs: &Value,
    ) -> Result<(), ProviderError>;

    /// After a crash during a create: the object that create made, if it got that far (by
    /// tags carrying `ctx.token`, or by deterministic name). It is adopted, never duplicated.
    async fn find_existing(
        &self,
        ctx: &Ctx,
        inputs: &Value,
    ) -> Result<Option<Created>, ProviderError>;

    fn classify(&self, error: &ProviderError) -> ErrorClass;
}

/// Top-level fields whose values differ between two JSON objects, sorted.
pub fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect()
        }
        _ if old == new => Vec::new(),
        _ => vec![String::new()],
    }
}

/// The providers of a run, by resource type.
#[derive(Clone, Default)]
pub struct Providers {
    by_kind: BTreeMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn new() -> Providers {
        Providers::default()
    }

    pub fn with(mut self, kind: impl Into<String>, provider: Arc<dyn Provider>) -> Providers {
        self.by_kind.insert(kind.into(), provider);
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Provider>> {
        self.by_kind.get(kind)
    }

    /// Every provider replaced by what `wrap` makes of it (instrumentation, fault injection).
    pub fn map(self, wrap: impl Fn(&str, Arc<dyn Provider>) -> Arc<dyn Provider>) -> Providers {
        Providers {
            by_kind: self
                .by_kind
                .into_iter()
                .map(|(kind, p)| {
                    let wrapped = wrap(&kind, p);
                    (kind, wrapped)
                })
                .collect(),
        }
    }
}
