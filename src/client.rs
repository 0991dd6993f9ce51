//! The client commands: the HTTP API from a terminal. `--output json` prints the API's own
//! JSON; `table` (the default) prints aligned columns.

use std::time::Duration;

use anyhow::{Context, bail};
use std::io::IsTerminal;

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(clap::Args, Clone)]
pub struct Conn {
    /// The byoc server.
    #[arg(
        long,
        env = "BYOC_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// An API token (`byoc_...`).
    #[arg(long, env = "BYOC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Subcommand)]
pub enum TenantCmd {
    /// Create a tenant; its external id is shown this once.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        account: String,
        /// KEY=VALUE, repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    List,
    Show {
        slug: String,
    },
    Delete {
        slug: String,
    },
    RotateExternalId {
        slug: String,
    },
    /// The trust template to give the customer, with the parameters to launch it with.
    TrustTemplate {
        slug: String,
        /// Write the template (YAML) here instead of printing the launch details.
        #[arg(short = 'o', long = "output-file")]
        file: Option<std::path::PathBuf>,
    },
    /// Check that the tenant's account trusts byoc: a worker assumes the tenant's role and
    /// reads the trust stack. Fails unless the tenant ends up trusted.
    Verify {
        slug: String,
        /// The region the customer launched the trust stack in (default: as recorded, at
        /// first the workers' region).
        #[arg(long)]
        region: Option<String>,
        /// The trust stack's name (default: as recorded, at first `byoc-trust`).
        #[arg(long)]
        stack_name: Option<String>,
    },
}

#[derive(clap::Subcommand)]
pub enum EnvCmd {
    /// An environment's config.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(clap::Subcommand)]
pub enum ConfigCmd {
    /// Save a config from a YAML or JSON file.
    Set {
        slug: String,
        env: String,
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
    },
    Show {
        slug: String,
        env: String,
    },
    Delete {
        slug: String,
        env: String,
    },
}

#[derive(clap::Subcommand)]
pub enum RunsCmd {
    List { slug: String, env: String },
    Show { run: String },
    Cancel { run: String },
}

#[derive(clap::Subcommand)]
pub enum StackCmd {
    /// Every recorded resource of a tenant's environment.
    Show { slug: String, env: String },
    /// The environment's state versions.
    History { slug: String, env: String },
    /// The environment's resources and dependencies.
    Graph {
        slug: String,
        env: String,
        #[arg(long, value_parser = ["mermaid", "dot", "json"], default_value = "mermaid")]
        format: String,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token; its secret is shown this once.
    Create {
        name: String,
        /// Scope it to one tenant (default: an admin token).
        #[arg(long)]
        tenant: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

pub struct Client {
    conn: Conn,
    http: reqwest::Client,
}

impl Client {
    pub fn new(conn: Conn) -> Client {
        Client {
            conn,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.conn.url.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.conn.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or("no message");
            let field = value["field"]
                .as_str()
                .map(|f| format!(" (field {f})"))
                .unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED {
                bail!("{status}: {message}: set BYOC_TOKEN or --token");
            }
            bail!("{status}: {message}{field}");
        }
        Ok(value)
    }

    fn print(&self, value: &Value, table: impl FnOnce(&Value) -> Vec<Vec<String>>) {
        match self.conn.output {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).expect("JSON prints")
            ),
            Output::Table => print_table(&table(value)),
        }
    }

    pub async fn tenant(&self, cmd: TenantCmd) -> anyhow::Result<()> {
        match cmd {
            TenantCmd::Create {
                slug,
                name,
                account,
                labels,
            } => {
                let labels = labels
                    .iter()
                    .map(|l| {
                        l.split_once('=')
                            .map(|(k, v)| (k.to_string(), json!(v)))
                            .with_context(|| format!("label {l:?} is not KEY=VALUE"))
                    })
                    .collect::<anyhow::Result<serde_json::Map<_, _>>>()?;
                let body = json!({"slug": slug, "name": name, "aws_account_id": account, "labels": labels});
                let v = self
                    .call(Method::POST, "/api/v1/tenants", Some(body))
                    .await?;
                self.print(&v, |v| {
                    vec![
                        vec!["slug".into(), text(&v["tenant"]["slug"])],
                        vec!["account".into(), text(&v["tenant"]["aws_account_id"])],
                        vec!["external id (shown once)".into(), text(&v["external_id"])],
                        vec!["trust role".into(), text(&v["trust"]["role_name"])],
                    ]
                });
            }
            TenantCmd::List => {
                let v = self
                    .call(Method::GET, "/api/v1/tenants?limit=500", None)
                    .await?;
                self.print(&v, |v| {
                    let mut rows = vec![cols(&["SLUG", "NAME", "ACCOUNT", "ONBOARDING"])];
                    for t in v["tenants"].as_array().into_iter().flatten() {
                        rows.push(vec![
                            text(&t["slug"]),
                            text(&t["name"]),
                            text(&t["aws_account_id"]),
                            text(&t["onboarding_status"]),
                        ]);
                    }
                    rows
                });
            }
            TenantCmd::Show { slug } => {
                let v = self
                    .call(Method::GET, &format!("/api/v1/tenants/{slug}"), None)
                    .await?;
                self.print(&v, |v| {
                    let t = &v["tenant"];
                    vec![
                        vec!["slug".into(), text(&t["slug"])],
                        vec!["name".into(), text(&t["name"])],
                        vec!["account".into(), text(&t["aws_account_id"])],
                        vec!["onboarding".into(), text(&t["onboarding_status"])],
                        vec!["onboarding message".into(), text(&t["onboarding_message"])],
                        vec![
                            "trust stack".into(),
                            format!(
                                "{} in {}",
                                text(&t["trust_stack_name"]),
                                t["trust_region"].as_str().unwrap_or("the workers' region")
                            ),
                        ],
                        vec!["trust template".into(), text(&t["trust_template_version"])],
                        vec![
                            "environments".into(),
                            v["environments"]
                                .as_array()
                                .map(|e| e.iter().map(text).collect::<Vec<_>>().join(", "))
                                .unwrap_or_default(),
                        ],
                    ]
                });
            }
            TenantCmd::Delete { slug } => {
                self.call(Method::DELETE, &format!("/api/v1/tenants/{slug}"), None)
                    .await?;
                println!("tenant {slug} deleted");
            }
            TenantCmd::RotateExternalId { slug } => {
                let v = self
                    .call(
                        Method::POST,
                        &format!("/api/v1/tenants/{slug}/external-id/rotate"),
                        None,
                    )
                    .await?;
                self.print(&v, |v| {
                    vec![vec![
                        "new external id (shown once)".into(),
                        text(&v["external_id"]),
                    ]]
                });
            }
            TenantCmd::TrustTemplate { slug, file } => {
                let v = self
                    .call(
                        Method::GET,
                        &format!("/api/v1/tenants/{slug}/trust-template"),
                        None,
                    )
                    .await?;
                if let Some(file) = file {
                    std::fs::write(&file, text(&v["template"]))
                        .with_context(|| format!("write {}", file.display()))?;
                    println!("trust template written to {}", file.display());
                    return Ok(());
                }
                self.print(&v, |v| {
                    let p = &v["parameters"];
                    vec![
                        vec!["account".into(), text(&v["account_id"])],
                        vec!["stack name".into(), text(&v["stack_name"])],
                        vec!["template version".into(), text(&v["template_version"])],
                        vec!["TrustedAccountId".into(), text(&p["TrustedAccountId"])],
                        vec!["RoleName".into(), text(&p["RoleName"])],
                        vec!["ExternalId".into(), text(&p["ExternalId"])],
                        vec!["quick-create link".into(), text(&v["quick_create_url"])],
                    ]
                });
            }
            TenantCmd::Verify {
                slug,
                region,
                stack_name,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(region) = region {
                    body.insert("region".into(), json!(region));
                }
                if let Some(name) = stack_name {
                    body.insert("stack_name".into(), json!(name));
                }
                let v = self
                    .call(
                        Method::POST,
                        &format!("/api/v1/tenants/{slug}/verify"),
                        Some(Value::Object(body)),
                    )
                    .await?;
                let run = self.finished(&text(&v["run_id"])).await?;
                let v = self
                    .call(Method::GET, &format!("/api/v1/tenants/{slug}"), None)
                    .await?;
                let t = &v["tenant"];
                if run["run"]["status"] != "succeeded" {
                    bail!(
                        "tenant {slug} is not trusted ({}): {}",
                        text(&t["onboarding_status"]),
                        text(&run["run"]["error"])
                    );
                }
                self.print(&v, |v| {
                    let t = &v["tenant"];
                    vec![
                        vec!["onboarding".into(), text(&t["onboarding_status"])],
                        vec!["message".into(), text(&t["onboarding_message"])],
                    ]
                });
            }
        }
        Ok(())
    }

    /// Waits for a run to end; returns it as `GET /runs/{id}` shows it.
    async fn finished(&self, run: &str) -> anyhow::Result<Value> {
        loop {
            let shown = self
                .call(Method::GET, &format!("/api/v1/runs/{run}"), None)
                .await?;
            if matches!(
                shown["run"]["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return Ok(shown);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn env(&self, cmd: EnvCmd) -> anyhow::Result<()> {
        let EnvCmd::Config(cmd) = cmd;
        match cmd {
            ConfigCmd::Set { slug, env, file } => {
                let source = std::fs::read_to_string(&file)
                    .with_context(|| format!("read {}", file.display()))?;
                // YAML is a superset of JSON: one parser reads both.
                let config: Value = serde_norway::from_str(&source)
                    .with_context(|| format!("{} is neither YAML nor JSON", file.display()))?;
                let v = self
                    .call(
                        Method::POST,
                        &format!("/api/v1/tenants/{slug}/environments/{env}/config"),
                        Some(config),
                    )
                    .await?;
                self.print(&v, |v| {
                    vec![vec![
                        format!("{slug}-{env} config saved, version"),
                        text(&v["version"]),
                    ]]
                });
            }
            ConfigCmd::Show { slug, env } => {
                let v = self
                    .call(
                        Method::GET,
                        &format!("/api/v1/tenants/{slug}/environments/{env}/config"),
                        None,
                    )
                    .await?;
                match self.conn.output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                    Output::Table => print!("{}", serde_norway::to_string(&v["config"])?),
                }
            }
            ConfigCmd::Delete { slug, env } => {
                self.call(
                    Method::DELETE,
                    &format!("/api/v1/tenants/{slug}/environments/{env}/config"),
                    None,
                )
                .await?;
                println!("config of {slug}-{env} deleted");
            }
        }
        Ok(())
    }

    /// Requests a run; with `watch`, follows it to its end.
    pub async fn run(
        &self,
        method: Method,
        slug: &str,
        env: &str,
        action: &str,
        watch: bool,
    ) -> anyhow::Result<()> {
        let path = match action {
            "destroy" => format!("/api/v1/tenants/{slug}/environments/{env}"),
            _ => format!("/api/v1/tenants/{slug}/environments/{env}/{action}"),
        };
        let v = self.call(method, &path, None).await?;
        let run = text(&v["run_id"]);
        if watch {
            if self.conn.output == Output::Table {
                let note = if v["coalesced"] == true {
                    " (joined a queued deploy)"
                } else {
                    ""
                };
                println!("{action} {slug}-{env}: run {run}{note}");
            }
            return self.watch(&run).await;
        }
        self.print(&v, |v| {
            vec![
                vec!["run".into(), text(&v["run_id"])],
                vec!["status".into(), text(&v["status"])],
                vec!["coalesced".into(), text(&v["coalesced"])],
            ]
        });
        Ok(())
    }

    /// The plan of an environment's current config, as a readable diff.
    pub async fn preview(&self, slug: &str, env: &str) -> anyhow::Result<()> {
        let v = self
            .call(
                Method::POST,
                &format!("/api/v1/tenants/{slug}/environments/{env}/preview"),
                None,
            )
            .await?;
        let run = text(&v["run_id"]);
        let shown = self.finished(&run).await?;
        let status = text(&shown["run"]["status"]);
        if status != "succeeded" {
            bail!(
                "preview run {run} {status}: {}",
                text(&shown["run"]["error"])
            );
        }
        match self.conn.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&shown["plan"])?),
            Output::Table => {
                let plan: byoc_engine::Plan =
                    serde_json::from_value(shown["plan"].clone()).context("the server's plan")?;
                print!("{}", plan.render());
            }
        }
        Ok(())
    }

