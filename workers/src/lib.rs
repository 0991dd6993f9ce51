//! The queue's consumer side: worker daemon and job handlers.
//!
//! Invariant: knows no HTTP. The only crate that wires engine, components and stacks together.

mod aws;
mod daemon;
mod failure;
mod run;
pub mod schedule;

pub use aws::AwsBlueprint;
pub use daemon::{run_daemon, run_daemon_with};
pub use failure::RunFailure;
pub use run::{Blueprint, RunTarget, Worker, WorkerConfig, WorkerError, unique_worker_name};
