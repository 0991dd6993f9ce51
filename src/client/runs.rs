//! Runs: requesting a deploy, destroy or refresh, previewing, following a run, and what an
//! environment's runs did.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use byoc_model::api::{DeployRequest, EnvironmentStatus, RunAccepted, RunDetail, RunList, RunView};
use byoc_model::{EnvName, RunId, RunKind, RunStatus, TenantSlug};
use reqwest::Method;

use super::transport::{NO_BODY, Streamed};
use super::view::{Follow, Live, header, json_text, opt, row};
use super::{Client, Output, env_path, run_path};

#[derive(clap::Subcommand)]
pub enum RunsCmd {
    List { slug: TenantSlug, env: EnvName },
    Show { run: RunId },
    Cancel { run: RunId },
}

/// How often a run is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(300);

impl Client {
    /// Requests a deploy, destroy or refresh; with `watch`, follows it to its end.
    pub async fn request_run(
        &self,
        kind: RunKind,
        slug: &str,
        env: &str,
        plan: Option<RunId>,
        watch: bool,
    ) -> anyhow::Result<()> {
        let path = env_path(slug, env);
        let (method, path) = match kind {
            RunKind::Destroy => (Method::DELETE, path),
            _ => (Method::POST, format!("{path}/{kind}")),
        };
        let body = plan.map(|plan_id| DeployRequest {
            plan_id: Some(plan_id),
        });
        let accepted: RunAccepted = self.call(method, &path, body.as_ref()).await?;
        if !watch {
            return self.print(&accepted, |a| {
                vec![
                    row("run", &a.run_id),
                    row("status", a.status),
                    row("coalesced", a.coalesced),
                ]
            });
        }
        let joined = if accepted.coalesced {
            format!(" (joined the queued {kind})")
        } else {
            String::new()
        };
        self.say(format!(
            "{kind} {slug}-{env}: run {}{joined}",
            accepted.run_id
        ));
        self.watch(&accepted.run_id).await
    }