    pub async fn status(&self, slug: &str, env: &str) -> anyhow::Result<()> {
        let v = self
            .call(
                Method::GET,
                &format!("/api/v1/tenants/{slug}/environments/{env}/status"),
                None,
            )
            .await?;
        self.print(&v, |v| {
            let s = &v["status"];
            let mut rows = vec![
                vec!["stack".into(), text(&s["stack"])],
                vec!["status".into(), text(&s["status"])],
                vec!["state version".into(), text(&s["state_version"])],
                vec![
                    "last run".into(),
                    format!(
                        "{} {} {}",
                        text(&s["last_run"]["kind"]),
                        text(&s["last_run"]["status"]),
                        text(&s["last_run"]["id"])
                    ),
                ],
            ];
            for (status, n) in s["resources"].as_object().into_iter().flatten() {
                rows.push(vec![format!("resources {status}"), text(n)]);
            }
            for (name, out) in v["outputs"].as_object().into_iter().flatten() {
                for (k, value) in out.as_object().into_iter().flatten() {
                    rows.push(vec![format!("{name}.{k}"), text(value)]);
                }
            }
            rows
        });
        Ok(())
    }

    pub async fn runs(&self, cmd: RunsCmd) -> anyhow::Result<()> {
        match cmd {
            RunsCmd::List { slug, env } => {
                let v = self
                    .call(
                        Method::GET,
                        &format!("/api/v1/tenants/{slug}/environments/{env}/runs"),
                        None,
                    )
                    .await?;
                self.print(&v, |v| {
                    let mut rows = vec![cols(&["RUN", "KIND", "STATUS", "BY", "ERROR"])];
                    for r in v["runs"].as_array().into_iter().flatten() {
                        rows.push(vec![
                            text(&r["id"]),
                            text(&r["kind"]),
                            text(&r["status"]),
                            text(&r["requested_by"]),
                            text(&r["error"]),
                        ]);
                    }
                    rows
                });
            }
            RunsCmd::Show { run } => {
                let v = self
                    .call(Method::GET, &format!("/api/v1/runs/{run}"), None)
                    .await?;
                self.print(&v, |v| {
                    let r = &v["run"];
                    [
                        "id",
                        "stack",
                        "kind",
                        "status",
                        "requested_by",
                        "error",
                        "summary",
                    ]
                    .iter()
                    .map(|k| vec![k.to_string(), text(&r[*k])])
                    .collect()
                });
            }
            RunsCmd::Cancel { run } => {
                let v = self
                    .call(Method::POST, &format!("/api/v1/runs/{run}/cancel"), None)
                    .await?;
                self.print(&v, |v| {
                    vec![
                        vec!["run".into(), text(&v["run"]["id"])],
                        vec!["status".into(), text(&v["run"]["status"])],
                    ]
                });
            }
        }
        Ok(())
    }

