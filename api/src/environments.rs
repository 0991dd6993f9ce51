//! A tenant's environments: config, runs (deploy, destroy, preview, refresh), status, state.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use byoc_model::{EnvironmentConfig, OnboardingStatus, RunKind};
use byoc_stacks::Tenant;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{CommonErrors, ErrorBody};
use crate::{ApiError, AppState};

/// The tenant of `/tenants/{slug}/environments/{env}`, if the caller may see it.
async fn tenant_of(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    env: &str,
) -> Result<Tenant, ApiError> {
    crate::validate::env(env)?;
    state.visible_tenant(caller, slug).await
}

/// The tenant and the name of the stack of `/tenants/{slug}/environments/{env}`, if the
/// caller may see them. The stack is found from the (tenant, environment) pair; NotFound
/// until the environment's config is first saved.
async fn environment(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    env: &str,
) -> Result<(Tenant, String), ApiError> {
    let tenant = tenant_of(state, caller, slug, env).await?;
    let stack = state.db().stack_of(&tenant, env).await?;
    Ok((tenant, stack))
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/config", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), request_body = Object, responses((status = 200, description = "Saved; its version", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn set_config(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_of(&state, &caller, &slug, &env).await?;
    let Json(raw) = body?;
    let config = EnvironmentConfig::resolve(&raw, state.default_region())?;
    let effective = serde_json::to_value(&config).expect("configs serialize");
    let version = state
        .db()
        .save_environment(&tenant.id, &slug, &env, &effective, &raw, &caller.actor())
        .await?;
    Ok(Json(
        json!({"env": env, "version": version, "config": effective}),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/config", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 200, description = "The config and its version", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn get_config(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_of(&state, &caller, &slug, &env).await?;
    Ok(Json(json!(state.db().config(&tenant, &env).await?)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/environments/{env}/config", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 204, description = "Deleted"), CommonErrors, (status = 409, description = "The stack still has resources", body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_config(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_of(&state, &caller, &slug, &env).await?;
    state
        .db()
        .delete_config(&tenant.id, &slug, &env, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a run and enqueues it: 202 with its id (a deploy coalesces into a queued one).
async fn request(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    env: &str,
    kind: RunKind,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = tenant_of(state, caller, slug, env).await?;
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
    let (run, coalesced) = queue
        .request(state.db(), &stack, kind, &caller.actor())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"run_id": run.id, "status": run.status, "kind": run.kind, "coalesced": coalesced}),
        ),
    ))
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/deploy", tag = "runs", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 202, description = "A deploy run, queued (or the queued one it joined)", body = Object), CommonErrors, (status = 409, description = "The tenant is not trusted yet (`not_trusted`)", body = ErrorBody)), security(("bearer" = [])))]
pub async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Deploy).await
}

#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/environments/{env}", tag = "runs", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 202, description = "A destroy run, queued", body = Object), CommonErrors, (status = 409, description = "The tenant is not trusted yet (`not_trusted`)", body = ErrorBody)), security(("bearer" = [])))]
pub async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Destroy).await
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/preview", tag = "runs", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 202, description = "A preview run (plan only), queued", body = Object), CommonErrors, (status = 409, description = "The tenant is not trusted yet (`not_trusted`)", body = ErrorBody)), security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Preview).await
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/environments/{env}/refresh", tag = "runs", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 202, description = "A refresh run (drift check), queued", body = Object), CommonErrors, (status = 409, description = "The tenant is not trusted yet (`not_trusted`)", body = ErrorBody)), security(("bearer" = [])))]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    request(&state, &caller, &slug, &env, RunKind::Refresh).await
}

