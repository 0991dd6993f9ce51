//! A tenant's environment as recorded: its resources, state versions and graph.

use std::collections::BTreeMap;

use byoc_model::api::{GraphView, HistoryView, PlanAction, StateView};
use byoc_model::{EnvName, TenantSlug};
use serde::Deserialize;
use serde_json::Value;

use super::view::{action_name, header, json_text};
use super::{Client, env_path};

#[derive(clap::Subcommand)]
pub enum StackCmd {
    /// Every recorded resource of a tenant's environment.
    Show { slug: TenantSlug, env: EnvName },
    /// The environment's state versions.
    History { slug: TenantSlug, env: EnvName },
    /// The environment's resources and dependencies.
    Graph {
        slug: TenantSlug,
        env: EnvName,
        #[arg(long, value_parser = ["mermaid", "dot", "json"], default_value = "mermaid")]
        format: String,
    },
}

impl Client {
    pub async fn stack(&self, cmd: StackCmd) -> anyhow::Result<()> {
        match cmd {
            StackCmd::Show { slug, env } => {
                let state: StateView = self
                    .get(&format!("{}/state", env_path(&slug, &env)))
                    .await?;
                self.print(&state, |s| {
                    let mut rows = vec![header(&["RESOURCE", "TYPE", "PHYSICAL ID", "STATUS"])];
                    rows.extend(s.resources.iter().map(|r| {
                        vec![
                            r.key.clone(),
                            r.kind.clone(),
                            r.physical_id.clone(),
                            r.status.clone(),
                        ]
                    }));
                    rows
                })
            }
            StackCmd::History { slug, env } => {
                let path = format!("{}/state/history", env_path(&slug, &env));
                let history: HistoryView = self.get(&path).await?;
                self.print(&history, |h| {
                    let mut rows = vec![header(&["VERSION", "RUN", "AT", "CHANGES"])];
                    rows.extend(h.versions.iter().map(|v| {
                        vec![
                            v.version.to_string(),
                            v.run_id.to_string(),
                            v.at.to_string(),
                            changes(&v.changes),
                        ]
                    }));
                    rows
                })
            }
            StackCmd::Graph { slug, env, format } => {
                let path = format!("{}/graph?format={format}", env_path(&slug, &env));
                if format == "json" {
                    let graph: GraphView = self.get(&path).await?;
                    println!("{}", serde_json::to_string_pretty(&graph)?);
                } else {
                    print!("{}", self.get_text(&path).await?);
                }
                Ok(())
            }
        }
    }
}

/// A state version's changes (`[{resource, action}]`) counted by action: `create: 26`.
fn changes(recorded: &Value) -> String {
    #[derive(Deserialize)]
    struct Change {
        action: PlanAction,
    }
    let Ok(list) = Vec::<Change>::deserialize(recorded) else {
        return json_text(recorded);
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for change in list {
        *counts.entry(action_name(change.action)).or_default() += 1;
    }
    counts
        .iter()
        .map(|(action, n)| format!("{action}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
