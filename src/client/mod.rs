//! The client commands: the HTTP API from a terminal. Every response is decoded into the
//! API's own types (`byoc_model::api`); `--output json` prints them as the API sent them,
//! `table` (the default) as aligned columns.

mod environments;
mod runs;
mod stacks;
mod tenants;
mod tokens;
mod transport;
mod view;

use serde::Serialize;

pub use environments::EnvCmd;
pub use runs::RunsCmd;
pub use stacks::StackCmd;
pub use tenants::TenantCmd;
pub use tokens::TokenCmd;

#[derive(clap::Args, Clone)]
pub struct Conn {
    /// The byoc server.
    #[arg(
        long,
        env = "BYOC_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// An API token (`byoc_...`).
    #[arg(long, env = "BYOC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// A byoc server, as one caller sees it.
pub struct Client {
    conn: Conn,
    http: reqwest::Client,
}

impl Client {
    pub fn new(conn: Conn) -> Client {
        Client {
            conn,
            http: reqwest::Client::new(),
        }
    }

    fn table_output(&self) -> bool {
        self.conn.output == Output::Table
    }

    /// Prints an answer: as JSON, or as the rows `table` makes of it.
    fn print<T: Serialize>(
        &self,
        value: &T,
        table: impl FnOnce(&T) -> Vec<Vec<String>>,
    ) -> anyhow::Result<()> {
        match self.conn.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
            Output::Table => view::print_table(&table(value)),
        }
        Ok(())
    }

    /// Prints a line for a person; `--output json` prints nothing but JSON.
    fn say(&self, line: impl std::fmt::Display) {
        if self.table_output() {
            println!("{line}");
        }
    }
}

/// The API path of a tenant's environment: the (tenant, environment) pair names it, never a
/// stack name split apart.
fn env_path(slug: &str, env: &str) -> String {
    format!("/api/v1/tenants/{slug}/environments/{env}")
}

fn run_path(run: &str) -> String {
    format!("/api/v1/runs/{run}")
}
