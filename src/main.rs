//! The `byoc` binary: process wiring only. Business logic lives in the workspace crates.

mod migrate;
mod serve;
mod worker;

use clap::{Parser, Subcommand};

/// Control plane for bring-your-own-cloud deployments.
#[derive(Parser)]
#[command(name = "byoc", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API server, with workers executing runs (unless --no-workers).
    Serve(serve::Args),
    /// Run workers only: take runs from the queue and execute them.
    Worker(worker::Args),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Migrate(args) => runtime.block_on(migrate::run(args)),
        Command::Worker(args) => runtime.block_on(worker::run(args)),
    }
}
