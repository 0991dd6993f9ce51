//! Scheduled drift checks seen through the API, on SQLite and on Postgres: the config's
//! `drift_check`, the status's last check and next due time, and the drifted-environments
//! metric. No worker runs here: the test plays its part in the store.

mod common;

use std::time::Duration;

use byoc_model::{RunKind, RunStatus, StackName};
use byoc_stacks::{Begin, Database};
use byoc_testkit::databases;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Plays the worker: runs `run_id` to `status` with `summary`.
async fn finish(db: &Database, run_id: &str, summary: Option<Value>) -> anyhow::Result<()> {
    let Begin::Started(lease) = db
        .begin_run(run_id, "test-worker", Duration::from_secs(60))
        .await?
    else {
        anyhow::bail!("run {run_id} did not start");
    };
    db.finish_run(run_id, &lease, RunStatus::Succeeded, None, summary.as_ref())
        .await?;
    Ok(())
}

async fn drifted_metric(base: &str, admin: &str) -> anyhow::Result<String> {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(admin)
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("byoc_environments_drifted "))
        .unwrap_or("missing")
        .to_string())
}

#[tokio::test]
async fn status_shows_the_schedule_the_last_check_and_the_metric_counts_drift() -> anyhow::Result<()>
{
    for (_t, db) in databases().await? {
        let (_, admin) = db.create_token("test admin", None, "test").await?;
        let base = common::serve(db.clone(), Some("us-east-1")).await?;
        let (status, body) = call(
            &base,
            &admin,
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"name": "Acme", "slug": "acme", "aws_account_id": "111111111111"})),
        )
        .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let env = "/api/v1/tenants/acme/environments/dev";

        // The period's bounds are checked, and named.
        for every in [0, 4, 10_081] {
            let bad = json!({"drift_check": {"every_minutes": every}});
            let (status, error) = call(
                &base,
                &admin,
                Method::POST,
                &format!("{env}/config"),
                Some(bad),
            )
            .await?;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
            assert_eq!(error["field"], "drift_check.every_minutes", "{error}");
        }
        // Without `drift_check`, the effective config has none (stored configs stay as they were).
        let (status, saved) = call(
            &base,
            &admin,
            Method::POST,
            &format!("{env}/config"),
            Some(json!({})),
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert!(saved["config"].get("drift_check").is_none(), "{saved}");
        let (_, shown) = call(&base, &admin, Method::GET, &format!("{env}/status"), None).await?;
        assert_eq!(shown["drift_schedule"], Value::Null, "{shown}");

        let scheduled = json!({"drift_check": {"every_minutes": 60, "repair": true}});
        let (status, saved) = call(
            &base,
            &admin,
            Method::POST,
            &format!("{env}/config"),
            Some(scheduled),
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(
            saved["config"]["drift_check"],
            json!({"enabled": true, "every_minutes": 60, "repair": true})
        );

        // Deployed, then checked by the schedule, which finds the NAT gateway gone.
        let stack: StackName = "acme-dev".parse()?;
        let (deploy, _) = db.request_run("acme-dev", RunKind::Deploy, "alice").await?;
        finish(&db, deploy.id.as_str(), None).await?;
        let (_, shown) = call(&base, &admin, Method::GET, &format!("{env}/status"), None).await?;
        let schedule = &shown["drift_schedule"];
        assert_eq!(
            (
                &schedule["every_minutes"],
                &schedule["repair"],
                &schedule["source"]
            ),
            (&json!(60), &json!(true), &json!("environment")),
            "{shown}"
        );
        let now = byoc_stacks::now_ms();
        let due = schedule["next_due_at"].as_i64().unwrap();
        assert!(now - 3_600_000 < due && due <= now, "due now: {shown}");
        assert_eq!(shown["drift"], Value::Null);
        assert_eq!(
            drifted_metric(&base, &admin).await?,
            "byoc_environments_drifted 0"
        );

        let check = db
            .request_scheduled_run(&stack, RunKind::Refresh, due, "schedule")
            .await?
            .unwrap();
        let found =
            json!({"drift": [{"resource": "nat", "kind": "aws:NatGateway", "drift": "deleted"}]});
        finish(&db, check.id.as_str(), Some(found.clone())).await?;
        let (_, shown) = call(&base, &admin, Method::GET, &format!("{env}/status"), None).await?;
        let drift = &shown["drift"];
        assert_eq!(drift["run_id"], check.id.as_str(), "{shown}");
        assert!(drift["checked_at"].as_i64().is_some());
        assert_eq!(
            (&drift["drifted"], &drift["scheduled"]),
            (&json!(1), &json!(true))
        );
        assert_eq!(drift["drift"], found["drift"]);
        assert_eq!(
            shown["drift_schedule"]["next_due_at"].as_i64(),
            Some(due + 3_600_000),
            "the next slot: {shown}"
        );
        assert_eq!(
            drifted_metric(&base, &admin).await?,
            "byoc_environments_drifted 1"
        );

        // A deploy repairs it.
        let (repair, _) = db
            .request_run("acme-dev", RunKind::Deploy, "schedule")
            .await?;
        finish(&db, repair.id.as_str(), None).await?;
        assert_eq!(
            drifted_metric(&base, &admin).await?,
            "byoc_environments_drifted 0"
        );
    }
    Ok(())
}
