//! A private Postgres server, for tests that stop and start the database under running
//! byoc processes without disturbing the shared one other tests use.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use tempfile::TempDir;

/// A Postgres server of the machine's installation, initialised in a temporary directory
/// and listening on a free port of 127.0.0.1 (trust authentication), stopped and removed
/// when dropped.
pub struct PostgresServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
}

impl PostgresServer {
    pub fn start() -> Result<PostgresServer> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("byoc-pg-").tempdir()?;
        // As root, the server runs as `postgres` (initdb refuses root), which must be able
        // to create the data directory in here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = PostgresServer { bin, dir, port };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        server.start_again()?;
        Ok(server)
    }

    /// A URL of database `postgres` on this server.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server: every connection is closed (`-m fast`), as in a restart for
    /// maintenance or a failover.
    pub fn stop(&self) -> Result<()> {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
    }

    pub fn start_again(&self) -> Result<()> {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        )
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let tool = self.bin.join(tool);
        // SAFETY: geteuid has no preconditions.
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            Command::new(&tool)
        };
        let out = cmd
            .args(args)
            .output()
            .with_context(|| format!("run {}", tool.display()))?;
        ensure!(
            out.status.success(),
            "{} {args:?} failed: {}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// Where the installation's server programs are: `pg_config --bindir`, else `PATH`.
fn bin_dir() -> Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        if dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| d.join("pg_ctl").exists() && d.join("initdb").exists())
        .context("no Postgres server programs (pg_ctl, initdb): install the postgresql package")
}
