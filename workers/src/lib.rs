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

/// Caps glibc's malloc arenas at two, before the runtime's threads start. glibc makes up to
/// eight per core, and a worker's many short-lived allocations (SDK responses, plans) spread
/// over them keep freed memory in each: 11% more resident memory per run in flight in the
/// fleet benchmark.
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
