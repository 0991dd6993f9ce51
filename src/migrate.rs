use byoc_stacks::Database;

use crate::serve::DEFAULT_DATABASE_URL;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// sqlite://PATH (the embedded default) or postgres://...
    #[arg(long, env = "BYOC_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, global = true)]
    database_url: String,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Apply every pending migration.
    Up,
    /// Revert the latest applied migration.
    Down,
    /// List migrations and whether each is applied.
    Status,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = Database::connect(&args.database_url).await?;
    match args.action {
        Action::Up => {
            db.migrate().await?;
            println!("{}: schema is current", db.url());
        }
        Action::Down => match db.migrate_down().await? {
            Some(version) => println!("{}: reverted migration {version}", db.url()),
            None => println!("{}: no migration is applied", db.url()),
        },
        Action::Status => {
            for m in db.migration_status().await? {
                let state = if m.applied { "applied" } else { "pending" };
                println!("{:>16}  {state:<8} {}", m.version, m.description);
            }
        }
    }
    Ok(())
}
