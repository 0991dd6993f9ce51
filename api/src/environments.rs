//! A tenant's environments: config, runs (deploy, destroy, preview, refresh), status, state.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use byoc_model::api::{
    ConfigSaved, ConfigView, DeployRequest, DriftCheck, DriftScheduleView, EnvironmentStatus,
    GraphEdge, GraphNode, GraphView, HistoryView, RunAccepted, RunList, StateDiff,
    StateVersionView, StateView, UnlockRequest, Unlocked,
};
use byoc_model::{
    EnvName, EnvironmentConfig, OnboardingStatus, RunId, RunKind, StackName, Tenant, TenantSlug,
};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{CommonErrors, decode, decode_optional};
use crate::params::{DiffQuery, EnvPath, Page, StateVersionPath};
use crate::{ApiError, AppState};

/// The tenant and the name of the stack of `/tenants/{slug}/environments/{env}`, if the
/// caller may see them. The stack is found from the (tenant, environment) pair; NotFound
/// until the environment's config is first saved.
async fn environment(
    state: &AppState,
    caller: &Caller,
    slug: &TenantSlug,
    env: &EnvName,
) -> Result<(Tenant, StackName), ApiError> {
    let tenant = state.visible_tenant(caller, slug).await?;
    let stack = state.db().stack_of(&tenant, env).await?;
    Ok((tenant, stack))
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/config", operation_id = "set_config", tag = "environments", params(EnvPath), request_body(content = EnvironmentConfig, description = "The config; what is left out gets its default (the region: the server's `--default-region`). A component chart from a repository or registry outside the server's `--chart-sources` is refused (422 naming the field)"), responses((status = 200, description = "Saved: its version and the effective config", body = ConfigSaved, links(("GetConfig" = (operation_id = "get_config", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Status" = (operation_id = "environment_status", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("State" = (operation_id = "environment_state", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Runs" = (operation_id = "environment_runs", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("History" = (operation_id = "state_history", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Graph" = (operation_id = "environment_graph", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Deploy" = (operation_id = "deploy", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Preview" = (operation_id = "preview", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Refresh" = (operation_id = "refresh", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("Destroy" = (operation_id = "destroy", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))), ("DeleteConfig" = (operation_id = "delete_config", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))))), CommonErrors), security(("bearer" = [])))]
pub async fn set_config(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<ConfigSaved>, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    let Json(raw) = body?;
    let config = EnvironmentConfig::resolve(&raw, state.default_region())?;
    state.chart_sources().check(&config.components)?;
    let effective = serde_json::to_value(&config).expect("configs serialize");
    let version = state
        .db()
        .save_environment(&tenant.id, &slug, &env, &effective, &raw, &caller.actor())
        .await?;
    Ok(Json(ConfigSaved {
        env,
        version,
        config,
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/config", operation_id = "get_config", tag = "environments", params(EnvPath), responses((status = 200, description = "The effective config, the config as sent, and its version", body = ConfigView), CommonErrors), security(("bearer" = [])))]
pub async fn get_config(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<Json<ConfigView>, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    let stored = state.db().config(&tenant, &env).await?;
    let config = serde_json::from_value(stored.config)
        .map_err(|e| ApiError::Internal(format!("stored config of {env} of tenant {slug}: {e}")))?;
    Ok(Json(ConfigView {
        env: stored.env,
        config,
        raw: stored.raw,
        version: stored.version,
        updated_at: stored.updated_at,
    }))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/environments/{env}/config", operation_id = "delete_config", tag = "environments", params(EnvPath), responses((status = 204, description = "Deleted"), CommonErrors), security(("bearer" = [])))]
pub async fn delete_config(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<StatusCode, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    state
        .db()
        .delete_config(&tenant.id, &slug, &env, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a run and enqueues it: 202 with its id (or the id of the queued run of the same
/// request it joined); 429 past the caps of unfinished runs.
async fn request(
    state: &AppState,
    caller: &Caller,
    slug: &TenantSlug,
    env: &EnvName,
    kind: RunKind,
    plan_id: Option<RunId>,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    let tenant = state.visible_tenant(caller, slug).await?;
    // A run needs a config: the blueprint is built from it, a destroy's providers too.
    state.db().config(&tenant, env).await?;
    let stack = state.db().stack_of(&tenant, env).await?;
    if tenant.onboarding_status != OnboardingStatus::Trusted {
        let why = tenant
            .onboarding_message
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        return Err(ApiError::NotTrusted(format!(
            "tenant {slug} is {}{why}: byoc cannot act in account {} until the customer's trust stack is verified (`byoc tenant verify {slug}`, or POST /api/v1/tenants/{slug}/verify)",
            tenant.onboarding_status, tenant.aws_account_id
        )));
    }
    let queue = state.queue().await?;
    let accepted = match plan_id {
        Some(plan_id) => {
            queue
                .request_approved(state.db(), &stack, &plan_id, &caller.actor())
                .await?
        }
        None => {
            queue
                .request(state.db(), &stack, kind, &caller.actor())
                .await?
        }
    };
    Ok(accepted_run(accepted))
}

/// 202 with the run a request recorded, or joined (`coalesced`).
pub(crate) fn accepted_run(
    (run, coalesced): (byoc_model::Run, bool),
) -> (StatusCode, Json<RunAccepted>) {
    (
        StatusCode::ACCEPTED,
        Json(RunAccepted {
            run_id: run.id,
            status: run.status,
            kind: run.kind,
            coalesced,
        }),
    )
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/deploy", operation_id = "deploy", tag = "runs", params(EnvPath), request_body(content = Option<DeployRequest>, description = "Optional: the preview whose plan to apply exactly (needed when it replaces or deletes guarded resources)"), responses((status = 202, description = "A deploy run, queued, or the stack's latest run if that is a queued deploy of the same plan (none, or the same plan_id), with `coalesced`", body = RunAccepted, links(("ShowRun" = (operation_id = "show_run", parameters(("id" = "$response.body#/run_id")))), ("RunEvents" = (operation_id = "run_events", parameters(("id" = "$response.body#/run_id")))), ("CancelRun" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/run_id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    let body: DeployRequest = decode_optional(body)?;
    request(&state, &caller, &slug, &env, RunKind::Deploy, body.plan_id).await
}

#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/environments/{env}", operation_id = "destroy", tag = "runs", params(EnvPath), responses((status = 202, description = "A destroy run, queued, or the stack's latest run if that is a queued one of the same kind, with `coalesced`", body = RunAccepted, links(("ShowRun" = (operation_id = "show_run", parameters(("id" = "$response.body#/run_id")))), ("RunEvents" = (operation_id = "run_events", parameters(("id" = "$response.body#/run_id")))), ("CancelRun" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/run_id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Destroy, None).await
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/preview", operation_id = "preview", tag = "runs", params(EnvPath), responses((status = 202, description = "A preview run (plan only), queued, or the stack's latest run if that is a queued one of the same kind, with `coalesced`", body = RunAccepted, links(("ShowRun" = (operation_id = "show_run", parameters(("id" = "$response.body#/run_id")))), ("RunEvents" = (operation_id = "run_events", parameters(("id" = "$response.body#/run_id")))), ("CancelRun" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/run_id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Preview, None).await
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/refresh", operation_id = "refresh", tag = "runs", params(EnvPath), responses((status = 202, description = "A refresh run (drift check), queued, or the stack's latest run if that is a queued one of the same kind, with `coalesced`", body = RunAccepted, links(("ShowRun" = (operation_id = "show_run", parameters(("id" = "$response.body#/run_id")))), ("RunEvents" = (operation_id = "run_events", parameters(("id" = "$response.body#/run_id")))), ("CancelRun" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/run_id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Refresh, None).await
}

/// Outputs worth showing at a glance: ids and endpoints, by resource.
const SHOWN_OUTPUTS: &[&str] = &["id", "name", "arn", "endpoint", "oidc_issuer", "public_ip"];

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/status", operation_id = "environment_status", tag = "environments", params(EnvPath), responses((status = 200, description = "Stack status, last run, resource counts, outputs, drift", body = EnvironmentStatus), CommonErrors), security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<Json<EnvironmentStatus>, ApiError> {
    // One query: the tenant (if the caller may see it), its stack, and all the status shows.
    let read = state
        .db()
        .environment_status(&slug, &env, caller.0.tenant_id.as_deref())
        .await?;
    let mut status = read.status;
    if let Some(run) = &mut status.last_run {
        caller.present_requester(run, read.last_run_by_viewer);
    }
    let outputs = read
        .resources
        .into_iter()
        .filter_map(|r| {
            let shown: std::collections::BTreeMap<String, Value> = SHOWN_OUTPUTS
                .iter()
                .filter_map(|k| Some((k.to_string(), r.outputs.get(*k)?.clone())))
                .filter(|(_, v)| !v.is_null())
                .collect();
            (!shown.is_empty()).then_some((r.key, shown))
        })
        .collect();
    // The last refresh says whether the cloud still matches the state.
    let drift = read.last_refresh.map(|r| {
        let drift = r.summary.and_then(|s| s.get("drift").cloned());
        let drifted = drift.as_ref().and_then(Value::as_array).map_or(0, Vec::len);
        DriftCheck {
            drift,
            drifted: u32::try_from(drifted).unwrap_or(u32::MAX),
            scheduled: r.requested_by == byoc_model::SCHEDULER,
            run_id: r.id,
            checked_at: r.finished_at,
        }
    });
    // The environment's drift-check schedule under the workers' default period, and when
    // its next check falls due.
    let server = read
        .drift_check_every
        .and_then(|minutes| minutes.parse::<u32>().ok());
    let drift_schedule =
        byoc_model::DriftSchedule::of(&read.config, server).map(|schedule| DriftScheduleView {
            every_minutes: schedule.every_minutes,
            repair: schedule.repair,
            source: schedule.source,
            next_due_at: schedule.next_due(
                status.stack.as_str(),
                read.last_schedule_slot,
                byoc_stacks::now_ms(),
            ),
        });
    Ok(Json(EnvironmentStatus {
        status,
        outputs,
        drift,
        drift_schedule,
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/state", operation_id = "environment_state", tag = "environments", params(EnvPath), responses((status = 200, description = "Every recorded resource", body = StateView), CommonErrors), security(("bearer" = [])))]
pub async fn state_of(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
) -> Result<Json<StateView>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    let resources = state.db().resources(&stack).await?;
    Ok(Json(StateView { stack, resources }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/runs", operation_id = "environment_runs", tag = "runs", params(EnvPath, Page), responses((status = 200, description = "The stack's runs, newest first, a page at a time (`before`: a run's seq)", body = RunList, links(("ShowRun" = (operation_id = "show_run", parameters(("id" = "$response.body#/runs/0/id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(page) = page?;
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    let limit = page.limit()?;
    let runs = state.db().runs_page(&stack, page.before, limit).await?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.seq))
        .flatten();
    Ok(Json(RunList {
        runs: caller.present(&state, runs).await?,
        next_before,
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/state/history", operation_id = "state_history", tag = "environments", params(EnvPath, Page), responses((status = 200, description = "State versions, newest first, a page at a time (`before`: a version)", body = HistoryView), CommonErrors), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<HistoryView>, ApiError> {
    let Query(page) = page?;
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    let limit = page.limit()?;
    let versions = state.db().history_page(&stack, page.before, limit).await?;
    let next_before = (versions.len() == limit as usize)
        .then(|| versions.last().map(|v| v.version))
        .flatten();
    Ok(Json(HistoryView {
        stack,
        versions,
        next_before,
    }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/state/versions/{version}", operation_id = "state_version", tag = "environments", params(StateVersionPath), responses((status = 200, description = "Every resource (inputs, outputs, physical id, kind, status) as of that state version", body = StateVersionView), CommonErrors), security(("bearer" = [])))]
pub async fn state_version(
    State(state): State<AppState>,
    caller: Caller,
    StateVersionPath { slug, env, version }: StateVersionPath,
) -> Result<Json<StateVersionView>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    Ok(Json(state.db().state_at(&stack, version).await?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/state/diff", operation_id = "state_diff", tag = "environments", params(EnvPath, DiffQuery), responses((status = 200, description = "The resources added, removed and changed from state version `from` to `to`, with the changed input and output fields and physical ids", body = StateDiff), CommonErrors), security(("bearer" = [])))]
pub async fn state_diff(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    DiffQuery { from, to }: DiffQuery,
) -> Result<Json<StateDiff>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    Ok(Json(state.db().state_diff(&stack, from, to).await?))
}

/// Breaks the environment's stack lease, like `terraform force-unlock`: for when the worker
/// holding it is dead or stuck. Admin only. 409 when nothing holds the lease (there is nothing
/// to unlock), and while the lease is live unless `force`. The holder is fenced out: its
/// writes are refused from then on. Audited (`stack.force_unlock`).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/unlock", operation_id = "force_unlock", tag = "environments", params(EnvPath), request_body(content = Option<UnlockRequest>, description = "Optional: `{\"force\": true}` breaks a lease that is still live"), responses((status = 200, description = "The lease broken: its holder, generation and run", body = Unlocked, links(("Status" = (operation_id = "environment_status", parameters(("slug" = "$request.path.slug"), ("env" = "$request.path.env")))))), CommonErrors), security(("bearer" = [])))]
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Unlocked>, ApiError> {
    // Another tenant's is 404 like one that does not exist; only then: may this caller?
    let tenant = state.visible_tenant(&caller, &slug).await?;
    caller.require_admin()?;
    let body = match body {
        // No body (or `null`): break an expired lease only.
        Ok(Json(Value::Null)) | Err(JsonRejection::MissingJsonContentType(_)) => {
            UnlockRequest::default()
        }
        Ok(Json(body)) => decode::<UnlockRequest>(body)?,
        Err(e) => return Err(e.into()),
    };
    let stack = state.db().stack_of(&tenant, &env).await?;
    Ok(Json(
        state
            .db()
            .force_unlock(&stack, &caller.actor(), body.force)
            .await?,
    ))
}

/// How the graph is written.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GraphFormat {
    #[default]
    Json,
    /// Graphviz.
    Dot,
    Mermaid,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GraphQuery {
    #[param(inline)]
    format: Option<GraphFormat>,
}

/// The recorded resources and their dependencies: JSON, Graphviz (`?format=dot`) or Mermaid
/// (`?format=mermaid`).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/graph", operation_id = "environment_graph", tag = "environments", params(EnvPath, GraphQuery), responses((status = 200, description = "Nodes and edges (JSON), or Graphviz (`format=dot`) or Mermaid (`format=mermaid`) text", content((GraphView = "application/json"), (String = "text/plain"))), CommonErrors), security(("bearer" = [])))]
pub async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    EnvPath { slug, env }: EnvPath,
    query: Result<axum::extract::Query<GraphQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let axum::extract::Query(q) = query?;
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    let snapshot = state
        .db()
        .snapshot(&stack)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let nodes: Vec<GraphNode> = snapshot
        .resources
        .iter()
        .map(|(name, r)| GraphNode {
            id: name.clone(),
            kind: r.kind.clone(),
            physical_id: r.physical_id.clone(),
        })
        .collect();
    let index = |name: &str| nodes.iter().position(|n| n.id == name);
    let edges: Vec<(usize, usize)> = snapshot
        .resources
        .values()
        .flat_map(|r| {
            r.depends_on
                .iter()
                .filter_map(move |d| Some((index(d)?, index(&r.name)?)))
        })
        .collect();
    let text = |body: String| {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            body,
        )
            .into_response()
    };
    match q.format.unwrap_or_default() {
        GraphFormat::Json => {
            let edges = edges
                .iter()
                .map(|(a, b)| GraphEdge {
                    from: nodes[*a].id.clone(),
                    to: nodes[*b].id.clone(),
                })
                .collect();
            Ok(Json(GraphView {
                stack,
                nodes,
                edges,
            })
            .into_response())
        }
        GraphFormat::Dot => {
            let mut out = format!("digraph {stack:?} {{\n  rankdir=LR;\n");
            for n in &nodes {
                out.push_str(&format!(
                    "  {:?} [label={:?}];\n",
                    n.id,
                    format!("{}\n{}", n.id, n.kind)
                ));
            }
            for (a, b) in &edges {
                out.push_str(&format!("  {:?} -> {:?};\n", nodes[*a].id, nodes[*b].id));
            }
            out.push_str("}\n");
            Ok(text(out))
        }
        GraphFormat::Mermaid => {
            let mut out = String::from("graph LR\n");
            for (i, n) in nodes.iter().enumerate() {
                out.push_str(&format!("  n{i}[\"{}<br/>{}\"]\n", n.id, n.kind));
            }
            for (a, b) in &edges {
                out.push_str(&format!("  n{a} --> n{b}\n"));
            }
            Ok(text(out))
        }
    }
}
