//! Environments: their configs.

use std::path::PathBuf;

use anyhow::Context;
use byoc_model::api::{ConfigSaved, ConfigView, UnlockRequest, Unlocked};
use byoc_model::{EnvName, TenantSlug};
use reqwest::Method;
use serde_json::Value;

use super::transport::NO_BODY;
use super::view::{opt, row};
use super::{Client, Output, env_path};

#[derive(clap::Subcommand)]
pub enum EnvCmd {
    /// An environment's config.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Break the environment's stack lease when the worker holding it is dead or stuck, like
    /// `terraform force-unlock` (admin token). Fails when nothing holds the lease, and while
    /// the lease is live unless --force. The holder's writes are refused from then on.
    Unlock {
        slug: TenantSlug,
        env: EnvName,
        /// Break the lease even while it is live (its holder renewed it recently).
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum ConfigCmd {
    /// Save a config from a YAML or JSON file.
    Set {
        slug: TenantSlug,
        env: EnvName,
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    Show {
        slug: TenantSlug,
        env: EnvName,
    },
    Delete {
        slug: TenantSlug,
        env: EnvName,
    },
}

impl Client {
    pub async fn env(&self, cmd: EnvCmd) -> anyhow::Result<()> {
        let cmd = match cmd {
            EnvCmd::Config(cmd) => cmd,
            EnvCmd::Unlock { slug, env, force } => {
                let path = format!("{}/unlock", env_path(&slug, &env));
                let body = UnlockRequest { force };
                let unlocked: Unlocked = self.call(Method::POST, &path, Some(&body)).await?;
                return self.print(&unlocked, |u| {
                    vec![
                        row("unlocked", &u.stack),
                        row("holder", &u.holder),
                        row(
                            "generation",
                            format!("{} -> {}", u.generation, u.new_generation),
                        ),
                        row("was live", u.was_live),
                        row("run", opt(&u.run_id)),
                    ]
                });
            }
        };
        match cmd {
            ConfigCmd::Set { slug, env, file } => {
                let source = std::fs::read_to_string(&file)
                    .with_context(|| format!("read {}", file.display()))?;
                // YAML is a superset of JSON: one parser reads both. The content goes as it
                // is: the server validates it and names the field it refuses.
                let config: Value = serde_norway::from_str(&source)
                    .with_context(|| format!("{} is neither YAML nor JSON", file.display()))?;
                let path = format!("{}/config", env_path(&slug, &env));
                let saved: ConfigSaved = self.call(Method::POST, &path, Some(&config)).await?;
                self.print(&saved, |s| {
                    vec![row(
                        format!("{slug}-{env} config saved, version"),
                        s.version,
                    )]
                })
            }
            ConfigCmd::Show { slug, env } => {
                let path = format!("{}/config", env_path(&slug, &env));
                let shown: ConfigView = self.get(&path).await?;
                match self.conn.output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&shown)?),
                    Output::Table => print!("{}", serde_norway::to_string(&shown.config)?),
                }
                Ok(())
            }
            ConfigCmd::Delete { slug, env } => {
                let path = format!("{}/config", env_path(&slug, &env));
                let () = self.call(Method::DELETE, &path, NO_BODY).await?;
                self.say(format!("config of {slug}-{env} deleted"));
                Ok(())
            }
        }
    }
}
