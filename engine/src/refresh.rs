//! Refresh: read every recorded resource and compare it with the state (drift).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::exec::RetryPolicy;
use crate::plan::{FieldDiff, Observations};
use crate::provider::{Ctx, Diff, ErrorClass, Observed, Providers, changed_fields};
use crate::state::{Snapshot, base_name};

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("no provider for resource type {kind:?} (resource {resource})")]
    NoProvider { kind: String, resource: String },
    #[error("reading {resource}: {message}")]
    Read { resource: String, message: String },
    #[error("refresh cancelled")]
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum DriftKind {
    /// Fields whose value in the cloud differs from the recorded one.
    Changed { fields: Vec<FieldDiff> },
    /// The object no longer exists.
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub resource: String,
    pub kind: String,
    #[serde(flatten)]
    pub drift: DriftKind,
}

/// Reads every recorded resource, at most `parallelism` at once (`None`: all at once),
/// retrying transient errors.
pub async fn refresh(
    stack: &str,
    state: &Snapshot,
    providers: &Providers,
    parallelism: Option<usize>,
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Observations, RefreshError> {
    let permits = Arc::new(Semaphore::new(
        parallelism.unwrap_or(Semaphore::MAX_PERMITS).max(1),
    ));
    let mut reads = JoinSet::new();
    for s in state.resources.values() {
        let provider = providers
            .get(&s.kind)
            .cloned()
            .ok_or_else(|| RefreshError::NoProvider {
                kind: s.kind.clone(),
                resource: s.name.clone(),
            })?;
        let (s, permits, retry) = (s.clone(), permits.clone(), retry.clone());
        let ctx = Ctx {
            stack: stack.to_string(),
            resource: base_name(&s.name).to_string(),
            token: String::new(),
            attempt: 0,
            cancel: cancel.clone(),
        };
        reads.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let started = Instant::now();
            let mut ctx = ctx;
            loop {
                ctx.attempt += 1;
                let error = match provider.read(&ctx, &s.physical_id, &s.inputs).await {
                    Ok(observed) => return Ok((s.name, Some(observed))),
                    Err(e) => e,
                };
                let class = provider.classify(&error);
                if class == ErrorClass::NotFound {
                    return Ok((s.name, None));
                }
                let delay = (class == ErrorClass::Transient)
                    .then(|| retry.delay(ctx.attempt, started))
                    .flatten();
                let Some(delay) = delay else {
                    return Err(RefreshError::Read {
                        resource: s.name,
                        message: error.to_string(),
                    });
                };
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.cancel.cancelled() => return Err(RefreshError::Cancelled),
                }
            }
        });
    }
    let mut observations = Observations::new();
    while let Some(joined) = reads.join_next().await {
        let (name, observed): (String, Option<Observed>) = joined.expect("reads do not panic")?;
        observations.insert(name, observed);
    }
    Ok(observations)
}

/// What differs between the recorded state and what a refresh saw, by resource name.
pub fn drift(state: &Snapshot, observed: &Observations, providers: &Providers) -> Vec<Drift> {
    let mut out = Vec::new();
    for (name, seen) in observed {
        let Some(recorded) = state.resources.get(name) else {
            continue;
        };
        let drift = match seen {
            None => DriftKind::Deleted,
            Some(obs) => {
                let differs = providers
                    .get(&recorded.kind)
                    .is_none_or(|p| p.diff(&recorded.inputs, &obs.inputs) != Diff::NoChange);
                if !differs {
                    continue;
                }
                let fields = changed_fields(&recorded.inputs, &obs.inputs)
                    .into_iter()
                    .map(|f| FieldDiff {
                        old: recorded.inputs.get(&f).cloned(),
                        new: obs.inputs.get(&f).cloned(),
                        field: f,
                        forces_replacement: false,
                    })
                    .collect();
                DriftKind::Changed { fields }
            }
        };
        out.push(Drift {
            resource: name.clone(),
            kind: recorded.kind.clone(),
            drift,
        });
    }
    out
}