    pub async fn token(&self, cmd: TokenCmd) -> anyhow::Result<()> {
        match cmd {
            TokenCmd::Create { name, tenant } => {
                let v = self
                    .call(
                        Method::POST,
                        "/api/v1/tokens",
                        Some(json!({"name": name, "tenant": tenant})),
                    )
                    .await?;
                self.print(&v, |v| {
                    vec![
                        vec!["id".into(), text(&v["token"]["id"])],
                        vec!["secret (shown once)".into(), text(&v["secret"])],
                    ]
                });
            }
            TokenCmd::List => {
                let v = self.call(Method::GET, "/api/v1/tokens", None).await?;
                self.print(&v, |v| {
                    let mut rows = vec![cols(&["ID", "NAME", "TENANT", "REVOKED"])];
                    for t in v["tokens"].as_array().into_iter().flatten() {
                        let tenant = if t["tenant_id"].is_null() {
                            "(admin)".to_string()
                        } else {
                            text(&t["tenant_id"])
                        };
                        rows.push(vec![
                            text(&t["id"]),
                            text(&t["name"]),
                            tenant,
                            text(&t["revoked_at"]),
                        ]);
                    }
                    rows
                });
            }
            TokenCmd::Revoke { id } => {
                self.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
                    .await?;
                println!("token {id} revoked");
            }
        }
        Ok(())
    }

