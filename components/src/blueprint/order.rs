//! The ordering edges no reference expresses, each a rule AWS or the workload imposes,
//! written once here and applied to the whole environment. An edge orders both ways: the
//! dependency is created first and deleted last. Nothing else in the blueprint adds one (a
//! test holds it), so what waits on what is read here, not across the builders.
//!
//! Deliberately absent: the cluster waiting for the private routes. The control plane needs
//! its subnets and role, not egress; only what launches nodes needs the NAT gateway, so the
//! gateway's readiness overlaps the cluster's instead of preceding it.

use byoc_engine::Resource;

use crate::resources::{cluster_drain, helm_release};

/// The resources a rule speaks of.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pick {
    /// Those whose name matches one of the patterns (each with at most one `*`).
    Names(&'static [&'static str]),
    /// Every resource of a kind.
    Kind(&'static str),
}

impl Pick {
    fn picks(self, r: &Resource) -> bool {
        match self {
            Pick::Names(patterns) => patterns.iter().any(|p| matches(p, &r.name)),
            Pick::Kind(kind) => r.kind == kind,
        }
    }
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
        None => pattern == name,
    }
}

/// `then` waits for every resource `first` picks (that exists).
#[derive(Debug)]
pub(crate) struct Rule {
    pub then: Pick,
    pub first: Pick,
    /// Read by people and by the tests, which name a rule by it.
    #[cfg_attr(not(test), expect(dead_code))]
    pub why: &'static str,
}

use Pick::{Kind, Names};

/// What launches nodes needs the private subnets' default routes and their associations.
const EGRESS: Pick = Names(&["route-private-*-default", "rta-private-*"]);
const RELEASES: Pick = Kind(helm_release::KIND);

pub(crate) const RULES: &[Rule] = &[
    Rule {
        then: Names(&["route-public-default"]),
        first: Names(&["igw-attachment"]),
        why: "a route to an internet gateway needs it attached to the VPC",
    },
    Rule {
        then: Names(&["nat-*"]),
        first: Names(&["igw-attachment"]),
        why: "a public NAT gateway needs the VPC's internet gateway attached",
    },
    Rule {
        then: Names(&["nodegroup-default"]),
        first: EGRESS,
        why: "nodes reach EKS and ECR through the NAT gateway to join; it outlives them on destroy",
    },
    Rule {
        then: RELEASES,
        first: EGRESS,
        why: "a release's pods make Auto Mode or Karpenter launch nodes, which need egress; Karpenter's cleanup needs it on destroy",
    },
    Rule {
        then: RELEASES,
        first: Names(&["nodegroup-default"]),
        why: "a release waits for its pods, which need the managed node group's nodes",
    },
    Rule {
        then: Names(&["karpenter-defaults"]),
        first: Names(&["karpenter"]),
        why: "the default node pool's custom resources are defined by Karpenter's chart",
    },
    Rule {
        then: Kind(cluster_drain::KIND),
        first: RELEASES,
        why: "the cluster is drained on destroy while its controllers still run",
    },
    Rule {
        then: Names(&["cluster"]),
        first: Names(&["cluster-leftovers"]),
        why: "what Kubernetes left in AWS is swept on destroy once the cluster is gone",
    },
    Rule {
        then: Names(&["cluster-leftovers"]),
        first: Names(&["igw-attachment", "subnet-*"]),
        why: "and before the network it lives in is torn down",
    },
];

/// `resources` with every rule's edges.
pub(crate) fn apply(mut resources: Vec<Resource>) -> Vec<Resource> {
    let all = resources.clone();
    for r in &mut resources {
        let rules: Vec<&Rule> = RULES.iter().filter(|rule| rule.then.picks(r)).collect();
        for rule in rules {
            for first in all
                .iter()
                .filter(|f| rule.first.picks(f) && f.name != r.name)
            {
                if !r.depends_on.contains(&first.name) {
                    r.depends_on.push(first.name.clone());
                }
            }
        }
    }
    resources
}

/// The rule that orders `then` after `first`, if any.
#[cfg(test)]
pub(crate) fn explains(then: &Resource, first: &Resource) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|rule| rule.then.picks(then) && rule.first.picks(first))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches("nat-*", "nat-a"));
        assert!(matches(
            "route-private-*-default",
            "route-private-b-default"
        ));
        assert!(!matches("route-private-*-default", "route-private-b"));
        assert!(!matches("nat-*", "nat"));
        assert!(matches("cluster", "cluster"));
        assert!(!matches("cluster", "cluster-leftovers"));
    }
}
