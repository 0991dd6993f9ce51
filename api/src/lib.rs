//! The HTTP API (axum).
//!
//! Invariant: knows no AWS, no components and no workers. The API records, enqueues and
//! reads; everything that touches a cloud runs in a worker.

mod error;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use byoc_stacks::Database;
use tokio::sync::watch;

pub use error::ApiError;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    schema: watch::Receiver<SchemaState>,
}

/// Whether the store's migrations have been applied yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    Pending { last_error: Option<String> },
    Ready,
}

impl AppState {
    /// `schema` reports the migration task's progress: the server answers while its database
    /// is still coming up, and is ready only once the schema is.
    pub fn new(db: Database, schema: watch::Receiver<SchemaState>) -> AppState {
        AppState {
            inner: Arc::new(Inner { db, schema }),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}