    pub async fn stack(&self, cmd: StackCmd) -> anyhow::Result<()> {
        match cmd {
            StackCmd::Show { slug, env } => {
                let path = env_path(&slug, &env);
                let v = self
                    .call(Method::GET, &format!("{path}/state"), None)
                    .await?;
                self.print(&v, |v| {
                    let mut rows = vec![cols(&["RESOURCE", "TYPE", "PHYSICAL ID", "STATUS"])];
                    for r in v["resources"].as_array().into_iter().flatten() {
                        rows.push(vec![
                            text(&r["key"]),
                            text(&r["kind"]),
                            text(&r["physical_id"]),
                            text(&r["status"]),
                        ]);
                    }
                    rows
                });
            }
            StackCmd::History { slug, env } => {
                let path = env_path(&slug, &env);
                let v = self
                    .call(Method::GET, &format!("{path}/state/history"), None)
                    .await?;
                self.print(&v, |v| {
                    let mut rows = vec![cols(&["VERSION", "RUN", "AT", "CHANGES"])];
                    for h in v["versions"].as_array().into_iter().flatten() {
                        let changes = h["changes"].as_object().map_or_else(
                            || text(&h["changes"]),
                            |c| {
                                c.iter()
                                    .map(|(k, v)| {
                                        format!(
                                            "{k}: {}",
                                            v.as_array().map_or(text(v), |a| a.len().to_string())
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            },
                        );
                        rows.push(vec![
                            text(&h["version"]),
                            text(&h["run_id"]),
                            text(&h["at"]),
                            changes,
                        ]);
                    }
                    rows
                });
            }
            StackCmd::Graph { slug, env, format } => {
                let path = env_path(&slug, &env);
                let url = format!(
                    "{}{path}/graph?format={format}",
                    self.conn.url.trim_end_matches('/')
                );
                let mut req = self.http.get(&url);
                if let Some(token) = &self.conn.token {
                    req = req.bearer_auth(token);
                }
                let resp = req.send().await?.error_for_status()?;
                print!("{}", resp.text().await?);
            }
        }
        Ok(())
    }

    /// Follows a run's SSE stream to its end: on a terminal, a line per resource (spinner,
    /// action, state, duration) under an overall progress bar, then a summary; otherwise
    /// one plain line per event. Fails (exit status 1) unless the run succeeded.
    pub async fn watch(&self, run: &str) -> anyhow::Result<()> {
        let url = format!(
            "{}/api/v1/runs/{run}/events",
            self.conn.url.trim_end_matches('/')
        );
        let mut req = self.http.get(&url).header("accept", "text/event-stream");
        if let Some(token) = &self.conn.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!("{status}: {}", resp.text().await.unwrap_or_default());
        }
        let mut view = if self.conn.output == Output::Table && std::io::stdout().is_terminal() {
            let total = self
                .call(Method::GET, &format!("/api/v1/runs/{run}"), None)
                .await
                .ok()
                .and_then(|v| {
                    let steps = v["plan"]["steps"].as_array()?;
                    Some(steps.iter().filter(|s| s["action"] != "no_op").count() as u64)
                });
            View::Terminal(Terminal::new(total))
        } else {
            View::Plain(self.conn.output)
        };
        let mut body = resp.bytes_stream();
        let mut buffer = String::new();
        let mut final_status = None;
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (kind, data) = parse_sse(&block);
                match kind.as_str() {
                    "event" => view.event(&data),
                    "end" => {
                        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                        final_status = Some(text(&v["status"]));
                    }
                    "error" => bail!("the event stream failed: {data}"),
                    _ => {}
                }
            }
        }
        view.finish(final_status.as_deref());
        match final_status.as_deref() {
            Some("succeeded") => {
                if self.conn.output == Output::Table {
                    println!("run {run} succeeded");
                }
                Ok(())
            }
            Some(other) => bail!("run {run} {other}"),
            None => bail!("the event stream of run {run} ended early"),
        }
    }
}

enum View {
    Plain(Output),
    Terminal(Terminal),
}

impl View {
    fn event(&mut self, data: &str) {
        match self {
            View::Plain(Output::Json) => println!("{data}"),
            View::Plain(Output::Table) => {
                let e: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                let resource = e["resource"]
                    .as_str()
                    .map(|r| format!("{r}: "))
                    .unwrap_or_default();
                println!(
                    "{:>4} {:<5} {resource}{}",
                    text(&e["seq"]),
                    text(&e["level"]),
                    text(&e["message"])
                );
            }
            View::Terminal(t) => t.event(data),
        }
    }

