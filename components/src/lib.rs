//! AWS resource providers (one file per resource type), STS credentials, Helm releases and
//! the environment blueprint.
//!
//! Invariant: knows no HTTP and no queue; uses the stack model of byoc-stacks but never its
//! store. The only crate that depends on the AWS SDK.

pub mod aws;
pub mod blueprint;
pub mod bootstrap;
pub mod helm;
pub mod kube;
pub mod limiter;
pub mod resources;
pub mod trust;

pub use aws::{Aws, Patience, Platform, PlatformOptions, Target, WaitPolicy};
pub use limiter::{RateLimiter, RateLimits, Service};