    /// The plan of an environment's current config, as a readable diff.
    pub async fn preview(&self, slug: &str, env: &str) -> anyhow::Result<()> {
        let path = format!("{}/preview", env_path(slug, env));
        let accepted: RunAccepted = self.call(Method::POST, &path, NO_BODY).await?;
        let shown = self.finished(&accepted.run_id).await?;
        let run = &shown.run;
        if run.status != RunStatus::Succeeded {
            bail!("preview run {} {}: {}", run.id, run.status, opt(&run.error));
        }
        let Some(plan) = shown.plan else {
            bail!("preview run {} succeeded without a plan", run.id);
        };
        match self.conn.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            Output::Table => {
                print!("{}", plan.render());
                // A hint, not the plan: on stderr, so the plan's text stays what it is.
                if plan.changes() > 0 {
                    eprintln!(
                        "\nTo apply exactly this plan: byoc deploy {slug} {env} --plan {}",
                        run.id
                    );
                }
            }
        }
        Ok(())
    }

    pub async fn status(&self, slug: &str, env: &str) -> anyhow::Result<()> {
        let path = format!("{}/status", env_path(slug, env));
        let shown: EnvironmentStatus = self.get(&path).await?;
        self.print(&shown, |v| {
            let s = &v.status;
            let last_run = s.last_run.as_ref().map_or(String::new(), |r| {
                format!("{} {} {}", r.kind, r.status, r.id)
            });
            let mut rows = vec![
                row("stack", &s.stack),
                row("status", &s.status),
                row("state version", s.state_version),
                row("last run", last_run),
            ];
            for (status, n) in &s.resources {
                rows.push(row(format!("resources {status}"), n));
            }
            if let Some(d) = &v.drift {
                let by = if d.scheduled {
                    "scheduled"
                } else {
                    "requested"
                };
                rows.push(row(
                    "last drift check",
                    format!("{} resource(s) drifted ({by}, run {})", d.drifted, d.run_id),
                ));
            }
            if let Some(d) = &v.drift_schedule {
                let repair = if d.repair { ", repairs drift" } else { "" };
                rows.push(row(
                    "drift checks",
                    format!("every {} min ({:?}{repair})", d.every_minutes, d.source),
                ));
            }
            for (resource, outputs) in &v.outputs {
                for (name, value) in outputs {
                    rows.push(row(format!("{resource}.{name}"), json_text(value)));
                }
            }
            rows
        })
    }

    pub async fn runs(&self, cmd: RunsCmd) -> anyhow::Result<()> {
        match cmd {
            RunsCmd::List { slug, env } => {
                let list: RunList = self.get(&format!("{}/runs", env_path(&slug, &env))).await?;
                self.print(&list, |l| {
                    let mut rows = vec![header(&["RUN", "KIND", "STATUS", "BY", "ERROR"])];
                    rows.extend(l.runs.iter().map(|r| {
                        vec![
                            r.id.to_string(),
                            r.kind.to_string(),
                            r.status.to_string(),
                            r.requested_by.clone(),
                            opt(&r.error),
                        ]
                    }));
                    rows
                })
            }
            RunsCmd::Show { run } => {
                let shown: RunDetail = self.get(&run_path(&run)).await?;
                self.print(&shown, |d| {
                    let r = &d.run;
                    vec![
                        row("id", &r.id),
                        row("stack", &r.stack),
                        row("kind", r.kind),
                        row("status", r.status),
                        row("requested_by", &r.requested_by),
                        row("error", opt(&r.error)),
                        row(
                            "summary",
                            r.summary.as_ref().map(json_text).unwrap_or_default(),
                        ),
                    ]
                })
            }
            RunsCmd::Cancel { run } => {
                let path = format!("{}/cancel", run_path(&run));
                let shown: RunView = self.call(Method::POST, &path, NO_BODY).await?;
                self.print(&shown, |v| {
                    vec![row("run", &v.run.id), row("status", v.run.status)]
                })
            }
        }
    }

    /// Waits for a run to end; returns it as `GET /runs/{id}` shows it.
    pub async fn finished(&self, run: &str) -> anyhow::Result<RunDetail> {
        loop {
            let shown: RunDetail = self.get(&run_path(run)).await?;
            if shown.run.status.is_finished() {
                return Ok(shown);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How many steps of a run's plan change something, if it has one.
    async fn planned_steps(&self, run: &str) -> Option<u64> {
        let shown: RunDetail = self.get(&run_path(run)).await.ok()?;
        Some(shown.plan?.changes() as u64)
    }

    /// Follows a run's events to its end: on a terminal, finished steps above a progress bar
    /// over the plan's steps; otherwise one line per event. Fails (exit status 1) unless the
    /// run succeeded.
    pub async fn watch(&self, run: &str) -> anyhow::Result<()> {
        let mut events = self.events(run).await?;
        let live = self.table_output() && std::io::stdout().is_terminal();
        let mut view = if live {
            Follow::Live(Live::new())
        } else {
            Follow::Lines(self.conn.output)
        };
        let mut plan_asked = !live;
        let mut end = None;
        while let Some(item) = events.next().await {
            match item? {
                Streamed::Event(event) => {
                    // A run records its plan before its first step starts: from that step on,
                    // the bar counts against the plan.
                    if !plan_asked && event.resource.is_some() {
                        plan_asked = true;
                        view.planned(self.planned_steps(run).await);
                    }
                    view.event(&event);
                }
                Streamed::End(status) => end = Some(status),
            }
        }
        view.finish(end);
        match end {
            Some(RunStatus::Succeeded) => {
                self.say(format!("run {run} succeeded"));
                Ok(())
            }
            Some(other) => bail!("run {run} {other}"),
            None => bail!("the event stream of run {run} ended early"),
        }
    }
}
