use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Timing and fault knobs of the emulator; see `tools/emulator/emulator.py`.
#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    pub create_seconds: f64,
    /// How long an EKS update (a version or config update of a cluster or node group) runs;
    /// `None`: the emulator's default (the kind's create delay).
    pub update_seconds: Option<f64>,
    pub delete_seconds: f64,
    /// `"200"` (fixed) or `"50-300"` (uniform), in milliseconds.
    pub latency_ms: Option<String>,
    pub throttle_rate: f64,
    pub seed: Option<u64>,
    /// Evaluates IAM policies once [`Emulator::enforce_iam`] turns it on
    /// (`tools/emulator/iam_enforcement.py`: what it checks and what it cannot).
    pub iam_enforcement: bool,
}

/// A running emulator process. Dropping an owned one stops it by its pid; the shared one is
/// stopped when the test process exits, and the emulator also exits by itself if the test
/// process dies (`--exit-with-parent`).
pub struct Emulator {
    endpoint: String,
    child: Option<Child>,
}

static SHARED: OnceLock<Emulator> = OnceLock::new();
static SHARED_PID: AtomicU64 = AtomicU64::new(0);
static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(1);

extern "C" fn stop_shared() {
    let pid = SHARED_PID.load(Ordering::SeqCst);
    if pid != 0 {
        // SAFETY: plain syscall on the pid this process spawned.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}

impl Emulator {
    /// The emulator shared by all tests of this test binary, with no delays or faults.
    /// Tests isolate themselves with [`Emulator::fresh_account`].
    pub fn shared() -> &'static Emulator {
        SHARED.get_or_init(|| {
            let mut emulator =
                Emulator::start(&EmulatorOptions::default()).expect("start the shared emulator");
            let child = emulator.child.take().expect("a freshly started emulator");
            SHARED_PID.store(u64::from(child.id()), Ordering::SeqCst);
            // SAFETY: registers a plain extern "C" function with no captured state.
            unsafe { libc::atexit(stop_shared) };
            std::mem::forget(child);
            emulator
        })
    }

    /// A private emulator with the given knobs, stopped when dropped.
    pub fn start(opts: &EmulatorOptions) -> Result<Emulator> {
        let root = crate::workspace_root();
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            bail!(
                "{} is missing: run tools/setup.sh to create the pinned Python venv",
                python.display()
            );
        }
        let mut cmd = Command::new(&python);
        cmd.arg(root.join("tools/emulator/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-with-parent"])
            .arg(format!("--create-seconds={}", opts.create_seconds))
            .arg(format!("--delete-seconds={}", opts.delete_seconds))
            .arg(format!("--throttle-rate={}", opts.throttle_rate))
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(latency) = &opts.latency_ms {
            cmd.arg(format!("--latency-ms={latency}"));
        }
        if let Some(update) = opts.update_seconds {
            cmd.arg(format!("--update-seconds={update}"));
        }
        if let Some(seed) = opts.seed {
            cmd.arg(format!("--seed={seed}"));
        }
        if opts.iam_enforcement {
            cmd.arg("--iam-enforcement");
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", python.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("read the emulator's first line")?;
        let Some(endpoint) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("emulator did not start (first line: {line:?})");
        };
        let emulator = Emulator {
            endpoint: endpoint.to_string(),
            child: Some(child),
        };
        emulator.control("GET", "/_emulator/config", None)?;
        Ok(emulator)
    }

    /// The emulator's process id (of a private one), e.g. to read its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Base URL to give the AWS SDK as its endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A 12-digit AWS account id not handed out before in this test process. The process id is
    /// part of it so that test binaries sharing an emulator cannot collide either.
    pub fn fresh_account(&self) -> String {
        let n = NEXT_ACCOUNT.fetch_add(1, Ordering::SeqCst);
        format!("{:06}{:06}", std::process::id() % 1_000_000, n)
    }

    /// Forgets every resource in every account (moto's `POST /moto-api/reset`).
    pub fn reset(&self) -> Result<()> {
        self.control("POST", "/moto-api/reset", None).map(drop)
    }

    /// Changes knobs while running, e.g. `{"throttle_rate": 0.2}`.
    pub fn configure(&self, knobs: &str) -> Result<String> {
        self.control("POST", "/_emulator/config", Some(knobs))
    }

    /// The last AWS requests of `service` (e.g. `"eks"`, `"sts"`) as JSON:
    /// `{"requests": [{"service", "method", "path", "body"}]}`.
    pub fn requests(&self, service: &str) -> Result<String> {
        self.control(
            "GET",
            &format!("/_emulator/requests?service={service}"),
            None,
        )
    }

    /// The IAM actions (`"ec2:CreateVpc"`) of the requests made in `account` by sessions of
    /// role `role`, as JSON: `{"actions": {"ec2:CreateVpc": 1, ...}}`.
    pub fn actions(&self, account: &str, role: &str) -> Result<String> {
        self.control(
            "GET",
            &format!("/_emulator/actions?account={account}&role={role}"),
            None,
        )
    }

    /// Turns IAM enforcement on or off (an emulator started with
    /// `EmulatorOptions::iam_enforcement`): while on, every request must be signed by an IAM
    /// user's or an assumed role's keys whose policies allow it.
    pub fn enforce_iam(&self, on: bool) -> Result<()> {
        self.configure(&format!(r#"{{"enforce_iam": {on}}}"#))
            .map(drop)
    }

    /// Requests served and requests throttled so far, as JSON.
    pub fn stats(&self) -> Result<String> {
        self.control("GET", "/_emulator/stats", None)
    }

    /// Launches the customer trust template in `account` as the customer would
    /// (`tools/emulator/launch_trust_stack.py`): stack `byoc-trust` in us-east-1, trusting
    /// moto's default account. `extra` passes more flags, e.g. `["--template-version",
    /// "0.9.0"]`. Returns the script's JSON (stack, status, outputs).
    pub fn launch_trust_stack(
        &self,
        account: &str,
        external_id: &str,
        extra: &[&str],
    ) -> Result<String> {
        let root = crate::workspace_root();
        let out = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tools/emulator/launch_trust_stack.py"))
            .args(["--endpoint", &self.endpoint, "--account", account])
            .args(["--external-id", external_id])
            .args(extra)
            .output()
            .context("run launch_trust_stack.py")?;
        if !out.status.success() {
            bail!(
                "launch_trust_stack.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// A minimal blocking HTTP/1.0 client for the control endpoints, so the harness needs no
    /// async runtime of its own.
    fn control(&self, method: &str, path: &str, body: Option<&str>) -> Result<String> {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.lines().next().unwrap_or_default();
        if !status.contains(" 200 ") {
            bail!("{method} {path}: {status}: {body}");
        }
        Ok(body.to_string())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
