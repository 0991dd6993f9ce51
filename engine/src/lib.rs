//! The IaC engine: resource graph, planner and crash-safe executor.
//!
//! Invariant: knows no AWS, SQL, HTTP or queue, and nothing byoc-specific; providers and the
//! state store reach it through traits.
