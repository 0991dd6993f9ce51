//! schemathesis (pinned in tools/emulator/requirements.txt) against `/openapi.json` of a
//! real `byoc serve`: generated requests for every operation, no 5xx, and every response
//! matches the schema.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use byoc_testkit::{TestDb, workspace_root};

const ADMIN: &str =
    "byoc_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn generated_requests_get_no_5xx_and_schema_conforming_responses() -> anyhow::Result<()> {
    let st = workspace_root().join(".venv/bin/schemathesis");
    if !st.exists() {
        bail!("{} is missing: run tools/setup.sh", st.display());
    }
    let t = TestDb::sqlite().await?;
    let scratch = tempfile::tempdir()?;
    let mut server = Command::new(env!("CARGO_BIN_EXE_byoc"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-workers"])
        .env("BYOC_DATABASE_URL", t.url())
        .env_remove("BYOC_SECRET_KEY")
        .env("BYOC_ADMIN_TOKEN", ADMIN)
        .env("BYOC_API_RATE", "100000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("stdout")?).read_line(&mut line)?;
    let base = line
        .strip_prefix("byoc listening on ")
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_string();
    for _ in 0..200 {
        if reqwest::get(format!("{base}/readyz"))
            .await?
            .status()
            .is_success()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = Command::new(&st)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--max-examples", "20", "--seed", "1"])
        // Its example database and reports go to a scratch directory, not the checkout.
        .current_dir(scratch.path())
        .output()?;
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    Ok(())
}
