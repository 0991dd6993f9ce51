//! byoc's own processes (`byoc serve`, `byoc worker`) as children of a test, set up the way
//! an operator would run them against the emulator.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The admin token the processes register (`BYOC_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str =
    "byoc_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The sealing key of Postgres deployments (`BYOC_SECRET_KEY`); on SQLite the key file
/// beside the database is used, as in a default install.
pub const SECRET_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

/// A `byoc` child process, killed when dropped.
pub struct ByocProcess {
    child: Child,
    url: Option<String>,
}

impl ByocProcess {
    /// `bin ARGS` on `database_url`, with the platform's credentials those of moto's default
    /// account and, given an emulator endpoint, every AWS call going there. Add arguments
    /// and environment, then [`ByocProcess::spawn`] or [`ByocProcess::serve`] it.
    pub fn command(bin: &Path, database_url: &str, emulator: Option<&str>) -> Command {
        let mut cmd = Command::new(bin);
        cmd.env("BYOC_DATABASE_URL", database_url)
            .env("BYOC_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("AWS_ACCESS_KEY_ID", "AKIADEFAULTACCOUNT01")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if database_url.starts_with("postgres") {
            cmd.env("BYOC_SECRET_KEY", SECRET_KEY);
        } else {
            cmd.env_remove("BYOC_SECRET_KEY");
        }
        if let Some(endpoint) = emulator {
            cmd.env("BYOC_AWS_ENDPOINT_URL", endpoint);
            // The emulator's readiness delays are seconds where AWS's are minutes.
            cmd.env("BYOC_AWS_WAIT_SCALE", "0.001");
        }
        cmd
    }

    pub fn spawn(mut cmd: Command) -> Result<ByocProcess> {
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
        Ok(ByocProcess { child, url: None })
    }

    /// Spawns a `byoc serve ... --listen 127.0.0.1:0` command and waits for the line that
    /// says where it listens.
    pub fn serve(mut cmd: Command) -> Result<ByocProcess> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let Some(rest) = line.strip_prefix("byoc listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("byoc serve did not start (first line: {line:?})");
        };
        let url = rest.split_whitespace().next().context("address")?;
        Ok(ByocProcess {
            url: Some(url.to_string()),
            child,
        })
    }

    /// The base URL of a serving process.
    pub fn url(&self) -> &str {
        self.url.as_deref().expect("a process started with serve")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: a graceful stop.
    pub fn terminate(&self) {
        // SAFETY: a plain syscall on the pid of our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// SIGKILL, as a crash: nothing flushed, nothing released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(start.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ByocProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
