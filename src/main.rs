//! The `byoc` binary: process wiring only. Business logic lives in the workspace crates.

mod client;
mod migrate;
mod serve;
mod worker;

use byoc_model::{EnvName, RunId, TenantSlug};
use clap::{Parser, Subcommand};

/// Control plane for bring-your-own-cloud deployments.
#[derive(Parser)]
#[command(name = "byoc", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: client::Conn,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API server, with workers executing runs (unless --no-workers).
    Serve(serve::Args),
    /// Run workers only: take runs from the queue and execute them.
    Worker(worker::Args),
    /// Tenants.
    #[command(subcommand)]
    Tenant(client::TenantCmd),
    /// Environments.
    #[command(subcommand)]
    Env(client::EnvCmd),
    /// Deploy an environment's config.
    Deploy {
        slug: TenantSlug,
        env: EnvName,
        /// Apply exactly the plan of this preview run (`byoc preview` prints it); needed to
        /// replace or delete a cluster, VPC, node group or OIDC provider.
        #[arg(long = "plan", value_name = "PREVIEW_RUN_ID")]
        plan: Option<RunId>,
        /// Follow the run to its end.
        #[arg(long)]
        watch: bool,
    },
    /// Destroy an environment's resources.
    Destroy {
        slug: TenantSlug,
        env: EnvName,
        #[arg(long)]
        watch: bool,
    },
    /// Show what a deploy would change.
    Preview { slug: TenantSlug, env: EnvName },
    /// Compare the recorded state with the cloud.
    Refresh {
        slug: TenantSlug,
        env: EnvName,
        #[arg(long)]
        watch: bool,
    },
    /// An environment's status and outputs.
    Status { slug: TenantSlug, env: EnvName },
    /// Runs.
    #[command(subcommand)]
    Runs(client::RunsCmd),
    /// Follow a run's events to its end.
    Watch { run: RunId },
    /// API tokens.
    #[command(subcommand)]
    Token(client::TokenCmd),
    /// A stack (`{slug}-{env}`): its state, history and graph.
    #[command(subcommand)]
    Stack(client::StackCmd),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Apply, revert or list the store's schema migrations.
    Migrate(migrate::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BYOC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        byoc_workers::cap_malloc_arenas();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Migrate(args) => runtime.block_on(migrate::run(args)),
        Command::Worker(args) => runtime.block_on(worker::run(args)),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "byoc", &mut std::io::stdout());
            Ok(())
        }
        client_command => {
            let c = client::Client::new(cli.conn);
            runtime.block_on(async {
                use byoc_model::RunKind;
                match client_command {
                    Command::Tenant(cmd) => c.tenant(cmd).await,
                    Command::Env(cmd) => c.env(cmd).await,
                    Command::Deploy {
                        slug,
                        env,
                        plan,
                        watch,
                    } => {
                        c.request_run(RunKind::Deploy, &slug, &env, plan, watch)
                            .await
                    }
                    Command::Destroy { slug, env, watch } => {
                        c.request_run(RunKind::Destroy, &slug, &env, None, watch)
                            .await
                    }
                    Command::Refresh { slug, env, watch } => {
                        c.request_run(RunKind::Refresh, &slug, &env, None, watch)
                            .await
                    }
                    Command::Preview { slug, env } => c.preview(&slug, &env).await,
                    Command::Status { slug, env } => c.status(&slug, &env).await,
                    Command::Runs(cmd) => c.runs(cmd).await,
                    Command::Watch { run } => c.watch(&run).await,
                    Command::Token(cmd) => c.token(cmd).await,
                    Command::Stack(cmd) => c.stack(cmd).await,
                    Command::Serve(_)
                    | Command::Migrate(_)
                    | Command::Worker(_)
                    | Command::Completions { .. } => {
                        unreachable!("handled above")
                    }
                }
            })
        }
    }
}
