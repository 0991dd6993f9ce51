//! The API against a real server on 127.0.0.1, on SQLite and on Postgres.

mod common;

use std::time::Duration;

use anyhow::Context;
use byoc_api::{AppState, SchemaState};
use byoc_stacks::{Database, RunLimits, migrate_url, schema_fingerprint};
use byoc_testkit::{TestDb, exec};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Api {
    base: String,
    admin: String,
    client: reqwest::Client,
    db: Database,
    state: AppState,
    _t: TestDb,
}

impl Api {
    async fn start(t: TestDb) -> anyhow::Result<Api> {
        Api::start_with(t, byoc_api::DEFAULT_RATE, RunLimits::DEFAULT, |state| state).await
    }

    /// `configure` sets what `byoc serve`'s flags would (region, chart sources).
    async fn start_with(
        t: TestDb,
        rate: (u32, u32),
        limits: RunLimits,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> anyhow::Result<Api> {
        let db = Database::connect(t.url()).await?.with_run_limits(limits);
        let (_tx, schema) = tokio::sync::watch::channel(SchemaState::Ready);
        // Kept alive by the router's state for the test's life.
        std::mem::forget(_tx);
        let sealer = common::sealer();
        let (_, admin) = db.create_token("test admin", None, "test").await?;
        let state = configure(AppState::with_rate(db.clone(), schema, sealer, rate))
            .with_template_url(Some(
                "https://byoc-templates.s3.amazonaws.com/customer-iam-role.yaml".into(),
            ));
        let app = byoc_api::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Api {
            base,
            admin,
            client: reqwest::Client::new(),
            db,
            state,
            _t: t,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        assert!(
            resp.headers().contains_key("x-request-id"),
            "no request id on {path}"
        );
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| text.clone())?
        };
        Ok((status, value))
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.call(method, path, Some(&self.admin.clone()), body)
            .await
    }

    /// Asks as the admin for what must be refused with `status` and error code `error`, with
    /// a message that says each of `says`.
    async fn refused(
        &self,
        (method, path): (Method, &str),
        (status, error): (StatusCode, &str),
        says: &[&str],
    ) -> anyhow::Result<()> {
        let (got, body) = self.admin(method, path, None).await?;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{body}"
        );
        let message = body["message"].as_str().context("message")?;
        for said in says {
            assert!(message.contains(said), "{said:?} is not in {message:?}");
        }
        Ok(())
    }

    async fn tenant(&self, slug: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .admin(
                Method::POST,
                "/api/v1/tenants",
                Some(json!({"name": slug, "slug": slug, "aws_account_id": "111111111111"})),
            )
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Ok(body)
    }

    /// Requests a verification of `slug`'s trust through the API, then plays the worker
    /// (no worker runs here): the tenant ends up as a verification of a current trust stack
    /// in eu-west-1 leaves it.
    async fn trust(&self, slug: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .admin(
                Method::POST,
                &format!("/api/v1/tenants/{slug}/verify"),
                Some(json!({"region": "eu-west-1"})),
            )
            .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["kind"], "verify");
        let run = body["run_id"].as_str().context("run_id")?;
        common::complete_verification(&self.db, slug, run).await
    }
}

async fn both() -> anyhow::Result<Vec<Api>> {
    both_limited(RunLimits::DEFAULT).await
}

/// An API on each engine whose stores refuse runs past `limits`.
async fn both_limited(limits: RunLimits) -> anyhow::Result<Vec<Api>> {
    let dbs = TestDb::both(&schema_fingerprint(), |url| async move {
        Ok(migrate_url(&url).await?)
    })
    .await?;
    let mut apis = Vec::new();
    for t in dbs {
        if t.url().starts_with("sqlite") {
            migrate_url(t.url()).await?;
        }
        apis.push(Api::start_with(t, byoc_api::DEFAULT_RATE, limits, |state| state).await?);
    }
    Ok(apis)
}

fn config() -> Value {
    json!({"region": "us-east-1", "eks_mode": "managed"})
}

#[tokio::test]
async fn auth_matrix() -> anyhow::Result<()> {
    for api in both().await? {
        let (status, body) = api.call(Method::GET, "/api/v1/tenants", None, None).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthorized");
        let (status, _) = api
            .call(
                Method::GET,
                "/api/v1/tenants",
                Some("byoc_0000000000000000_00"),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        api.tenant("acme").await?;
        api.tenant("globex").await?;
        let (status, body) = api
            .admin(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "acme ci", "tenant": "acme"})),
            )
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let acme = body["secret"].as_str().unwrap().to_string();
        let token_id = body["token"]["id"].as_str().unwrap().to_string();

        // A tenant token sees its own tenant only; the other one does not exist for it.
        let (status, _) = api
            .call(Method::GET, "/api/v1/tenants/acme", Some(&acme), None)
            .await?;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = api
            .call(Method::GET, "/api/v1/tenants/globex", Some(&acme), None)
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = api
            .call(
                Method::POST,
                "/api/v1/tenants/globex/environments/dev/config",
                Some(&acme),
                Some(config()),
            )
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, body) = api
            .call(Method::GET, "/api/v1/tenants", Some(&acme), None)
            .await?;
        let slugs: Vec<&str> = body["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["acme"]);
        let (status, _) = api
            .call(
                Method::POST,
                "/api/v1/tenants",
                Some(&acme),
                Some(json!({"name": "x", "slug": "xyz", "aws_account_id": "111111111111"})),
            )
            .await?;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = api
            .call(Method::GET, "/api/v1/tokens", Some(&acme), None)
            .await?;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The admin sees everything.
        let (_, body) = api.admin(Method::GET, "/api/v1/tenants", None).await?;
        assert_eq!(body["tenants"].as_array().unwrap().len(), 2);

        // A token cannot revoke itself (nor the last admin token go).
        let admin_id = api.admin.split('_').nth(1).unwrap().to_string();
        let (status, body) = api
            .admin(Method::DELETE, &format!("/api/v1/tokens/{admin_id}"), None)
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        // A revoked token is refused.
        let (status, _) = api
            .admin(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None)
            .await?;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api
            .call(Method::GET, "/api/v1/tenants/acme", Some(&acme), None)
            .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    Ok(())
}

