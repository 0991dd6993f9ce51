//! API tokens.

use byoc_model::api::{CreateToken, TokenCreated, TokenList, TokenView};
use reqwest::Method;

use super::Client;
use super::transport::NO_BODY;
use super::view::{header, opt, row};

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token; its secret is shown this once.
    Create {
        name: String,
        /// Scope it to one tenant (default: an admin token).
        #[arg(long)]
        tenant: Option<byoc_model::TenantSlug>,
        /// Days until it expires, 1 to 3650 (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    List,
    Revoke {
        id: String,
    },
}

impl Client {
    pub async fn token(&self, cmd: TokenCmd) -> anyhow::Result<()> {
        match cmd {
            TokenCmd::Create {
                name,
                tenant,
                expires_in_days,
            } => {
                let body = CreateToken {
                    name,
                    tenant,
                    expires_in_days,
                };
                let created: TokenCreated = self
                    .call(Method::POST, "/api/v1/tokens", Some(&body))
                    .await?;
                self.print(&created, |c| {
                    vec![
                        row("id", &c.token.id),
                        row("secret (shown once)", &c.secret),
                        row(
                            "expires at",
                            c.token.expires_at.map_or("never".into(), |t| t.to_string()),
                        ),
                    ]
                })
            }
            TokenCmd::List => {
                let list: TokenList = self.get("/api/v1/tokens").await?;
                self.print(&list, |l| {
                    let mut rows = vec![header(&["ID", "NAME", "TENANT", "REVOKED"])];
                    rows.extend(l.tokens.iter().map(|t| {
                        vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.tenant_id.clone().unwrap_or_else(|| "(admin)".into()),
                            opt(&t.revoked_at),
                        ]
                    }));
                    rows
                })
            }
            TokenCmd::Revoke { id } => {
                let path = format!("/api/v1/tokens/{id}");
                let revoked: TokenView = self.call(Method::DELETE, &path, NO_BODY).await?;
                self.print(&revoked, |r| {
                    vec![
                        row("token", &r.token.id),
                        row("revoked at", opt(&r.token.revoked_at)),
                    ]
                })
            }
        }
    }
}
