//! `byoc serve` as a real process: health, readiness and shutdown.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use byoc_testkit::{ByocProcess, TestDb};
use serde_json::Value;

/// A `byoc serve` child process, killed when dropped.
struct Server {
    process: ByocProcess,
    base: String,
}

impl Server {
    fn start(database_url: &str) -> anyhow::Result<Server> {
        Server::start_with(database_url, &[])
    }

    fn start_with(database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let mut cmd =
            ByocProcess::command(Path::new(env!("CARGO_BIN_EXE_byoc")), database_url, None);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied());
        let process = ByocProcess::serve(cmd)?;
        Ok(Server {
            base: process.url().to_string(),
            process,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let resp = reqwest::get(format!("{}{path}", self.base)).await?;
        Ok((resp.status().as_u16(), resp.json().await?))
    }

    /// Polls /readyz until it answers 200.
    async fn until_ready(&self) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            let (status, body) = self.get("/readyz").await?;
            if status == 200 {
                return Ok(body);
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("not ready after 20s: {status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn healthy_and_ready_on_sqlite() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let server = Server::start(db.url())?;
    assert_eq!(
        server.get("/healthz").await?,
        (200, serde_json::json!({"status": "ok"}))
    );
    assert_eq!(
        server.until_ready().await?,
        serde_json::json!({"status": "ready"})
    );
    Ok(())
}

#[tokio::test]
async fn ready_on_postgres() -> anyhow::Result<()> {
    let db = TestDb::postgres("empty", |_| async { Ok(()) }).await?;
    let server = Server::start(db.url())?;
    server.until_ready().await?;
    Ok(())
}

#[tokio::test]
async fn not_ready_while_the_database_is_unreachable() -> anyhow::Result<()> {
    // Nothing listens on port 1: the server still starts, and says why it is not ready.
    let server = Server::start("postgres://byoc:hunter2@127.0.0.1:1/byoc")?;
    assert_eq!(server.get("/healthz").await?.0, 200);
    let (status, body) = server.get("/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "not_ready");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("unreachable"), "{message}");
    // The database's address and credentials are for the logs, not for any caller.
    assert!(!message.contains("127.0.0.1"), "address leaked: {message}");
    assert!(!message.contains("hunter2"), "password leaked: {message}");
    Ok(())
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let mut server = Server::start(db.url())?;
    server.until_ready().await?;
    server.process.terminate();
    let status = server.process.wait_exit(Duration::from_secs(30))?;
    assert!(status.success(), "exit status {status}");
    Ok(())
}

#[tokio::test]
async fn migrate_up_down_status() -> anyhow::Result<()> {
    let db = TestDb::sqlite().await?;
    let byoc = |action: &str| {
        Command::new(env!("CARGO_BIN_EXE_byoc"))
            .args(["migrate", action, "--database-url", db.url()])
            .output()
    };
    let status = String::from_utf8(byoc("status")?.stdout)?;
    assert!(
        status.lines().all(|l| l.contains("pending")) && status.contains("core"),
        "{status}"
    );
    assert!(byoc("up")?.status.success());
    let status = String::from_utf8(byoc("status")?.stdout)?;
    assert!(status.lines().all(|l| l.contains("applied")), "{status}");
    // `down` reverts the latest migration, the last one listed.
    let latest = status
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let down = String::from_utf8(byoc("down")?.stdout)?;
    assert!(
        down.contains(&format!("reverted migration {latest}")),
        "{latest}: {down}"
    );
    let status = String::from_utf8(byoc("status")?.stdout)?;
    assert!(
        status.lines().last().unwrap().contains("pending"),
        "{status}"
    );
    Ok(())
}

#[test]
fn version_and_help() -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_byoc"))
        .arg("--version")
        .output()?;
    assert_eq!(
        String::from_utf8(out.stdout)?.trim(),
        format!("byoc {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_byoc"))
        .arg("--help")
        .output()?;
    let help = String::from_utf8(out.stdout)?;
    assert!(help.contains("serve") && help.contains("migrate"), "{help}");

    let out = Command::new(env!("CARGO_BIN_EXE_byoc"))
        .args(["serve", "--database-url", "postgres://127.0.0.1:1/x"])
        .env_remove("BYOC_SECRET_KEY")
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("BYOC_SECRET_KEY (64 hex digits) is required with Postgres"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_byoc"))
        .args(["serve", "--database-url", "mysql://x"])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("unsupported database URL"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_configured_platform_account_reaches_the_trust_template() -> anyhow::Result<()> {
    let admin = format!("byoc_{}_{}", "0".repeat(16), "1".repeat(64));
    let db = TestDb::sqlite().await?;
    // No workers to ask STS: the API knows the account from config alone.
    let server = Server::start_with(
        db.url(),
        &[
            ("BYOC_NO_WORKERS", "true"),
            ("BYOC_PLATFORM_ACCOUNT_ID", "210987654321"),
            ("BYOC_ADMIN_TOKEN", &admin),
        ],
    )?;
    server.until_ready().await?;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/tenants", server.base))
        .bearer_auth(&admin)
        .json(
            &serde_json::json!({"slug": "acme", "name": "Acme", "aws_account_id": "111111111111"}),
        )
        .send()
        .await?;
    assert_eq!(created.status().as_u16(), 201);
    let trust: Value = client
        .get(format!(
            "{}/api/v1/tenants/acme/trust-template",
            server.base
        ))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        trust["parameters"]["TrustedAccountId"], "210987654321",
        "{trust}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_byoc"))
        .args(["serve", "--platform-account-id", "12"])
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("--platform-account-id") && stderr.contains("12 digits"),
        "{stderr}"
    );
    Ok(())
}