#[tokio::test]
async fn validation_errors_name_the_field() -> anyhow::Result<()> {
    for api in both().await? {
        let create = |slug: &str, account: &str| json!({"name": "n", "slug": slug, "aws_account_id": account});
        for (body, field) in [
            (create("Acme", "111111111111"), "slug"),
            (create("a", "111111111111"), "slug"),
            (create("acme-", "111111111111"), "slug"),
            (create("acme", "1111"), "aws_account_id"),
            (create("acme", "11111111111x"), "aws_account_id"),
        ] {
            let (status, resp) = api
                .admin(Method::POST, "/api/v1/tenants", Some(body.clone()))
                .await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp}");
            assert_eq!(resp["field"], field, "{resp}");
        }
        let (status, resp) = api
            .admin(Method::POST, "/api/v1/tenants", Some(json!({"name": "n", "slug": "acme", "aws_account_id": "111111111111", "colour": "red"})))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            resp["message"].as_str().unwrap().contains("colour"),
            "{resp}"
        );

        api.tenant("acme").await?;
        let path = "/api/v1/tenants/acme/environments/dev/config";
        for (body, field) in [
            (json!({"region": "us-east-1", "az_count": 5}), "az_count"),
            (
                json!({"region": "us-east-1", "vpc_cidr": "10.0.0.1/16"}),
                "vpc_cidr",
            ),
            (
                json!({"region": "us-east-1", "eks_mode": "fargate"}),
                "eks_mode",
            ),
            (
                json!({"region": "us-east-1", "node_group_config": {"desired_size": 1, "min_size": 3, "max_size": 2, "instance_types": ["m5.large"], "disk_size": 20}}),
                "node_group_config.min_size",
            ),
            // No region, and this server has no default region.
            (json!({"vpc_cidr": "10.0.0.0/16"}), "region"),
            (
                json!({"region": "us-east-1", "endpoint_access": {"public": true, "private": true, "public_cidrs": vec!["10.0.0.0/8"; 41]}}),
                "endpoint_access.public_cidrs",
            ),
            (
                json!({"region": "us-east-1", "tags": {"team": "a\u{7}b"}}),
                "tags.team",
            ),
            (
                json!({"region": "us-east-1", "node_group_config": {"taints": [{"key": "bad key", "effect": "no_schedule"}]}}),
                "node_group_config.taints[0].key",
            ),
            (
                json!({"region": "us-east-1", "node_group_config": {"labels": {"kubernetes.io/role": "x"}}}),
                "node_group_config.labels.kubernetes.io/role",
            ),
            (json!({"region": "mars-north-1"}), "region"),
        ] {
            let (status, resp) = api.admin(Method::POST, path, Some(body.clone())).await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp}");
            assert_eq!(resp["field"], field, "{resp}");
        }
        let (_, resp) = api
            .admin(Method::POST, path, Some(json!({"eks_mode": "managed"})))
            .await?;
        assert!(
            resp["message"]
                .as_str()
                .unwrap()
                .contains("--default-region"),
            "the error says how to set a default region: {resp}"
        );
        // Not JSON at all: malformed (400), not a validation error.
        let resp = api
            .client
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.admin)
            .header("content-type", "application/json")
            .body("{\"region\": ")
            .send()
            .await?;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await?;
        assert_eq!(body["error"], "malformed", "{body}");
        // People's names: no control characters, bounded; labels like Kubernetes'.
        for (body, field) in [
            (
                json!({"name": "bad\nname", "slug": "okay", "aws_account_id": "111111111111"}),
                "name",
            ),
            (
                json!({"name": "x".repeat(201), "slug": "okay", "aws_account_id": "111111111111"}),
                "name",
            ),
            (
                json!({"name": "ok", "slug": "okay", "aws_account_id": "111111111111", "labels": {"bad key": "v"}}),
                "labels.bad key",
            ),
        ] {
            let (status, resp) = api
                .admin(Method::POST, "/api/v1/tenants", Some(body.clone()))
                .await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp}");
            assert_eq!(resp["field"], field, "{resp}");
        }
        let (status, resp) = api
            .admin(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "\u{1b}[31mred"})),
            )
            .await?;
        assert_eq!(
            (status, resp["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
            "{resp}"
        );
        let (status, resp) = api
            .admin(
                Method::POST,
                "/api/v1/tenants/acme/environments/Dev/config",
                Some(config()),
            )
            .await?;
        assert_eq!(
            (status, resp["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("env"))
        );
        // A path's identities are checked as the path is read: 422 naming the parameter.
        for (path, field) in [
            ("/api/v1/tenants/Acme", "slug"),
            ("/api/v1/tenants/acme-/environments/dev/status", "slug"),
            ("/api/v1/runs/not-a-uuid", "id"),
        ] {
            let (status, resp) = api.admin(Method::GET, path, None).await?;
            assert_eq!(
                (status, resp["error"].as_str(), resp["field"].as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("invalid"),
                    Some(field)
                ),
                "{path}: {resp}"
            );
        }
        let huge = json!({"region": "us-east-1", "tags": {"k": "v".repeat(300 * 1024)}});
        let (status, _) = api.admin(Method::POST, path, Some(huge)).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _) = api
            .admin(Method::GET, "/api/v1/tenants?limit=0", None)
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    Ok(())
}

#[tokio::test]
async fn tenant_config_and_run_lifecycle() -> anyhow::Result<()> {
    for api in both().await? {
        let created = api.tenant("acme").await?;
        let external_id = created["external_id"].as_str().unwrap().to_string();
        assert!(external_id.len() >= 32, "{created}");
        assert_eq!(created["trust"]["role_name"], "byoc-deployer");
        // The external id is shown once: never again.
        let (_, shown) = api.admin(Method::GET, "/api/v1/tenants/acme", None).await?;
        assert!(!shown.to_string().contains(&external_id));
        let (status, _) = api
            .admin(
                Method::POST,
                "/api/v1/tenants",
                Some(json!({"name": "a", "slug": "acme", "aws_account_id": "111111111111"})),
            )
            .await?;
        assert_eq!(status, StatusCode::CONFLICT);

        let env = "/api/v1/tenants/acme/environments/dev";
        let (status, _) = api
            .admin(Method::POST, &format!("{env}/deploy"), None)
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "no config yet");
        let (status, body) = api
            .admin(Method::POST, &format!("{env}/config"), Some(config()))
            .await?;
        assert_eq!(
            (status, body["version"].as_i64()),
            (StatusCode::OK, Some(1))
        );
        let (_, body) = api
            .admin(Method::GET, &format!("{env}/config"), None)
            .await?;
        // The config as sent, and as it will be deployed: every default filled in.
        assert_eq!(body["raw"], config());
        assert_eq!(body["config"]["region"], "us-east-1", "{body}");
        assert_eq!(body["config"]["vpc_cidr"], "10.0.0.0/16", "{body}");
        assert_eq!(body["config"]["node_group_config"]["min_size"], 1, "{body}");

        // Until the tenant's account trusts byoc, runs are refused at once.
        let (status, refused) = api
            .admin(Method::POST, &format!("{env}/deploy"), None)
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"], "not_trusted");
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains("pending_trust") && message.contains("byoc tenant verify acme"),
            "{message}"
        );
        for (body, field) in [
            (json!({"region": "Mars"}), Some("region")),
            (json!({"stack_name": "1-trust"}), None),
            (json!({"colour": "red"}), Some("colour")),
        ] {
            let (status, error) = api
                .admin(Method::POST, "/api/v1/tenants/acme/verify", Some(body))
                .await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
            assert_eq!(error["field"].as_str(), field, "{error}");
        }
        api.trust("acme").await?;
        let (_, shown) = api.admin(Method::GET, "/api/v1/tenants/acme", None).await?;
        let acme = &shown["tenant"];
        assert_eq!(acme["onboarding_status"], "trusted", "{shown}");
        assert_eq!(acme["trust_region"], "eu-west-1");
        assert_eq!(
            acme["trust_template_version"],
            byoc_model::TRUST_TEMPLATE_VERSION
        );

        // No worker here: runs stay queued, and a second deploy coalesces into the first.
        let (status, first) = api
            .admin(Method::POST, &format!("{env}/deploy"), None)
            .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{first}");
        let (_, second) = api
            .admin(Method::POST, &format!("{env}/deploy"), None)
            .await?;
        assert_eq!(second["run_id"], first["run_id"]);
        assert_eq!(second["coalesced"], true);
        let run = first["run_id"].as_str().unwrap();
        let (_, shown) = api
            .admin(Method::GET, &format!("/api/v1/runs/{run}"), None)
            .await?;
        assert_eq!(shown["run"]["status"], "queued");
        let (_, status_body) = api
            .admin(Method::GET, &format!("{env}/status"), None)
            .await?;
        assert_eq!(
            status_body["status"]["last_run"]["id"], run,
            "{status_body}"
        );
        let (_, runs) = api.admin(Method::GET, &format!("{env}/runs"), None).await?;
        assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
        assert!(runs.get("next_before").is_none(), "one page: {runs}");
        // Runs of other kinds, then the list a page at a time, newest first.
        for kind in ["preview", "refresh"] {
            let (status, body) = api
                .admin(Method::POST, &format!("{env}/{kind}"), None)
                .await?;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
        let (_, page) = api
            .admin(Method::GET, &format!("{env}/runs?limit=2"), None)
            .await?;
        let kinds = |page: &Value| -> Vec<String> {
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["kind"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(kinds(&page), ["refresh", "preview"], "{page}");
        let before = page["next_before"].as_i64().context("next_before")?;
        let (_, last) = api
            .admin(
                Method::GET,
                &format!("{env}/runs?limit=2&before={before}"),
                None,
            )
            .await?;
        assert_eq!(kinds(&last), ["deploy"], "{last}");
        assert!(last.get("next_before").is_none(), "{last}");
        let (status, _) = api
            .admin(Method::GET, &format!("{env}/runs?limit=0"), None)
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        for run in page["runs"].as_array().unwrap() {
            let id = run["id"].as_str().unwrap();
            let (status, body) = api
                .admin(Method::POST, &format!("/api/v1/runs/{id}/cancel"), None)
                .await?;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (_, state) = api
            .admin(Method::GET, &format!("{env}/state"), None)
            .await?;
        assert_eq!(state["resources"], json!([]));
        let (_, events) = api
            .admin(Method::GET, &format!("/api/v1/runs/{run}/events"), None)
            .await?;
        assert_eq!(events["events"], json!([]));

        let (status, cancelled) = api
            .admin(Method::POST, &format!("/api/v1/runs/{run}/cancel"), None)
            .await?;
        assert_eq!(
            (status, cancelled["run"]["status"].as_str()),
            (StatusCode::OK, Some("cancelled"))
        );
        let (status, destroy) = api.admin(Method::DELETE, env, None).await?;
        assert_eq!(
            (status, destroy["kind"].as_str()),
            (StatusCode::ACCEPTED, Some("destroy"))
        );
        let destroy_run = destroy["run_id"].as_str().unwrap();
        api.admin(
            Method::POST,
            &format!("/api/v1/runs/{destroy_run}/cancel"),
            None,
        )
        .await?;

        // The trust template, with the platform account a worker recorded.
        let (_, trust) = api
            .admin(Method::GET, "/api/v1/tenants/acme/trust-template", None)
            .await?;
        assert_eq!(trust["parameters"]["RoleName"], byoc_model::TRUST_ROLE_NAME);
        api.db
            .set_fact(byoc_model::facts::PLATFORM_ACCOUNT_ID, "123456789012")
            .await?;
        // Workers told to assume another role record it; the customer is told that one.
        api.db
            .set_fact(byoc_model::facts::TRUST_ROLE_NAME, "acme-byoc")
            .await?;
        let (status, trust) = api
            .admin(Method::GET, "/api/v1/tenants/acme/trust-template", None)
            .await?;
        assert_eq!(status, StatusCode::OK, "{trust}");
        assert!(
            trust["template"]
                .as_str()
                .unwrap()
                .contains("sts:ExternalId")
        );
        assert_eq!(trust["parameters"]["TrustedAccountId"], "123456789012");
        assert_eq!(trust["parameters"]["RoleName"], "acme-byoc");
        assert_eq!(trust["parameters"]["TenantSlug"], "acme");
        assert_eq!(
            trust["template_version"],
            byoc_model::TRUST_TEMPLATE_VERSION
        );
        let link = trust["quick_create_url"].as_str().unwrap();
        assert!(
            link.contains("templateURL=https%3A%2F%2Fbyoc%2Dtemplates")
                && link.contains("param_TrustedAccountId=123456789012")
                && link.contains("param_RoleName=acme-byoc")
                && link.contains("param_TenantSlug=acme"),
            "{link}"
        );

        let (_, rotated) = api
            .admin(
                Method::POST,
                "/api/v1/tenants/acme/external-id/rotate",
                None,
            )
            .await?;
        let new_id = rotated["external_id"].as_str().unwrap();
        assert_ne!(new_id, external_id);
        // The role must trust the new id before byoc acts again.
        let (status, refused) = api
            .admin(Method::POST, &format!("{env}/deploy"), None)
            .await?;
        assert_eq!(
            (status, refused["error"].as_str()),
            (StatusCode::CONFLICT, Some("not_trusted"))
        );

        let (status, _) = api
            .admin(Method::DELETE, &format!("{env}/config"), None)
            .await?;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .admin(Method::DELETE, "/api/v1/tenants/acme", None)
            .await?;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api.admin(Method::GET, "/api/v1/tenants/acme", None).await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Every mutating call is in the audit log.
        let audited: i64 = match api.db.pool() {
            byoc_stacks::Pool::Sqlite(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
                    .fetch_one(p)
                    .await?
            }
            byoc_stacks::Pool::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
                    .fetch_one(p)
                    .await?
            }
        };
        assert!(audited >= 6, "{audited} audit entries");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Component charts come only from the sources the operator allows (`--chart-sources`, by
/// default the pinned catalog's): anything else is 422 at save, naming the field and listing
/// what is allowed; hostile charts and repositories are refused whatever the list says.
#[tokio::test]
async fn chart_sources_outside_the_allow_list_are_refused_at_save() -> anyhow::Result<()> {
    let config = |components: Value| json!({"region": "us-east-1", "eks_mode": "managed", "components": components});
    let path = "/api/v1/tenants/acme/environments/dev/config";
    let jetstack =
        json!({"cert_manager": {"chart": "cert-manager", "repo": "https://charts.jetstack.io"}});
    let mirror = json!({"cert_manager": {"chart": "cert-manager", "repo": "https://charts.example.com/stable"}});

    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let pinned = Api::start(t).await?;
    pinned.tenant("acme").await?;
    for (components, field) in [
        (mirror.clone(), "components.cert_manager.repo"),
        (
            json!({"karpenter": {"chart": "oci://registry.example.com/karpenter/karpenter"}}),
            "components.karpenter.chart",
        ),
        (
            json!({"argocd": {"chart": "--post-renderer=/bin/sh", "repo": "https://argoproj.github.io/argo-helm"}}),
            "components.argocd.chart",
        ),
        (
            json!({"argocd": {"chart": "/etc"}}),
            "components.argocd.chart",
        ),
        (
            json!({"argocd": {"chart": "argo-cd", "repo": "http://169.254.169.254/latest/"}}),
            "components.argocd.repo",
        ),
    ] {
        let (status, body) = pinned
            .admin(Method::POST, path, Some(config(components.clone())))
            .await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{components}: {body}"
        );
        assert_eq!(body["field"], field, "{body}");
    }
    let (_, body) = pinned
        .admin(Method::POST, path, Some(config(mirror.clone())))
        .await?;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("https://charts.jetstack.io")
            && message.contains("oci://public.ecr.aws/karpenter/"),
        "the error lists the allowed sources: {body}"
    );
    let (status, body) = pinned
        .admin(Method::POST, path, Some(config(jetstack.clone())))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The operator's own list replaces the catalog's.
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let sources = "https://charts.example.com".parse()?;
    let operator = Api::start_with(t, byoc_api::DEFAULT_RATE, RunLimits::DEFAULT, |s| {
        s.with_chart_sources(sources)
    })
    .await?;
    operator.tenant("acme").await?;
    let (status, body) = operator
        .admin(Method::POST, path, Some(config(mirror)))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = operator
        .admin(Method::POST, path, Some(config(jetstack)))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "components.cert_manager.repo", "{body}");
    Ok(())
}

#[tokio::test]
async fn per_token_rate_limit_and_metrics() -> anyhow::Result<()> {
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let api = Api::start_with(t, (1, 2), RunLimits::DEFAULT, |state| state).await?;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = api
            .client
            .get(format!("{}/api/v1/tenants", api.base))
            .bearer_auth(&api.admin)
            .send()
            .await?;
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = resp.headers()["retry-after"].to_str()?.parse()?;
            assert!(retry >= 1);
            let body: Value = resp.json().await?;
            assert_eq!(body["error"], "too_many_requests");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    // On the API's address, the figures need an admin token.
    let open = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await?;
    assert_eq!(open.status(), StatusCode::UNAUTHORIZED);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let metrics_base = format!("http://{}", listener.local_addr()?);
    let app = byoc_api::metrics_router(api.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let metrics = api
        .client
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for needle in [
        "byoc_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/tenants\",status=\"429\"",
        "byoc_queue_depth 0",
        "# TYPE byoc_runs gauge",
        "# TYPE byoc_run_duration_seconds histogram",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    Ok(())
}

/// Reads an SSE response until it ends; the kinds of its events (`event:` lines).
async fn sse_kinds(resp: reqwest::Response) -> anyhow::Result<Vec<String>> {
    let text = resp.text().await?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("event:"))
        .map(|k| k.trim().to_string())
        .collect())
}

/// Live streams are capped per token, end soon after their token is revoked, and end after
/// their maximum duration with a `reconnect` event.
#[tokio::test]
async fn event_streams_are_capped_and_end_when_their_token_is_revoked() -> anyhow::Result<()> {
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let limits = byoc_api::StreamLimits {
        per_token: 2,
        total: 3,
        max_duration: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        token_check: Duration::from_millis(100),
    };
    let api = Api::start_with(t, byoc_api::DEFAULT_RATE, RunLimits::DEFAULT, |s| {
        s.with_stream_limits(limits)
    })
    .await?;
    api.tenant("acme").await?;
    let (status, body) = api
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/verify",
            Some(json!({"region": "eu-west-1"})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let events = format!(
        "{}/api/v1/runs/{}/events",
        api.base,
        body["run_id"].as_str().unwrap()
    );
    let (secret, id) = tenant_token(&api, "acme watcher", "acme").await?;
    let open = |token: String| {
        let (client, url) = (api.client.clone(), events.clone());
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .header("accept", "text/event-stream")
                .send()
                .await
        }
    };
    let first = open(secret.clone()).await?;
    let second = open(secret.clone()).await?;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open(secret.clone()).await?;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS, "per token");
    let other = open(api.admin.clone()).await?;
    assert_eq!(other.status(), StatusCode::OK, "another token");
    let fourth = open(api.admin.clone()).await?;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS, "in all");

    let started = std::time::Instant::now();
    let (status, _) = api
        .admin(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    for resp in [first, second] {
        assert_eq!(
            sse_kinds(resp).await?.last().map(String::as_str),
            Some("revoked")
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The admin's stream outlives nothing: it ends at its maximum duration.
    assert_eq!(
        sse_kinds(other).await?.last().map(String::as_str),
        Some("reconnect")
    );
    // Streams that ended freed their slots.
    assert_eq!(open(api.admin.clone()).await?.status(), StatusCode::OK);
    Ok(())
}

/// A token created to expire authenticates until then, and nothing after.
#[tokio::test]
async fn tokens_can_expire() -> anyhow::Result<()> {
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let url = t.url().to_string();
    let api = Api::start(t).await?;
    for days in [0, 3651] {
        let body = json!({"name": "ci", "expires_in_days": days});
        let (status, error) = api
            .admin(Method::POST, "/api/v1/tokens", Some(body))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{days}: {error}");
        assert_eq!(error["field"], "expires_in_days");
    }
    let body = json!({"name": "ci", "expires_in_days": 30});
    let (status, created) = api
        .admin(Method::POST, "/api/v1/tokens", Some(body))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let in_30_days = created["token"]["expires_at"]
        .as_i64()
        .context("expires_at")?;
    let now = byoc_stacks::now_ms();
    assert!(
        (in_30_days - now - 30 * 86_400_000).abs() < 60_000,
        "{created}"
    );
    let secret = created["secret"].as_str().context("secret")?;
    let (status, _) = api
        .call(Method::GET, "/api/v1/tenants", Some(secret), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    let id = created["token"]["id"].as_str().context("id")?;
    exec(
        &url,
        &format!(
            "UPDATE api_tokens SET expires_at = {} WHERE id = '{id}'",
            now - 1
        ),
    )
    .await?;
    // Changed behind the API's back, as another host would: seen within the cache's bound.
    let (status, error) = refused_within(&api, secret, byoc_api::AUTH_CACHE_TTL).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{error}"
    );
    Ok(())
}

/// `GET /api/v1/tenants` with `token` until it is refused, for at most `bound` and a little
/// more (a request's own time): the first refusal.
async fn refused_within(
    api: &Api,
    token: &str,
    bound: Duration,
) -> anyhow::Result<(StatusCode, Value)> {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = api
            .call(Method::GET, "/api/v1/tenants", Some(token), None)
            .await?;
        // Until then a token whose tenant was deleted finds nothing (404): the cache keeps
        // the token, not the tenant.
        if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
            return Ok((status, body));
        }
        anyhow::ensure!(
            started.elapsed() < bound + Duration::from_millis(500),
            "still authenticates {:?} after it stopped being valid",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two API hosts on one database, each with its own authentication cache: a token revoked
/// through one stops working on it at once and on the other within the cache's time to live,
/// and so does a token deleted with its tenant; the cache keeps answering for live tokens.
#[tokio::test]
async fn a_revoked_token_stops_working_on_every_host_within_a_second() -> anyhow::Result<()> {
    for first in both().await? {
        let db = Database::connect(first._t.url()).await?;
        let (_tx, schema) = tokio::sync::watch::channel(SchemaState::Ready);
        std::mem::forget(_tx);
        let state = AppState::with_rate(db, schema, common::sealer(), byoc_api::DEFAULT_RATE);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app =
            byoc_api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Another host of the same database (the first keeps the database alive).
        let second = Api {
            base,
            admin: first.admin.clone(),
            client: reqwest::Client::new(),
            db: first.db.clone(),
            state: first.state.clone(),
            _t: TestDb::sqlite().await?,
        };

        first.tenant("acme").await?;
        first.tenant("gone").await?;
        let (secret, id) = tenant_token(&first, "acme ci", "acme").await?;
        let (doomed, _) = tenant_token(&first, "gone ci", "gone").await?;
        for api in [&first, &second] {
            for token in [&secret, &doomed] {
                let (status, body) = api
                    .call(Method::GET, "/api/v1/tenants", Some(token), None)
                    .await?;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }

        let (status, body) = first
            .admin(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = first
            .call(Method::GET, "/api/v1/tenants", Some(&secret), None)
            .await?;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "at once where it was revoked: {body}"
        );
        let (status, body) = refused_within(&second, &secret, byoc_api::AUTH_CACHE_TTL).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        for _ in 0..3 {
            let (status, _) = second
                .call(Method::GET, "/api/v1/tenants", Some(&secret), None)
                .await?;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "and from then on");
        }

        let (status, body) = first
            .admin(Method::DELETE, "/api/v1/tenants/gone", None)
            .await?;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = first
            .call(Method::GET, "/api/v1/tenants", Some(&doomed), None)
            .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "deleted with its tenant");
        let (status, _) = refused_within(&second, &doomed, byoc_api::AUTH_CACHE_TTL).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // The admin token, cached on both hosts the whole time, still works on both.
        for api in [&first, &second] {
            let (status, _) = api.admin(Method::GET, "/api/v1/tenants", None).await?;
            assert_eq!(status, StatusCode::OK);
        }
    }
    Ok(())
}

/// The status shows the last run's requester to a tenant token only when it is one of that
/// tenant's tokens (the provider's are `operator`), as the runs do.
#[tokio::test]
async fn the_status_shows_a_tenant_its_own_requesters_only() -> anyhow::Result<()> {
    for api in both().await? {
        api.tenant("acme").await?;
        api.trust("acme").await?;
        let env = "/api/v1/tenants/acme/environments/dev";
        let (status, body) = api
            .admin(Method::POST, &format!("{env}/config"), Some(config()))
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (own, own_id) = tenant_token(&api, "acme ci", "acme").await?;
        let (status, body) = api
            .call(Method::POST, &format!("{env}/preview"), Some(&own), None)
            .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (status, shown) = api
            .call(Method::GET, &format!("{env}/status"), Some(&own), None)
            .await?;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(
            shown["status"]["last_run"]["requested_by"],
            format!("token:{own_id} (acme ci)"),
            "{shown}"
        );
        let (status, body) = api
            .admin(Method::POST, &format!("{env}/refresh"), None)
            .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (_, shown) = api
            .call(Method::GET, &format!("{env}/status"), Some(&own), None)
            .await?;
        assert_eq!(
            shown["status"]["last_run"]["requested_by"], "operator",
            "{shown}"
        );
        let (_, shown) = api
            .admin(Method::GET, &format!("{env}/status"), None)
            .await?;
        assert!(
            shown["status"]["last_run"]["requested_by"]
                .as_str()
                .is_some_and(|by| by.starts_with("token:") && by.contains("test admin")),
            "an admin sees who asked: {shown}"
        );
    }
    Ok(())
}

/// A client presenting bad tokens is refused (429) before its tokens are looked up, and the
/// scheme is case-insensitive.
#[tokio::test]
async fn bad_tokens_are_limited_per_client_before_they_are_looked_up() -> anyhow::Result<()> {
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    // A token's rate (1 a second, bursts of 2) is a client's for bad tokens.
    let api = Api::start_with(t, (1, 2), RunLimits::DEFAULT, |state| state).await?;
    let path = "/api/v1/tenants";
    let mut statuses = Vec::new();
    for i in 0..4 {
        let token = format!("byoc_{i:016x}_guess");
        statuses.push(api.call(Method::GET, path, Some(&token), None).await?.0);
    }
    use StatusCode as S;
    let limited = [
        S::UNAUTHORIZED,
        S::UNAUTHORIZED,
        S::TOO_MANY_REQUESTS,
        S::TOO_MANY_REQUESTS,
    ];
    assert_eq!(statuses, limited);
    // Refused before the store is asked: even a valid token from that client waits.
    let (status, body) = api.admin(Method::GET, path, None).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // Another server, a lower-case scheme.
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let api = Api::start(t).await?;
    let resp = api
        .client
        .get(format!("{}{path}", api.base))
        .header("authorization", format!("bearer {}", api.admin))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn openapi_describes_every_route_and_docs_are_served() -> anyhow::Result<()> {
    let t = TestDb::sqlite().await?;
    migrate_url(t.url()).await?;
    let api = Api::start(t).await?;
    let spec: Value = api
        .client
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/api/v1/tenants",
        "/api/v1/tenants/{slug}",
        "/api/v1/tenants/{slug}/environments/{env}/config",
        "/api/v1/tenants/{slug}/environments/{env}/deploy",
        "/api/v1/tenants/{slug}/environments/{env}/status",
        "/api/v1/tenants/{slug}/environments/{env}/graph",
        "/api/v1/tenants/{slug}/environments/{env}/state/versions/{version}",
        "/api/v1/tenants/{slug}/environments/{env}/state/diff",
        "/api/v1/tenants/{slug}/environments/{env}/unlock",
        "/api/v1/runs/{id}/events",
        "/api/v1/tokens",
        "/api/v1/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI paths"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    // The new bodies are described field by field.
    let schemas = &spec["components"]["schemas"];
    for (schema, field) in [
        ("UnlockRequest", "force"),
        ("Unlocked", "new_generation"),
        ("StateVersionView", "resources"),
        ("StateDiff", "counts"),
        ("ResourceDiff", "physical_id_changed"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} missing: {}",
            schemas[schema]
        );
    }
    let docs = api.client.get(format!("{}/docs", api.base)).send().await?;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await?.contains("openapi"));
    Ok(())
}

/// A token scoped to `tenant`: (secret text, id).
async fn tenant_token(api: &Api, name: &str, tenant: &str) -> anyhow::Result<(String, String)> {
    let (status, body) = api
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": name, "tenant": tenant})),
        )
        .await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{body}");
    Ok((
        body["secret"].as_str().context("secret")?.to_string(),
        body["token"]["id"].as_str().context("id")?.to_string(),
    ))
}

/// Tenant `co1` with environment `prod-eu` and tenant `co1-prod` with environment `eu` would
/// both be stack `co1-prod-eu`: the second is refused, and on every route a tenant token sees
/// another tenant's objects exactly as objects that do not exist.
#[tokio::test]
async fn tenants_are_isolated_on_every_route() -> anyhow::Result<()> {
    for api in both().await? {
        api.tenant("co1").await?;
        api.tenant("co1-prod").await?;
        let (own, _) = tenant_token(&api, "co1 ci", "co1").await?;
        let (other, _) = tenant_token(&api, "co1-prod ci", "co1-prod").await?;
        let (revoked, revoked_id) = tenant_token(&api, "co1 old", "co1").await?;
        api.admin(
            Method::DELETE,
            &format!("/api/v1/tokens/{revoked_id}"),
            None,
        )
        .await?;
        let env = "/api/v1/tenants/co1/environments/prod-eu";
        let (status, body) = api
            .admin(Method::POST, &format!("{env}/config"), Some(config()))
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");

        // The colliding name: refused whoever asks, naming the clash but not the tenant.
        let clash = "/api/v1/tenants/co1-prod/environments/eu";
        for token in [other.as_str(), api.admin.as_str()] {
            let (status, body) = api
                .call(
                    Method::POST,
                    &format!("{clash}/config"),
                    Some(token),
                    Some(config()),
                )
                .await?;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["error"], "stack_name_taken", "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("co1-prod-eu"), "{message}");
            assert!(!message.contains("prod-eu\""), "{message}");
        }
        // Nothing of it was written, and nothing of co1 shows through the clashing path.
        for route in [
            "config",
            "status",
            "state",
            "runs",
            "state/history",
            "graph",
        ] {
            let (status, body) = api
                .call(Method::GET, &format!("{clash}/{route}"), Some(&other), None)
                .await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{route}: {body}");
        }
        let (_, shown) = api
            .call(Method::GET, "/api/v1/tenants/co1-prod", Some(&other), None)
            .await?;
        assert_eq!(shown["environments"], json!([]), "{shown}");

        api.trust("co1").await?;
        let (status, deploy) = api
            .admin(Method::POST, &format!("{env}/deploy"), None)
            .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{deploy}");
        let run = deploy["run_id"].as_str().unwrap().to_string();

        // (method, path, body, status for co1's own token, status for an admin), in an
        // order where each mutation leaves the next one meaningful.
        let s = |code: u16| StatusCode::from_u16(code).unwrap();
        let routes: Vec<(Method, String, Option<Value>, StatusCode, StatusCode)> = vec![
            (
                Method::GET,
                "/api/v1/tenants/co1".into(),
                None,
                s(200),
                s(200),
            ),
            (
                Method::GET,
                "/api/v1/tenants/co1/trust-template".into(),
                None,
                s(200),
                s(200),
            ),
            (Method::GET, format!("{env}/config"), None, s(200), s(200)),
            (Method::GET, format!("{env}/status"), None, s(200), s(200)),
            (Method::GET, format!("{env}/state"), None, s(200), s(200)),
            (Method::GET, format!("{env}/runs"), None, s(200), s(200)),
            (
                Method::GET,
                format!("{env}/state/history"),
                None,
                s(200),
                s(200),
            ),
            (Method::GET, format!("{env}/graph"), None, s(200), s(200)),
            (
                Method::GET,
                format!("{env}/state/versions/0"),
                None,
                s(200),
                s(200),
            ),
            (
                Method::GET,
                format!("{env}/state/diff?from=0&to=0"),
                None,
                s(200),
                s(200),
            ),
            // Admin only; nothing holds the lease here.
            (
                Method::POST,
                format!("{env}/unlock"),
                Some(json!({"force": true})),
                s(403),
                s(409),
            ),
            (
                Method::GET,
                format!("/api/v1/runs/{run}"),
                None,
                s(200),
                s(200),
            ),
            (
                Method::GET,
                format!("/api/v1/runs/{run}/events"),
                None,
                s(200),
                s(200),
            ),
            (
                Method::POST,
                format!("{env}/config"),
                Some(config()),
                s(200),
                s(200),
            ),
            (Method::POST, format!("{env}/preview"), None, s(202), s(202)),
            (Method::POST, format!("{env}/refresh"), None, s(202), s(202)),
            (Method::POST, format!("{env}/deploy"), None, s(202), s(202)),
            // The tenant's own token cancels the queued deploy; then it has finished.
            (
                Method::POST,
                format!("/api/v1/runs/{run}/cancel"),
                None,
                s(200),
                s(409),
            ),
            (
                Method::DELETE,
                format!("{env}/config"),
                None,
                s(409),
                s(409),
            ),
            (
                Method::POST,
                "/api/v1/tenants/co1/verify".into(),
                None,
                s(202),
                s(202),
            ),
            (Method::DELETE, env.to_string(), None, s(202), s(202)),
            (
                Method::POST,
                "/api/v1/tenants/co1/external-id/rotate".into(),
                None,
                s(403),
                s(200),
            ),
            (
                Method::DELETE,
                "/api/v1/tenants/co1".into(),
                None,
                s(403),
                s(409),
            ),
        ];
        let fake_run = "00000000-0000-4000-8000-000000000000";
        let missing = |path: &str| {
            path.replace("/tenants/co1/", "/tenants/nope1/")
                .replace(&run, fake_run)
                .replace("/tenants/co1", "/tenants/nope1")
        };
        let neutral = |m: &str| {
            m.replace("nope1", "X")
                .replace("co1", "X")
                .replace(fake_run, "R")
                .replace(&run, "R")
        };
        let (_, before) = api.admin(Method::GET, &format!("{env}/runs"), None).await?;
        for (method, path, body, _, _) in &routes {
            let (status, seen) = api
                .call(method.clone(), path, Some(&other), body.clone())
                .await?;
            let (_, absent) = api
                .call(method.clone(), &missing(path), Some(&other), body.clone())
                .await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {seen}");
            assert_eq!(seen["error"], absent["error"], "{method} {path}");
            assert_eq!(
                neutral(seen["message"].as_str().unwrap()),
                neutral(absent["message"].as_str().unwrap()),
                "{method} {path}: another tenant's object must look like a missing one"
            );
            for token in [Some(revoked.as_str()), None] {
                let (status, seen) = api.call(method.clone(), path, token, body.clone()).await?;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {seen}");
            }
        }
        // The live stream too.
        let sse = api
            .client
            .get(format!("{}/api/v1/runs/{run}/events", api.base))
            .bearer_auth(&other)
            .header("accept", "text/event-stream")
            .send()
            .await?;
        assert_eq!(sse.status(), StatusCode::NOT_FOUND);
        // None of that changed anything.
        let (_, after) = api.admin(Method::GET, &format!("{env}/runs"), None).await?;
        assert_eq!(before, after);

        // Admin-only collections: tenant tokens are refused, whatever tenant.
        for path in ["/api/v1/audit", "/api/v1/tokens"] {
            for token in [&own, &other] {
                let (status, _) = api.call(Method::GET, path, Some(token), None).await?;
                assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            }
            let (status, _) = api.call(Method::GET, path, Some(&revoked), None).await?;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            let (status, _) = api.admin(Method::GET, path, None).await?;
            assert_eq!(status, StatusCode::OK, "{path}");
        }

        // A tenant token never sees the provider's token ids or names.
        let admin_id = api.admin.split('_').nth(1).unwrap().to_string();
        for path in [
            format!("{env}/runs"),
            format!("{env}/status"),
            format!("/api/v1/runs/{run}"),
            format!("/api/v1/runs/{run}/events"),
        ] {
            let (_, body) = api.call(Method::GET, &path, Some(&own), None).await?;
            let text = body.to_string();
            assert!(
                !text.contains(&admin_id) && !text.contains("test admin"),
                "{path} shows the admin token to a tenant: {text}"
            );
        }
        let (_, shown) = api
            .call(
                Method::GET,
                &format!("/api/v1/runs/{run}"),
                Some(&own),
                None,
            )
            .await?;
        assert_eq!(shown["run"]["requested_by"], "operator", "{shown}");
        let (_, shown) = api
            .admin(Method::GET, &format!("/api/v1/runs/{run}"), None)
            .await?;
        assert!(
            shown["run"]["requested_by"]
                .as_str()
                .unwrap()
                .contains(&admin_id),
            "an admin sees who asked: {shown}"
        );

        // The tenant's own token and the admin get on with their work.
        for (caller, pick) in [(&own, 0), (&api.admin, 1)] {
            // Only the admin's rotation (second to last) leaves the tenant untrusted.
            for (method, path, body, own_status, admin_status) in &routes {
                let want = if pick == 0 {
                    *own_status
                } else {
                    *admin_status
                };
                let (status, seen) = api
                    .call(method.clone(), path, Some(caller), body.clone())
                    .await?;
                assert_eq!(
                    status,
                    want,
                    "{method} {path} as {}: {seen}",
                    ["own", "admin"][pick]
                );
            }
        }
    }
    Ok(())
}

/// On the run routes (issue 19): a request of any kind joins the queued run of its kind (202,
/// `coalesced`, the same run), one past the cap of unfinished runs is 429 `too_many_runs`
/// naming the cap, and cancelling a finished run is 409 naming how it ended.
#[tokio::test]
async fn run_requests_join_are_capped_and_finished_runs_stay_finished() -> anyhow::Result<()> {
    let limits = RunLimits {
        per_stack: 3,
        per_tenant: 100,
    };
    for api in both_limited(limits).await? {
        api.tenant("acme").await?;
        let env = "/api/v1/tenants/acme/environments/dev";
        api.admin(Method::POST, &format!("{env}/config"), Some(config()))
            .await?;
        api.trust("acme").await?;

        // The verification that made the tenant trusted has finished: nothing to cancel.
        let verified = api.db.runs_of("acme.trust").await?.remove(0);
        assert_eq!(verified.status, byoc_model::RunStatus::Succeeded);
        let cancel = format!("/api/v1/runs/{}/cancel", verified.id);
        api.refused(
            (Method::POST, &cancel),
            (StatusCode::CONFLICT, "conflict"),
            &["has already finished (succeeded)"],
        )
        .await?;

        // Each kind, asked for twice: one run.
        let verify = "/api/v1/tenants/acme/verify".to_string();
        for (method, path) in [
            (Method::POST, verify.clone()),
            (Method::DELETE, env.to_string()),
            (Method::POST, format!("{env}/preview")),
            (Method::POST, format!("{env}/refresh")),
        ] {
            let (status, first) = api.admin(method.clone(), &path, None).await?;
            assert_eq!(
                (status, &first["coalesced"]),
                (StatusCode::ACCEPTED, &json!(false)),
                "{method} {path}: {first}"
            );
            let (status, again) = api.admin(method.clone(), &path, None).await?;
            assert_eq!(status, StatusCode::ACCEPTED, "{again}");
            assert_eq!(
                (&again["run_id"], &again["coalesced"]),
                (&first["run_id"], &json!(true)),
                "{method} {path}"
            );
        }

        // The destroy, the preview and the refresh are the environment's cap.
        let deploy = format!("{env}/deploy");
        api.refused(
            (Method::POST, &deploy),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_runs"),
            &[
                "stack acme-dev has 3 unfinished runs",
                "the cap is 3 per stack",
            ],
        )
        .await?;
        // Joining the queued refresh adds nothing: still answered.
        let (status, joined) = api
            .admin(Method::POST, &format!("{env}/refresh"), None)
            .await?;
        assert_eq!(
            (status, &joined["coalesced"]),
            (StatusCode::ACCEPTED, &json!(true))
        );

        // A queued run cancelled is finished too.
        let (_, verifying) = api.admin(Method::POST, &verify, None).await?;
        let cancel = format!(
            "/api/v1/runs/{}/cancel",
            verifying["run_id"].as_str().unwrap()
        );
        let (status, cancelled) = api.admin(Method::POST, &cancel, None).await?;
        assert_eq!(
            (status, cancelled["run"]["status"].as_str()),
            (StatusCode::OK, Some("cancelled"))
        );
        api.refused(
            (Method::POST, &cancel),
            (StatusCode::CONFLICT, "conflict"),
            &["has already finished (cancelled)"],
        )
        .await?;
    }
    Ok(())
}

/// Server faults say nothing of their cause and carry the request id; an unreachable
/// database is 503 with Retry-After.
#[tokio::test]
async fn faults_are_honest_and_say_nothing_internal() -> anyhow::Result<()> {
    for api in both().await? {
        api.tenant("acme").await?;
        // A stored record that no longer parses (a hand edit, a bug): 500, not the caller's
        // fault, with the request id and no SQL or database URL.
        let sql = "UPDATE tenants SET labels = 'not json' WHERE slug = 'acme'";
        match api.db.pool() {
            byoc_stacks::Pool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ())?,
            byoc_stacks::Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ())?,
        }
        let resp = api
            .client
            .get(format!("{}/api/v1/tenants/acme", api.base))
            .bearer_auth(&api.admin)
            .send()
            .await?;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = resp.headers()["x-request-id"].to_str()?.to_string();
        let body: Value = resp.json().await?;
        assert_eq!(body["error"], "internal");
        assert_eq!(body["request_id"], id.as_str(), "{body}");
        let text = body.to_string();
        for secret in [
            "labels",
            "sqlite",
            "postgres",
            "127.0.0.1",
            "json",
            "SELECT",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // A missing run is 404; an unreachable database is not.
        let (status, _) = api
            .admin(
                Method::GET,
                "/api/v1/runs/00000000-0000-4000-8000-000000000000",
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        api.db.close().await;
        for path in [
            "/api/v1/runs/00000000-0000-4000-8000-000000000000",
            "/api/v1/tenants",
        ] {
            let resp = api
                .client
                .get(format!("{}{path}", api.base))
                .bearer_auth(&api.admin)
                .send()
                .await?;
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert!(resp.headers().contains_key("retry-after"), "{path}");
            let body: Value = resp.json().await?;
            let text = body.to_string();
            assert!(
                !text.contains("127.0.0.1") && !text.contains("sqlite"),
                "{text}"
            );
        }
    }
    Ok(())
}

/// Tenant `acme`, trusted, with environment `dev` and a deploy requested: its run id.
async fn deploy_requested(api: &Api) -> anyhow::Result<String> {
    api.tenant("acme").await?;
    let env = "/api/v1/tenants/acme/environments/dev";
    let (status, body) = api
        .admin(Method::POST, &format!("{env}/config"), Some(config()))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.trust("acme").await?;
    let (status, deploy) = api
        .admin(Method::POST, &format!("{env}/deploy"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{deploy}");
    Ok(deploy["run_id"].as_str().context("run_id")?.to_string())
}

/// `POST .../unlock`, like `terraform force-unlock`: admin only, refused while the lease is
/// live unless forced, 409 when nothing holds it, audited, and the holder fenced out.
#[tokio::test]
async fn force_unlock_is_admin_only_audited_and_fences_the_holder() -> anyhow::Result<()> {
    for api in both().await? {
        let run = deploy_requested(&api).await?;
        let env = "/api/v1/tenants/acme/environments/dev";
        let unlock = format!("{env}/unlock");
        // A worker runs the deploy: it holds the stack's lease.
        let byoc_stacks::Begin::Started(lease) = api
            .db
            .begin_run(&run, "worker-1", Duration::from_secs(60))
            .await?
        else {
            panic!("the deploy should start");
        };

        // A tenant token gets what it gets on every admin-only route.
        let (own, _) = tenant_token(&api, "acme ci", "acme").await?;
        let (status, body) = api
            .call(
                Method::POST,
                &unlock,
                Some(&own),
                Some(json!({"force": true})),
            )
            .await?;
        let (audit_status, audit_body) = api
            .call(Method::GET, "/api/v1/audit", Some(&own), None)
            .await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!((status, &body), (audit_status, &audit_body));

        // A live lease: refused without force, naming its holder and the way out.
        for body in [None, Some(json!({})), Some(json!({"force": false}))] {
            let (status, refused) = api.admin(Method::POST, &unlock, body).await?;
            assert_eq!(status, StatusCode::CONFLICT, "{refused}");
            let message = refused["message"].as_str().unwrap();
            assert!(
                message.contains("worker-1")
                    && message.contains("live")
                    && message.contains("force"),
                "{message}"
            );
        }
        // Bad bodies name the field.
        for (body, field) in [
            (json!({"force": "yes"}), "force"),
            (json!({"force": true, "holder": "x"}), ""),
        ] {
            let (status, refused) = api.admin(Method::POST, &unlock, Some(body)).await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
            if !field.is_empty() {
                assert_eq!(refused["field"], field, "{refused}");
            }
        }
        let (_, status_before) = api
            .admin(Method::GET, &format!("{env}/status"), None)
            .await?;
        assert_eq!(status_before["status"]["lease_holder"], "worker-1");

        // Forced: what was broken comes back.
        let (status, unlocked) = api
            .admin(Method::POST, &unlock, Some(json!({"force": true})))
            .await?;
        assert_eq!(status, StatusCode::OK, "{unlocked}");
        assert_eq!(unlocked["stack"], "acme-dev");
        assert_eq!(unlocked["holder"], "worker-1");
        assert_eq!(unlocked["generation"], lease.generation);
        assert_eq!(unlocked["new_generation"], lease.generation + 1);
        assert_eq!(unlocked["was_live"], true);
        assert_eq!(unlocked["run_id"], run.as_str());
        assert!(unlocked["expires_at"].as_i64().is_some(), "{unlocked}");
        let (_, after) = api
            .admin(Method::GET, &format!("{env}/status"), None)
            .await?;
        assert_eq!(after["status"]["lease_holder"], Value::Null, "{after}");
        assert_eq!(after["status"]["generation"], lease.generation + 1);
        // The old holder is fenced out.
        assert!(matches!(
            api.db.renew_lease(&lease, Duration::from_secs(60)).await,
            Err(byoc_stacks::DbError::Fenced(_))
        ));

        // Nothing holds the lease now: nothing to unlock.
        let (status, body) = api
            .admin(Method::POST, &unlock, Some(json!({"force": true})))
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("not locked"),
            "{body}"
        );

        // Audited once, with what was broken.
        let (_, audit) = api.admin(Method::GET, "/api/v1/audit", None).await?;
        let entries: Vec<&Value> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "stack.force_unlock")
            .collect();
        assert_eq!(entries.len(), 1, "{audit}");
        assert_eq!(entries[0]["target"], "acme-dev");
        assert_eq!(entries[0]["details"]["holder"], "worker-1");
        assert_eq!(entries[0]["details"]["force"], true);
        assert_eq!(entries[0]["details"]["run_id"], run.as_str());
        let admin_id = api.admin.split('_').nth(1).unwrap();
        assert!(entries[0]["actor"].as_str().unwrap().contains(admin_id));

        // What does not exist is 404 naming it.
        for (path, named) in [
            ("/api/v1/tenants/acme/environments/nope/unlock", "nope"),
            ("/api/v1/tenants/nope1/environments/dev/unlock", "nope1"),
        ] {
            let (status, body) = api.admin(Method::POST, path, None).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            assert!(body["message"].as_str().unwrap().contains(named), "{body}");
        }
    }
    Ok(())
}

/// The full state at every state version and the diff between two, through the API.
#[tokio::test]
async fn state_versions_and_diffs_are_readable() -> anyhow::Result<()> {
    for api in both().await? {
        let run = deploy_requested(&api).await?;
        let env = "/api/v1/tenants/acme/environments/dev";
        let url = api._t.url().to_string();
        let byoc_stacks::Begin::Started(lease) = api
            .db
            .begin_run(&run, "worker-1", Duration::from_secs(60))
            .await?
        else {
            panic!("the deploy should start");
        };
        // What the run's steps would have recorded, then its versions.
        let row = |key: &str, kind: &str, id: &str, inputs: &str, outputs: &str| {
            format!(
                "INSERT INTO resources (stack, key, kind, physical_id, inputs, outputs, depends_on, lifecycle, status, updated_at)
                 VALUES ('acme-dev', '{key}', '{kind}', '{id}', '{inputs}', '{outputs}', '[]', '{{}}', 'ready', 1)"
            )
        };
        exec(
            &url,
            &row(
                "vpc",
                "aws:ec2:Vpc",
                "vpc-1",
                r#"{"cidr": "10.0.0.0/16", "tags": {"team": "a"}}"#,
                r#"{"id": "vpc-1"}"#,
            ),
        )
        .await?;
        exec(
            &url,
            &row(
                "subnet",
                "aws:ec2:Subnet",
                "subnet-1",
                r#"{"cidr": "10.0.1.0/24"}"#,
                r#"{"id": "subnet-1"}"#,
            ),
        )
        .await?;
        let changes = json!([{"resource": "vpc", "action": "create"}, {"resource": "subnet", "action": "create"}]);
        assert_eq!(api.db.record_history(&run, &lease, &changes).await?, 1);
        exec(&url, r#"UPDATE resources SET inputs = '{"cidr": "10.0.0.0/16", "tags": {"team": "b"}}' WHERE key = 'vpc'"#).await?;
        exec(&url, "DELETE FROM resources WHERE key = 'subnet'").await?;
        exec(
            &url,
            &row(
                "nat",
                "aws:ec2:NatGateway",
                "nat-1",
                "{}",
                r#"{"id": "nat-1"}"#,
            ),
        )
        .await?;
        assert_eq!(api.db.record_history(&run, &lease, &json!([])).await?, 2);
        api.db
            .finish_run(&run, &lease, byoc_model::RunStatus::Succeeded, None, None)
            .await?;

        // The state at each version.
        let (status, v1) = api
            .admin(Method::GET, &format!("{env}/state/versions/1"), None)
            .await?;
        assert_eq!(status, StatusCode::OK, "{v1}");
        assert_eq!(v1["stack"], "acme-dev");
        assert_eq!(v1["version"], 1);
        assert_eq!(v1["run_id"], run.as_str());
        let keys = |v: &Value| -> Vec<String> {
            v["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["key"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(keys(&v1), ["subnet", "vpc"]);
        assert_eq!(v1["resources"][1]["inputs"]["tags"]["team"], "a");
        assert_eq!(v1["resources"][1]["outputs"]["id"], "vpc-1");
        assert_eq!(v1["resources"][1]["physical_id"], "vpc-1");
        assert_eq!(v1["resources"][1]["kind"], "aws:ec2:Vpc");
        assert_eq!(v1["resources"][1]["status"], "ready");
        let (_, v2) = api
            .admin(Method::GET, &format!("{env}/state/versions/2"), None)
            .await?;
        assert_eq!(keys(&v2), ["nat", "vpc"]);
        let (_, v0) = api
            .admin(Method::GET, &format!("{env}/state/versions/0"), None)
            .await?;
        assert_eq!(
            (v0["resources"].clone(), v0["run_id"].clone()),
            (json!([]), Value::Null)
        );
        // The current state is as it was.
        let (_, now) = api
            .admin(Method::GET, &format!("{env}/state"), None)
            .await?;
        assert_eq!(keys(&now), ["nat", "vpc"]);
        assert!(now.get("version").is_none(), "{now}");

        // A version that does not exist: 404 naming it; a bad one: 422 naming the parameter.
        let (status, body) = api
            .admin(Method::GET, &format!("{env}/state/versions/3"), None)
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("state version 3"),
            "{body}"
        );
        for bad in ["-1", "x", "1.5", "99999999999999999999"] {
            let (status, body) = api
                .admin(Method::GET, &format!("{env}/state/versions/{bad}"), None)
                .await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
            assert_eq!(body["field"], "version", "{body}");
        }

        // The diff.
        let (status, diff) = api
            .admin(Method::GET, &format!("{env}/state/diff?from=1&to=2"), None)
            .await?;
        assert_eq!(status, StatusCode::OK, "{diff}");
        assert_eq!(
            (diff["from"].clone(), diff["to"].clone()),
            (json!(1), json!(2))
        );
        assert_eq!(
            diff["counts"],
            json!({"added": 1, "removed": 1, "changed": 1, "unchanged": 0})
        );
        let by_key = |k: &str| {
            diff["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["key"] == k)
                .cloned()
                .unwrap()
        };
        assert_eq!(by_key("nat")["change"], "added");
        assert_eq!(by_key("subnet")["change"], "removed");
        assert_eq!(by_key("subnet")["old_physical_id"], "subnet-1");
        let vpc = by_key("vpc");
        assert_eq!(vpc["change"], "changed");
        assert_eq!(vpc["physical_id_changed"], false);
        assert_eq!(
            vpc["inputs"],
            json!([{"field": "tags.team", "old": "a", "new": "b"}])
        );
        assert_eq!(vpc["outputs"], json!([]));

        for (query, field) in [
            ("from=1", "to"),
            ("to=1", "from"),
            ("from=x&to=1", "from"),
            ("from=1&to=-2", "to"),
            ("from=1&to=2&at=3", "at"),
            ("from=1&from=2&to=2", "from"),
        ] {
            let (status, body) = api
                .admin(Method::GET, &format!("{env}/state/diff?{query}"), None)
                .await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
            assert_eq!(body["field"], field, "{query}: {body}");
        }
        let (status, body) = api
            .admin(Method::GET, &format!("{env}/state/diff?from=1&to=9"), None)
            .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("state version 9"),
            "{body}"
        );

        // The tenant's own token reads them; another tenant's sees nothing there.
        api.tenant("other").await?;
        let (own, _) = tenant_token(&api, "acme ci", "acme").await?;
        let (other, _) = tenant_token(&api, "other ci", "other").await?;
        for path in [
            format!("{env}/state/versions/1"),
            format!("{env}/state/diff?from=1&to=2"),
        ] {
            let (status, _) = api.call(Method::GET, &path, Some(&own), None).await?;
            assert_eq!(status, StatusCode::OK, "{path}");
            let (status, body) = api.call(Method::GET, &path, Some(&other), None).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
    }
    Ok(())
}

/// Day-2 changes are refused with a reason: a deployed environment's region, and a deploy of
/// a plan that is not a succeeded preview's.
#[tokio::test]
async fn day_two_changes_are_refused_with_reasons() -> anyhow::Result<()> {
    for api in both().await? {
        let run = deploy_requested(&api).await?;
        // Play the worker: the deploy starts (the stack now lives in us-east-1) and fails.
        let byoc_stacks::Begin::Started(lease) = api
            .db
            .begin_run(&run, "w1", Duration::from_secs(60))
            .await?
        else {
            panic!("the deploy starts");
        };
        api.db
            .finish_run(
                &run,
                &lease,
                byoc_model::RunStatus::Failed,
                Some("boom"),
                None,
            )
            .await?;
        let env = "/api/v1/tenants/acme/environments/dev";
        let moved = json!({"region": "eu-west-1", "eks_mode": "managed"});
        let (status, body) = api
            .admin(Method::POST, &format!("{env}/config"), Some(moved))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "region", "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("deployed in us-east-1") && message.contains("Destroy it first"),
            "{body}"
        );

        let deploy_path = format!("{env}/deploy");
        let deploy = |body: Value| api.admin(Method::POST, &deploy_path, Some(body));
        let (status, body) = deploy(json!({"plan_id": "not-a-run"})).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "plan_id", "{body}");
        let (status, body) = deploy(json!({"plan": run})).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = deploy(json!({"plan_id": run})).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("only a succeeded preview's plan")),
            "{body}"
        );
        let (status, body) =
            deploy(json!({"plan_id": "00000000-0000-4000-8000-000000000000"})).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    Ok(())
}
