//! Tenants: created with an external id shown once, listed, shown, deleted, rotated.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use byoc_model::{TRUST_ROLE_NAME, TRUST_TEMPLATE_VERSION, facts};
use byoc_stacks::{NewTenant, Tenant, TrustLocation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{CommonErrors, ErrorBody};
use crate::{ApiError, AppState};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
    slug: String,
    aws_account_id: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// What the customer needs to launch the trust stack.
#[derive(Serialize)]
struct Trust {
    role_name: String,
    external_id: String,
    /// The account the role trusts; known once a worker has recorded it (or from config).
    platform_account_id: Option<String>,
    template_url: String,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant, responses((status = 201, description = "Created; the external id is shown this once", body = Object), CommonErrors, (status = 409, description = "The slug is taken", body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let Json(body) = body?;
    crate::validate::slug(&body.slug)?;
    crate::validate::display_name("name", &body.name, byoc_stacks::TENANT_NAME_MAX)?;
    crate::validate::account_id(&body.aws_account_id)?;
    crate::validate::labels(&body.labels)?;
    let new = NewTenant {
        slug: body.slug,
        name: body.name,
        aws_account_id: body.aws_account_id,
        labels: body.labels,
    };
    let (tenant, external_id) = state
        .db()
        .create_tenant(state.sealer(), &new, &caller.actor())
        .await?;
    let trust = Trust {
        role_name: trust_role_name(&state).await?,
        platform_account_id: state.db().fact(facts::PLATFORM_ACCOUNT_ID).await?,
        template_url: format!("/api/v1/tenants/{}/trust-template", tenant.slug),
        external_id: external_id.clone(),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant": tenant, "external_id": external_id, "trust": trust})),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(Page), responses((status = 200, description = "A page of tenants", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(page) = page?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(Some("limit"), "limit is 1 to 500"));
    }
    let tenants: Vec<Tenant> = match &caller.0.tenant_id {
        None => state.db().tenants(page.after.as_deref(), limit).await?,
        // A tenant token lists its own tenant only.
        Some(own) => {
            let tenant = state.db().tenant_by_id(own).await?;
            let after = page.after.as_deref().unwrap_or("");
            (tenant.slug.as_str() > after)
                .then_some(tenant)
                .into_iter()
                .collect()
        }
    };
    let next = (tenants.len() == limit as usize)
        .then(|| tenants.last().map(|t| t.slug.clone()))
        .flatten();
    Ok(Json(json!({"tenants": tenants, "next": next})))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}", tag = "tenants", params(("slug" = String, Path, description = "Tenant slug")), responses((status = 200, description = "The tenant and its environments", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    let environments = state.db().configs(&tenant.id).await?;
    let envs: Vec<&str> = environments.iter().map(|e| e.env.as_str()).collect();
    Ok(Json(json!({"tenant": tenant, "environments": envs})))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{slug}", tag = "tenants", params(("slug" = String, Path, description = "Tenant slug")), responses((status = 204, description = "Deleted"), CommonErrors, (status = 409, description = "An environment is not destroyed", body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Another tenant's is 404 like one that does not exist; only then: may this caller?
    state.visible_tenant(&caller, &slug).await?;
    caller.require_admin()?;
    state.db().delete_tenant(&slug, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/external-id/rotate", tag = "tenants", params(("slug" = String, Path, description = "Tenant slug")), responses((status = 200, description = "The new external id, shown this once", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn rotate_external_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.visible_tenant(&caller, &slug).await?;
    caller.require_admin()?;
    let external_id = state
        .db()
        .rotate_external_id(state.sealer(), &slug, &caller.actor())
        .await?;
    Ok(Json(json!({
        "external_id": external_id,
        "note": "update the ExternalId parameter of the customer's trust stack, then verify",
    })))
}

/// The role the workers assume in tenant accounts: what they recorded, else the template's
/// default.
async fn trust_role_name(state: &AppState) -> Result<String, ApiError> {
    Ok(state
        .db()
        .fact(facts::TRUST_ROLE_NAME)
        .await?
        .unwrap_or_else(|| TRUST_ROLE_NAME.to_string()))
}

/// The customer trust template, as shipped in `cfn-templates/`.
const TRUST_TEMPLATE: &str = include_str!("../../cfn-templates/customer-iam-role.yaml");

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/trust-template", tag = "tenants", params(("slug" = String, Path, description = "Tenant slug")), responses((status = 200, description = "The template, the parameters to launch it with (the external id went out once, at creation) and a console quick-create link", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn trust_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    let platform = state.db().fact(facts::PLATFORM_ACCOUNT_ID).await?;
    let role_name = trust_role_name(&state).await?;
    // The console launches templates from S3 only: a link when the template is published.
    let stack_name = &tenant.trust_stack_name;
    let quick_create = match (state.template_url(), &platform) {
        (Some(url), Some(account)) => Some(format!(
            "https://console.aws.amazon.com/cloudformation/home#/stacks/quickcreate?templateURL={}&stackName={stack_name}&param_TrustedAccountId={account}&param_RoleName={role_name}",
            percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC)
        )),
        _ => None,
    };
    Ok(Json(json!({
        "tenant": tenant.slug,
        "account_id": tenant.aws_account_id,
        "template_version": TRUST_TEMPLATE_VERSION,
        "stack_name": tenant.trust_stack_name,
        "template": TRUST_TEMPLATE,
        "parameters": {
            "TrustedAccountId": platform,
            "RoleName": role_name,
            "ExternalId": "(the external id shown when the tenant was created, or by its last rotation)",
        },
        "quick_create_url": quick_create,
    })))
}

/// Where the customer launched the trust stack; what is left out keeps the tenant's recorded
/// location (at first: stack `byoc-trust` in the workers' default region).
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyTrust {
    /// The region the trust stack is in, e.g. `eu-west-1`.
    region: Option<String>,
    /// The trust stack's name.
    stack_name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/verify", tag = "tenants", params(("slug" = String, Path, description = "Tenant slug")), request_body(content = VerifyTrust, description = "Optional: where the trust stack is"), responses((status = 202, description = "A verify run, queued: a worker assumes the tenant's role and reads its trust stack; the tenant's onboarding status shows the outcome", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    body: Result<Json<VerifyTrust>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.visible_tenant(&caller, &slug).await?;
    let body = match body {
        Ok(Json(body)) => body,
        // No body at all: verify where the tenant's trust stack is recorded to be.
        Err(JsonRejection::MissingJsonContentType(_)) => VerifyTrust::default(),
        Err(e) => return Err(e.into()),
    };
    if let Some(region) = &body.region
        && !byoc_model::is_region(region)
    {
        return Err(ApiError::invalid(
            Some("region"),
            format!("{region:?} is not an AWS region name such as eu-west-1"),
        ));
    }
    let location = TrustLocation {
        region: body.region,
        stack_name: body.stack_name,
    };
    let run = state
        .queue()
        .await?
        .verify(state.db(), &slug, &location, &caller.actor())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run.id, "status": run.status, "kind": run.kind})),
    ))
}
