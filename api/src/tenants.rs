//! Tenants: created with an external id shown once, listed, shown, deleted, rotated.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use byoc_model::api::{
    CreateTenant, ExternalIdRotated, RunAccepted, TenantCreated, TenantDetail, TenantPage,
    TrustInfo, TrustParameters, TrustTemplate, VerifyTrust,
};
use byoc_model::{TRUST_ROLE_NAME, TRUST_TEMPLATE_VERSION, Tenant, facts};
use byoc_stacks::{NewTenant, TrustLocation};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{CommonErrors, decode, decode_optional};
use crate::params::TenantPath;
use crate::{ApiError, AppState};

#[utoipa::path(post, path = "/api/v1/tenants", operation_id = "create_tenant", tag = "tenants", request_body = CreateTenant, responses((status = 201, description = "Created; the external id is shown this once", body = TenantCreated, links(("ShowTenant" = (operation_id = "show_tenant", parameters(("slug" = "$response.body#/tenant/slug")))), ("TrustTemplate" = (operation_id = "trust_template", parameters(("slug" = "$response.body#/tenant/slug")))), ("VerifyTrust" = (operation_id = "verify_trust", parameters(("slug" = "$response.body#/tenant/slug")))), ("SetConfig" = (operation_id = "set_config", parameters(("slug" = "$response.body#/tenant/slug"), ("env" = "dev")))), ("DeleteTenant" = (operation_id = "delete_tenant", parameters(("slug" = "$response.body#/tenant/slug")))))), CommonErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantCreated>), ApiError> {
    caller.require_admin()?;
    let Json(body) = body?;
    let body: CreateTenant = decode(body)?;
    crate::validate::display_name("name", &body.name, byoc_stacks::TENANT_NAME_MAX)?;
    crate::validate::labels(&body.labels)?;
    let new = NewTenant {
        slug: body.slug.into(),
        name: body.name,
        aws_account_id: body.aws_account_id.into(),
        labels: body.labels,
    };
    let (tenant, external_id) = state
        .db()
        .create_tenant(state.sealer(), &new, &caller.actor())
        .await?;
    let trust = TrustInfo {
        role_name: trust_role_name(&state).await?,
        platform_account_id: state.db().fact(facts::PLATFORM_ACCOUNT_ID).await?,
        template_url: format!("/api/v1/tenants/{}/trust-template", tenant.slug),
        external_id: external_id.clone(),
    };
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant,
            external_id,
            trust,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// The slug after which the page starts (the previous page's `next`).
    after: Option<String>,
    /// Tenants per page, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/tenants", operation_id = "list_tenants", tag = "tenants", params(Page), responses((status = 200, description = "A page of tenants", body = TenantPage), CommonErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<TenantPage>, ApiError> {
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
        .then(|| tenants.last().map(|t| t.slug.to_string()))
        .flatten();
    Ok(Json(TenantPage { tenants, next }))
}

#[utoipa::path(get, path = "/api/v1/tenants/{slug}", operation_id = "show_tenant", tag = "tenants", params(TenantPath), responses((status = 200, description = "The tenant and its environments", body = TenantDetail), CommonErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { slug }: TenantPath,
) -> Result<Json<TenantDetail>, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    let environments = state.db().configs(&tenant.id).await?;
    Ok(Json(TenantDetail {
        tenant,
        environments: environments.into_iter().map(|e| e.env).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{slug}", operation_id = "delete_tenant", tag = "tenants", params(TenantPath), responses((status = 204, description = "Deleted"), CommonErrors), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { slug }: TenantPath,
) -> Result<StatusCode, ApiError> {
    // Another tenant's is 404 like one that does not exist; only then: may this caller?
    let tenant = state.visible_tenant(&caller, &slug).await?;
    caller.require_admin()?;
    state.db().delete_tenant(&slug, &caller.actor()).await?;
    // Its tokens went with it.
    state.forget_tokens(|cached| cached.tenant_id.as_ref() == Some(&tenant.id));
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/external-id/rotate", operation_id = "rotate_external_id", tag = "tenants", params(TenantPath), responses((status = 200, description = "The new external id, shown this once", body = ExternalIdRotated), CommonErrors), security(("bearer" = [])))]
pub async fn rotate_external_id(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { slug }: TenantPath,
) -> Result<Json<ExternalIdRotated>, ApiError> {
    state.visible_tenant(&caller, &slug).await?;
    caller.require_admin()?;
    let external_id = state
        .db()
        .rotate_external_id(state.sealer(), &slug, &caller.actor())
        .await?;
    Ok(Json(ExternalIdRotated {
        external_id,
        note: "update the ExternalId parameter of the customer's trust stack, then verify".into(),
    }))
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

#[utoipa::path(get, path = "/api/v1/tenants/{slug}/trust-template", operation_id = "trust_template", tag = "tenants", params(TenantPath), responses((status = 200, description = "The template, the parameters to launch it with (the external id went out once, at creation) and a console quick-create link", body = TrustTemplate), CommonErrors), security(("bearer" = [])))]
pub async fn trust_template(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { slug }: TenantPath,
) -> Result<Json<TrustTemplate>, ApiError> {
    let tenant = state.visible_tenant(&caller, &slug).await?;
    let platform = state.db().fact(facts::PLATFORM_ACCOUNT_ID).await?;
    let role_name = trust_role_name(&state).await?;
    // The console launches templates from S3 only: a link when the template is published.
    let stack_name = &tenant.trust_stack_name;
    let quick_create = match (state.template_url(), &platform) {
        (Some(url), Some(account)) => Some(format!(
            "https://console.aws.amazon.com/cloudformation/home#/stacks/quickcreate?templateURL={}&stackName={stack_name}&param_TrustedAccountId={account}&param_RoleName={role_name}&param_TenantSlug={}",
            percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC),
            tenant.slug
        )),
        _ => None,
    };
    Ok(Json(TrustTemplate {
        template_version: TRUST_TEMPLATE_VERSION.into(),
        template: TRUST_TEMPLATE.into(),
        parameters: TrustParameters {
            trusted_account_id: platform,
            role_name,
            tenant_slug: tenant.slug.clone(),
            external_id:
                "(the external id shown when the tenant was created, or by its last rotation)"
                    .into(),
        },
        quick_create_url: quick_create,
        tenant: tenant.slug,
        account_id: tenant.aws_account_id,
        stack_name: tenant.trust_stack_name,
    }))
}

#[utoipa::path(post, path = "/api/v1/tenants/{slug}/verify", operation_id = "verify_trust", tag = "tenants", params(TenantPath), request_body(content = Option<VerifyTrust>, description = "Optional: where the trust stack is"), responses((status = 202, description = "A verify run, queued (or the queued verification it joined, with `coalesced`): a worker assumes the tenant's role and reads its trust stack; the tenant's onboarding status shows the outcome", body = RunAccepted, links(("ShowRun" = (operation_id = "show_run", parameters(("id" = "$response.body#/run_id")))), ("RunEvents" = (operation_id = "run_events", parameters(("id" = "$response.body#/run_id")))), ("CancelRun" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/run_id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { slug }: TenantPath,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    state.visible_tenant(&caller, &slug).await?;
    // No body: verify where the tenant's trust stack is recorded to be.
    let body: VerifyTrust = decode_optional(body)?;
    let location = TrustLocation {
        region: body.region,
        stack_name: body.stack_name,
    };
    let accepted = state
        .queue()
        .await?
        .verify(state.db(), &slug, &location, &caller.actor())
        .await?;
    Ok(crate::environments::accepted_run(accepted))
}
