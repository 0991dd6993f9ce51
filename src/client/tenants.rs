//! Tenants: creation, listing, trust onboarding.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use byoc_model::api::{
    CreateTenant, ExternalIdRotated, RunAccepted, TenantCreated, TenantDetail, TenantPage,
    TrustTemplate, VerifyTrust,
};
use byoc_model::{AccountId, Region, RunStatus, TenantSlug};
use reqwest::Method;

use super::Client;
use super::transport::NO_BODY;
use super::view::{header, opt, row};

#[derive(clap::Subcommand)]
pub enum TenantCmd {
    /// Create a tenant; its external id is shown this once.
    Create {
        #[arg(long)]
        slug: TenantSlug,
        #[arg(long)]
        name: String,
        #[arg(long)]
        account: AccountId,
        /// KEY=VALUE, repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    List,
    Show {
        slug: TenantSlug,
    },
    Delete {
        slug: TenantSlug,
    },
    RotateExternalId {
        slug: TenantSlug,
    },
    /// The trust template to give the customer, with the parameters to launch it with.
    TrustTemplate {
        slug: TenantSlug,
        /// Write the template (YAML) here instead of printing the launch details.
        #[arg(short = 'o', long = "output-file")]
        file: Option<PathBuf>,
    },
    /// Check that the tenant's account trusts byoc: a worker assumes the tenant's role and
    /// reads the trust stack. Fails unless the tenant ends up trusted.
    Verify {
        slug: TenantSlug,
        /// The region the customer launched the trust stack in (default: as recorded, at
        /// first the workers' region).
        #[arg(long)]
        region: Option<Region>,
        /// The trust stack's name (default: as recorded, at first `byoc-trust`).
        #[arg(long)]
        stack_name: Option<String>,
    },
}

fn tenant_path(slug: &str) -> String {
    format!("/api/v1/tenants/{slug}")
}

impl Client {
    pub async fn tenant(&self, cmd: TenantCmd) -> anyhow::Result<()> {
        match cmd {
            TenantCmd::Create {
                slug,
                name,
                account,
                labels,
            } => {
                let body = CreateTenant {
                    slug,
                    name,
                    aws_account_id: account,
                    labels: parse_labels(&labels)?,
                };
                let created: TenantCreated = self
                    .call(Method::POST, "/api/v1/tenants", Some(&body))
                    .await?;
                self.print(&created, |c| {
                    vec![
                        row("slug", &c.tenant.slug),
                        row("account", &c.tenant.aws_account_id),
                        row("external id (shown once)", &c.external_id),
                        row("trust role", &c.trust.role_name),
                    ]
                })
            }
            TenantCmd::List => {
                let page: TenantPage = self.get("/api/v1/tenants?limit=500").await?;
                self.print(&page, |p| {
                    let mut rows = vec![header(&["SLUG", "NAME", "ACCOUNT", "ONBOARDING"])];
                    rows.extend(p.tenants.iter().map(|t| {
                        vec![
                            t.slug.to_string(),
                            t.name.clone(),
                            t.aws_account_id.to_string(),
                            t.onboarding_status.to_string(),
                        ]
                    }));
                    rows
                })
            }
            TenantCmd::Show { slug } => {
                let detail: TenantDetail = self.get(&tenant_path(&slug)).await?;
                self.print(&detail, |d| {
                    let t = &d.tenant;
                    let region = t.trust_region.as_deref().unwrap_or("the workers' region");
                    vec![
                        row("slug", &t.slug),
                        row("name", &t.name),
                        row("account", &t.aws_account_id),
                        row("onboarding", t.onboarding_status),
                        row("onboarding message", opt(&t.onboarding_message)),
                        row("trust stack", format!("{} in {region}", t.trust_stack_name)),
                        row("trust template", opt(&t.trust_template_version)),
                        row("environments", d.environments.join(", ")),
                    ]
                })
            }
            TenantCmd::Delete { slug } => {
                let () = self
                    .call(Method::DELETE, &tenant_path(&slug), NO_BODY)
                    .await?;
                self.say(format!("tenant {slug} deleted"));
                Ok(())
            }
            TenantCmd::RotateExternalId { slug } => {
                let path = format!("{}/external-id/rotate", tenant_path(&slug));
                let rotated: ExternalIdRotated = self.call(Method::POST, &path, NO_BODY).await?;
                self.print(&rotated, |r| {
                    vec![row("new external id (shown once)", &r.external_id)]
                })
            }
            TenantCmd::TrustTemplate { slug, file } => {
                let path = format!("{}/trust-template", tenant_path(&slug));
                let template: TrustTemplate = self.get(&path).await?;
                if let Some(file) = file {
                    std::fs::write(&file, &template.template)
                        .with_context(|| format!("write {}", file.display()))?;
                    self.say(format!("trust template written to {}", file.display()));
                    return Ok(());
                }
                self.print(&template, |t| {
                    let p = &t.parameters;
                    vec![
                        row("account", &t.account_id),
                        row("stack name", &t.stack_name),
                        row("template version", &t.template_version),
                        row("TrustedAccountId", opt(&p.trusted_account_id)),
                        row("RoleName", &p.role_name),
                        row("TenantSlug", &p.tenant_slug),
                        row("ExternalId", &p.external_id),
                        row("quick-create link", opt(&t.quick_create_url)),
                    ]
                })
            }
            TenantCmd::Verify {
                slug,
                region,
                stack_name,
            } => self.verify(&slug, VerifyTrust { region, stack_name }).await,
        }
    }

    /// Asks for a verification, waits for its run, and says where the tenant stands.
    async fn verify(&self, slug: &str, body: VerifyTrust) -> anyhow::Result<()> {
        let path = format!("{}/verify", tenant_path(slug));
        let accepted: RunAccepted = self.call(Method::POST, &path, Some(&body)).await?;
        let run = self.finished(&accepted.run_id).await?.run;
        let detail: TenantDetail = self.get(&tenant_path(slug)).await?;
        if run.status != RunStatus::Succeeded {
            bail!(
                "tenant {slug} is not trusted ({}): {}",
                detail.tenant.onboarding_status,
                opt(&run.error)
            );
        }
        self.print(&detail, |d| {
            vec![
                row("onboarding", d.tenant.onboarding_status),
                row("message", opt(&d.tenant.onboarding_message)),
            ]
        })
    }
}

/// `KEY=VALUE` labels.
fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("label {l:?} is not KEY=VALUE"))
        })
        .collect()
}
