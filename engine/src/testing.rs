//! An in-memory cloud that implements [`Provider`] for any resource type, for the engine's
//! own tests and benchmarks: it records every call and can inject failures, delays and
//! crashes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::provider::{
    Created, Ctx, Diff, ErrorClass, Observed, Provider, ProviderError, changed_fields,
};

/// An object in the fake cloud.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub kind: String,
    pub stack: String,
    pub resource: String,
    pub token: String,
    pub inputs: Value,
}

/// One provider call, as the cloud saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub op: &'static str,
    pub resource: String,
    pub started: Instant,
    pub finished: Instant,
}

/// A fault injected into matching calls.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Fail the next `times` matching calls with an error of class `class`, before acting.
    Fail {
        op: &'static str,
        resource: String,
        class: ErrorClass,
        times: u32,
    },
    /// Act, then fail with a transient error (a timeout after the request landed).
    FailAfter {
        op: &'static str,
        resource: String,
        class: ErrorClass,
    },
    /// Act, then never answer: the test aborts the run there, as a process crash would.
    Crash { op: &'static str, resource: String },
    /// Never act nor answer: a crash just before the call reached the cloud.
    CrashBefore { op: &'static str, resource: String },
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Object>,
    next_id: u64,
    calls: Vec<Call>,
    faults: Vec<Fault>,
}

/// See the module documentation. Fields named `force_*` force replacement when they change;
/// a field `name` is unique per type (a second object with the same name is refused); a
/// field `version` (an integer) never goes down.
#[derive(Default)]
pub struct FakeCloud {
    inner: Mutex<Inner>,
    latency: Mutex<BTreeMap<String, Duration>>,
    /// Notified when a `Crash` fault fires.
    pub crashed: Notify,
}

impl FakeCloud {
    pub fn new() -> Arc<FakeCloud> {
        Arc::new(FakeCloud::default())
    }

    /// Every create, update and delete of `kind` sleeps `latency`.
    pub fn set_latency(&self, kind: &str, latency: Duration) {
        self.latency
            .lock()
            .unwrap()
            .insert(kind.to_string(), latency);
    }

    pub fn inject(&self, fault: Fault) {
        self.inner.lock().unwrap().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.lock().unwrap().faults.clear();
    }

    pub fn objects(&self) -> BTreeMap<String, Object> {
        self.inner.lock().unwrap().objects.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Changes an object behind the engine's back (drift).
    pub fn tamper(&self, physical_id: &str, field: &str, value: Value) {
        let mut inner = self.inner.lock().unwrap();
        let obj = inner.objects.get_mut(physical_id).expect("object exists");
        obj.inputs[field] = value;
    }

    /// Deletes an object behind the engine's back.
    pub fn remove(&self, physical_id: &str) {
        self.inner.lock().unwrap().objects.remove(physical_id);
    }

    /// The fault for this call, consuming one use of a `Fail` fault.
    fn fault(&self, op: &'static str, resource: &str) -> Option<Fault> {
        let mut inner = self.inner.lock().unwrap();
        let i = inner.faults.iter().position(|f| match f {
            Fault::Fail {
                op: o,
                resource: r,
                times,
                ..
            } => *o == op && r == resource && *times > 0,
            Fault::FailAfter {
                op: o, resource: r, ..
            }
            | Fault::Crash { op: o, resource: r }
            | Fault::CrashBefore { op: o, resource: r } => *o == op && r == resource,
        })?;
        let fault = inner.faults[i].clone();
        match &mut inner.faults[i] {
            Fault::Fail { times, .. } => *times -= 1,
            _ => {
                inner.faults.remove(i);
            }
        }
        Some(fault)
    }

    /// Runs `act` as call `op` of `ctx.resource`, with latency and faults applied.
    async fn call<T>(
        &self,
        op: &'static str,
        kind: &str,
        ctx: &Ctx,
        act: impl FnOnce(&mut Inner) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let latency = self.latency.lock().unwrap().get(kind).copied();
        if let Some(latency) = latency.filter(|_| op != "read" && op != "find") {
            tokio::time::sleep(latency).await;
        }
        let fault = self.fault(op, &ctx.resource);
        if let Some(Fault::Fail { class, .. }) = &fault {
            let code = code(*class);
            return Err(ProviderError::with_code(
                code,
                format!("injected {code} on {op} {}", ctx.resource),
            ));
        }
        if let Some(Fault::CrashBefore { .. }) = &fault {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
        let result = {
            let mut inner = self.inner.lock().unwrap();
            let result = act(&mut inner);
            inner.calls.push(Call {
                op,
                resource: ctx.resource.clone(),
                started,
                finished: Instant::now(),
            });
            result
        };
        match fault {
            Some(Fault::FailAfter { class, .. }) => Err(ProviderError::with_code(
                code(class),
                format!("injected {} after {op} {}", code(class), ctx.resource),
            )),
            Some(Fault::Crash { .. }) => {
                self.crashed.notify_one();
                std::future::pending().await
            }
            _ => result,
        }
    }
}

/// The error code this provider classifies as `class`.
fn code(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Transient => "Throttling",
        ErrorClass::NotFound => "NotFound",
        ErrorClass::Permanent => "AccessDenied",
    }
}

fn outputs(id: &str, inputs: &Value) -> Value {
    let mut out = inputs.clone();
    if !out.is_object() {
        out = json!({});
    }
    out["id"] = json!(id);
    out
}

fn not_found(id: &str) -> ProviderError {
    ProviderError::with_code("NotFound", format!("{id} does not exist"))
}

/// The fake cloud as the provider of one resource type.
pub struct FakeProvider {
    pub cloud: Arc<FakeCloud>,
    pub kind: String,
}

#[async_trait]
impl Provider for FakeProvider {
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        let fields = changed_fields(old, new);
        if fields.is_empty() {
            Diff::NoChange
        } else if fields.iter().any(|f| f.starts_with("force_")) {
            Diff::Replace(
                fields
                    .into_iter()
                    .filter(|f| f.starts_with("force_"))
                    .collect(),
            )
        } else {
            Diff::Update(fields)
        }
    }

    fn check_change(&self, old: &Value, new: &Value) -> Result<(), String> {
        match (old["version"].as_i64(), new["version"].as_i64()) {
            (Some(o), Some(n)) if n < o => Err(format!("version {o} cannot go down to {n}")),
            _ => Ok(()),
        }
    }

    fn coexists(&self, old: &Value, new: &Value) -> bool {
        old.get("name").is_none() || old.get("name") != new.get("name")
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        self.cloud
            .call("create", &self.kind, ctx, |inner| {
                let name = inputs.get("name");
                let taken = inner
                    .objects
                    .values()
                    .any(|o| name.is_some() && o.kind == self.kind && o.inputs.get("name") == name);
                if taken {
                    return Err(ProviderError::with_code(
                        "AlreadyExists",
                        format!(
                            "a {} named {} exists",
                            self.kind,
                            name.unwrap_or(&Value::Null)
                        ),
                    ));
                }
                inner.next_id += 1;
                let id = format!("{}-{}", self.kind, inner.next_id);
                let obj = Object {
                    kind: self.kind.clone(),
                    stack: ctx.stack.clone(),
                    resource: ctx.resource.clone(),
                    token: ctx.token.clone(),
                    inputs: inputs.clone(),
                };
                inner.objects.insert(id.clone(), obj);
                Ok(Created {
                    outputs: outputs(&id, inputs),
                    physical_id: id,
                })
            })
            .await
    }

    async fn read(
        &self,
        ctx: &Ctx,
        physical_id: &str,
        _: &Value,
    ) -> Result<Observed, ProviderError> {
        self.cloud
            .call("read", &self.kind, ctx, |inner| {
                let obj = inner
                    .objects
                    .get(physical_id)
                    .ok_or_else(|| not_found(physical_id))?;
                Ok(Observed {
                    inputs: obj.inputs.clone(),
                    outputs: outputs(physical_id, &obj.inputs),
                })
            })
            .await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        physical_id: &str,
        _: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        self.cloud
            .call("update", &self.kind, ctx, |inner| {
                let obj = inner
                    .objects
                    .get_mut(physical_id)
                    .ok_or_else(|| not_found(physical_id))?;
                obj.inputs = new.clone();
                Ok(outputs(physical_id, new))
            })
            .await
    }

    async fn delete(&self, ctx: &Ctx, physical_id: &str, _: &Value) -> Result<(), ProviderError> {
        self.cloud
            .call("delete", &self.kind, ctx, |inner| {
                inner
                    .objects
                    .remove(physical_id)
                    .map(drop)
                    .ok_or_else(|| not_found(physical_id))
            })
            .await
    }

    async fn find_existing(&self, ctx: &Ctx, _: &Value) -> Result<Option<Created>, ProviderError> {
        self.cloud
            .call("find", &self.kind, ctx, |inner| {
                // Tags name the stack, the resource and the create's token: the old object of
                // a replacement (another token) is never mistaken for the new one.
                Ok(inner
                    .objects
                    .iter()
                    .find(|(_, o)| {
                        o.stack == ctx.stack && o.resource == ctx.resource && o.token == ctx.token
                    })
                    .map(|(id, o)| Created {
                        physical_id: id.clone(),
                        outputs: outputs(id, &o.inputs),
                    }))
            })
            .await
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        match error.code.as_deref() {
            Some("Throttling") => ErrorClass::Transient,
            Some("NotFound") => ErrorClass::NotFound,
            _ => ErrorClass::Permanent,
        }
    }
}

/// Providers for `kinds`, all backed by `cloud`.
pub fn providers(cloud: &Arc<FakeCloud>, kinds: &[&str]) -> crate::Providers {
    kinds.iter().fold(crate::Providers::new(), |p, kind| {
        p.with(
            *kind,
            Arc::new(FakeProvider {
                cloud: cloud.clone(),
                kind: kind.to_string(),
            }),
        )
    })
}
