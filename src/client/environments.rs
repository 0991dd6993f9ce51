//! Environments: their configs.

use std::path::PathBuf;

use anyhow::Context;
use byoc_model::api::{ConfigSaved, ConfigView};
use byoc_model::{EnvName, TenantSlug};
use reqwest::Method;
use serde_json::Value;

use super::transport::NO_BODY;
use super::view::row;
use super::{Client, Output, env_path};

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
        let EnvCmd::Config(cmd) = cmd;
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