/// Outputs worth showing at a glance: ids and endpoints, by resource.
const SHOWN_OUTPUTS: &[&str] = &["id", "name", "arn", "endpoint", "oidc_issuer", "public_ip"];

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/status", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 200, description = "Stack status, last run, resource counts, outputs, drift", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    let db = state.db();
    let mut status = db.stack_status(&stack).await?;
    status.last_run = match status.last_run.take() {
        Some(run) => caller.present(&state, vec![run]).await?.pop(),
        None => None,
    };
    let mut outputs = Map::new();
    for r in db.resources(&stack).await? {
        let shown: Map<String, Value> = SHOWN_OUTPUTS
            .iter()
            .filter_map(|k| Some((k.to_string(), r.outputs.get(*k)?.clone())))
            .filter(|(_, v)| !v.is_null())
            .collect();
        if !shown.is_empty() {
            outputs.insert(r.key, Value::Object(shown));
        }
    }
    // The last refresh says whether the cloud still matches the state.
    let drift = db
        .latest_run(&stack, RunKind::Refresh, byoc_model::RunStatus::Succeeded)
        .await?
        .map(|r| json!({"run_id": r.id, "checked_at": r.finished_at, "drift": r.summary.and_then(|s| s.get("drift").cloned())}));
    Ok(Json(
        json!({"status": status, "outputs": outputs, "drift": drift}),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/state", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 200, description = "Every recorded resource", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn state_of(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    Ok(Json(
        json!({"stack": stack, "resources": state.db().resources(&stack).await?}),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/runs", tag = "runs", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 200, description = "The stack's runs, newest first", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    let mut runs = state.db().runs_of(&stack).await?;
    runs.sort_by_key(|r| std::cmp::Reverse(r.seq));
    Ok(Json(json!({"runs": caller.present(&state, runs).await?})))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/state/history", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name")), responses((status = 200, description = "State versions, newest first", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    Ok(Json(
        json!({"stack": stack, "versions": state.db().state_history(&stack).await?}),
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GraphFormat {
    format: Option<String>,
}

/// The recorded resources and their dependencies: JSON, Graphviz (`?format=dot`) or Mermaid
/// (`?format=mermaid`).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/environments/{env}/graph", tag = "environments", params(("slug" = String, Path, description = "Tenant slug"), ("env" = String, Path, description = "Environment name"), GraphFormat), responses((status = 200, description = "Nodes and edges (JSON), or Graphviz / Mermaid text", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, env)): Path<(String, String)>,
    query: Result<axum::extract::Query<GraphFormat>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let axum::extract::Query(q) = query?;
    let (_, stack) = environment(&state, &caller, &slug, &env).await?;
    state.db().stack_status(&stack).await?;
    let snapshot = state
        .db()
        .snapshot(&stack)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let nodes: Vec<(&String, &str, &str)> = snapshot
        .resources
        .iter()
        .map(|(name, r)| (name, r.kind.as_str(), r.physical_id.as_str()))
        .collect();
    let index = |name: &str| nodes.iter().position(|(n, _, _)| n.as_str() == name);
    // An edge runs from a dependency to what depends on it (the order of creation).
    let edges: Vec<(usize, usize)> = snapshot
        .resources
        .values()
        .flat_map(|r| {
            r.depends_on
                .iter()
                .filter_map(move |d| Some((index(d)?, index(&r.name)?)))
        })
        .collect();
    let text = |body: String, kind: &'static str| {
        ([(axum::http::header::CONTENT_TYPE, kind)], body).into_response()
    };
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(json!({
            "stack": stack,
            "nodes": nodes.iter().map(|(n, k, p)| json!({"id": n, "kind": k, "physical_id": p})).collect::<Vec<_>>(),
            "edges": edges.iter().map(|(a, b)| json!({"from": nodes[*a].0, "to": nodes[*b].0})).collect::<Vec<_>>(),
        }))
        .into_response()),
        Some("dot") => {
            let mut out = format!("digraph {stack:?} {{\n  rankdir=LR;\n");
            for (n, k, _) in &nodes {
                out.push_str(&format!("  {n:?} [label={:?}];\n", format!("{n}\n{k}")));
            }
            for (a, b) in &edges {
                out.push_str(&format!("  {:?} -> {:?};\n", nodes[*a].0, nodes[*b].0));
            }
            out.push_str("}\n");
            Ok(text(out, "text/vnd.graphviz; charset=utf-8"))
        }
        Some("mermaid") => {
            let mut out = String::from("graph LR\n");
            for (i, (n, k, _)) in nodes.iter().enumerate() {
                out.push_str(&format!("  n{i}[\"{n}<br/>{k}\"]\n"));
            }
            for (a, b) in &edges {
                out.push_str(&format!("  n{a} --> n{b}\n"));
            }
            Ok(text(out, "text/plain; charset=utf-8"))
        }
        Some(other) => Err(ApiError::invalid(Some("format"), format!("unknown format {other:?}: use json, dot or mermaid"))),
    }
}
