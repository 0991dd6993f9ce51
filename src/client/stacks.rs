//! A tenant's environment as recorded: its resources, state versions and graph.

use std::collections::BTreeMap;

use byoc_model::api::{
    GraphView, HistoryView, PlanAction, ResourceChange, StateDiff, StateVersionView, StateView,
};
use byoc_model::{EnvName, TenantSlug};
use serde::Deserialize;
use serde_json::Value;

use super::view::{action_name, header, json_text};
use super::{Client, env_path};

#[derive(clap::Subcommand)]
pub enum StackCmd {
    /// Every recorded resource of a tenant's environment, now or as of a state version.
    #[command(disable_version_flag = true)]
    Show {
        slug: TenantSlug,
        env: EnvName,
        /// A state version (see `stack history`; 0 is the empty state): the resources as
        /// that version recorded them.
        #[arg(long)]
        version: Option<u64>,
    },
    /// What changed between two state versions: resources added, removed and changed, with
    /// the changed input and output fields and physical ids.
    Diff {
        slug: TenantSlug,
        env: EnvName,
        /// The state version to compare from.
        from: u64,
        /// The state version to compare to.
        to: u64,
    },
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
            StackCmd::Show {
                slug,
                env,
                version: Some(version),
            } => {
                let path = format!("{}/state/versions/{version}", env_path(&slug, &env));
                let state: StateVersionView = self.get(&path).await?;
                self.print(&state, |s| resource_rows(&s.resources))
            }
            StackCmd::Diff {
                slug,
                env,
                from,
                to,
            } => {
                let path = format!("{}/state/diff?from={from}&to={to}", env_path(&slug, &env));
                let diff: StateDiff = self.get(&path).await?;
                match self.conn.output {
                    super::Output::Json => println!("{}", serde_json::to_string_pretty(&diff)?),
                    super::Output::Table => print!("{}", render_diff(&diff)),
                }
                Ok(())
            }
            StackCmd::Show {
                slug,
                env,
                version: None,
            } => {
                let state: StateView = self
                    .get(&format!("{}/state", env_path(&slug, &env)))
                    .await?;
                self.print(&state, |s| resource_rows(&s.resources))
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

/// A table of resources: key, type, physical id, status.
fn resource_rows(resources: &[byoc_model::ResourceRecord]) -> Vec<Vec<String>> {
    let mut rows = vec![header(&["RESOURCE", "TYPE", "PHYSICAL ID", "STATUS"])];
    rows.extend(resources.iter().map(|r| {
        vec![
            r.key.clone(),
            r.kind.clone(),
            r.physical_id.clone(),
            r.status.clone(),
        ]
    }));
    rows
}

/// A state diff as text: a line per resource (`+` added, `-` removed, `~` changed) with its
/// changed fields, then a summary line.
fn render_diff(diff: &StateDiff) -> String {
    let mut out = format!(
        "{} state version {} -> {}\n",
        diff.stack, diff.from, diff.to
    );
    for r in &diff.resources {
        match r.change {
            ResourceChange::Added => out.push_str(&format!(
                "  + {} ({}): {}\n",
                r.key,
                r.kind,
                r.new_physical_id.as_deref().unwrap_or_default()
            )),
            ResourceChange::Removed => out.push_str(&format!(
                "  - {} ({}): {}\n",
                r.key,
                r.kind,
                r.old_physical_id.as_deref().unwrap_or_default()
            )),
            ResourceChange::Changed => {
                out.push_str(&format!("  ~ {} ({})\n", r.key, r.kind));
                if r.physical_id_changed {
                    out.push_str(&format!(
                        "      ~ physical_id = {} -> {}\n",
                        r.old_physical_id.as_deref().unwrap_or_default(),
                        r.new_physical_id.as_deref().unwrap_or_default()
                    ));
                }
                let groups = [
                    ("", &r.attributes),
                    ("inputs.", &r.inputs),
                    ("outputs.", &r.outputs),
                ];
                for (prefix, changes) in groups {
                    for c in changes {
                        let show = |v: &Option<Value>| {
                            v.as_ref().map_or("(none)".into(), Value::to_string)
                        };
                        out.push_str(&format!(
                            "      ~ {prefix}{} = {} -> {}\n",
                            c.field,
                            show(&c.old),
                            show(&c.new)
                        ));
                    }
                }
            }
        }
    }
    let c = &diff.counts;
    out.push_str(&format!(
        "{} added, {} removed, {} changed, {} unchanged.\n",
        c.added, c.removed, c.changed, c.unchanged
    ));
    out
}