    fn finish(&mut self, status: Option<&str>) {
        if let View::Terminal(t) = self {
            t.finish(status);
        }
    }
}

/// The live view: an overall bar and a spinner line per resource in flight.
struct Terminal {
    bars: MultiProgress,
    overall: ProgressBar,
    steps: std::collections::BTreeMap<String, ProgressBar>,
    succeeded: u64,
    failed: u64,
}

impl Terminal {
    fn new(total: Option<u64>) -> Terminal {
        let bars = MultiProgress::new();
        let overall = bars.add(ProgressBar::new(total.unwrap_or(0)));
        overall.set_style(
            ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} steps  {elapsed}  {msg}")
                .expect("a valid template"),
        );
        Terminal {
            bars,
            overall,
            steps: Default::default(),
            succeeded: 0,
            failed: 0,
        }
    }

    fn event(&mut self, data: &str) {
        let envelope: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        let e = &envelope["data"];
        let resource = text(&e["resource"]);
        let spinner = || {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg}").expect("a valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        };
        match e["event"].as_str() {
            Some("step_started") => {
                let bar = self
                    .steps
                    .entry(resource.clone())
                    .or_insert_with(|| self.bars.add(spinner()));
                bar.set_message(format!(
                    "{resource}: {} (attempt {})",
                    text(&e["action"]),
                    text(&e["attempt"])
                ));
            }
            Some("step_retrying") => {
                if let Some(bar) = self.steps.get(&resource) {
                    bar.set_message(format!(
                        "{resource}: retrying in {} ms: {}",
                        text(&e["delay_ms"]),
                        text(&e["error"])
                    ));
                }
            }
            Some(kind @ ("step_succeeded" | "step_failed" | "step_adopted")) => {
                let bar = self
                    .steps
                    .remove(&resource)
                    .unwrap_or_else(|| self.bars.add(spinner()));
                let seconds = e["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
                let line = match kind {
                    "step_succeeded" => {
                        self.succeeded += 1;
                        format!("✓ {resource}: {} in {seconds:.1}s", text(&e["action"]))
                    }
                    "step_adopted" => format!("↺ {resource}: adopted {}", text(&e["physical_id"])),
                    _ => {
                        self.failed += 1;
                        format!("✗ {resource}: {}", text(&e["error"]))
                    }
                };
                bar.finish_and_clear();
                let _ = self.bars.println(line);
                if kind != "step_adopted" {
                    self.overall.inc(1);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, status: Option<&str>) {
        for bar in self.steps.values() {
            bar.finish_and_clear();
        }
        self.overall.finish_with_message(format!(
            "{}: {} succeeded, {} failed",
            status.unwrap_or("ended"),
            self.succeeded,
            self.failed
        ));
    }
}

/// `(event, data)` of one SSE block.
fn parse_sse(block: &str) -> (String, String) {
    let (mut kind, mut data) = (String::from("message"), Vec::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
        }
    }
    (kind, data.join("\n"))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn print_table(rows: &[Vec<String>]) {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == row.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// The API path of a tenant's environment: the (tenant, environment) pair names it, never a
/// stack name split apart.
fn env_path(slug: &str, env: &str) -> String {
    format!("/api/v1/tenants/{slug}/environments/{env}")
}
