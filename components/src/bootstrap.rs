//! The bootstrap layer of an environment: the Helm releases its config lists, each with the
//! AWS prerequisites it needs (an IAM role for its service account through the cluster's
//! OIDC provider) and the values byoc generates for it; the config's own values are merged
//! over those.

use std::collections::BTreeSet;

use byoc_engine::Resource;
use byoc_model::{CapacityType, Component, ComponentConfig, merge_values};
use serde_json::{Value, json};

use crate::blueprint::Env;
use crate::helm::{BUILTIN_CHART_VERSION, Release};
use crate::resources::cluster_drain::ClusterDrain;
use crate::resources::eventbridge_rule::EventbridgeRule;
use crate::resources::helm_release::{Cluster, HelmRelease};
use crate::resources::iam_role::{IamRole, ServiceAccountTrust};
use crate::resources::sqs_queue::SqsQueue;
use crate::resources::{
    cluster_drain, eventbridge_rule, helm_release, iam_role, output, resource, sqs_queue,
};

/// The resources of the components the environment's config lists.
pub(crate) fn bootstrap(env: &Env) -> Vec<Resource> {
    let mut out = Vec::new();
    for (component, cfg) in env.config.components.enabled() {
        out.extend(match component {
            Component::Karpenter => karpenter(env, cfg),
            Component::Argocd => vec![release(
                "argocd",
                cfg,
                component,
                json!({"configs": {"params": {"server.insecure": true}}}),
            )],
            Component::CertManager => cert_manager(env, cfg),
            Component::ExternalSecrets => external_secrets(env, cfg),
            Component::IngressNginx => vec![release(
                "ingress-nginx",
                cfg,
                component,
                json!({"controller": {"service": {"annotations": {
                    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
                }}}}),
            )],
        });
    }
    // Before any release goes, the cluster is drained while its controllers still run.
    if !out.is_empty() {
        let karpenter = env
            .config
            .components
            .enabled()
            .any(|(c, _)| c == Component::Karpenter);
        out.push(resource::<ClusterDrain>(
            "cluster-drain",
            &cluster_drain::Inputs {
                cluster: cluster(),
                node_pools: karpenter,
                timeout_seconds: 900,
            },
        ));
    }
    out
}

/// The environment's cluster, as its releases reach it.
fn cluster() -> Cluster {
    Cluster {
        name: output("cluster", "name"),
        endpoint: output("cluster", "endpoint"),
        certificate_authority: output("cluster", "certificate_authority"),
    }
}

/// Resource `name`: a release of `component`'s chart (or the one its config names) with the
/// `values` byoc generates, the config's merged over them.
fn release(name: &str, cfg: &ComponentConfig, component: Component, values: Value) -> Resource {
    let source = component.source();
    let mut values = values;
    merge_values(&mut values, &Value::Object(cfg.values.clone()));
    let chart = cfg.chart(component);
    let release = Release {
        name: source.release.to_string(),
        namespace: source.namespace.to_string(),
        chart: chart.chart.to_string(),
        repo: chart.repo.map(str::to_string),
        version: chart.version.to_string(),
        values,
    };
    chart_release(name, release)
}

/// Release `release` in the environment's cluster as resource `name`.
fn chart_release(name: &str, release: Release) -> Resource {
    resource::<HelmRelease>(
        name,
        &helm_release::Inputs {
            cluster: cluster(),
            release,
            timeout_seconds: 600,
        },
    )
}

/// An IAM role only service account `namespace/name` may assume, with one inline policy.
fn irsa(
    env: &Env,
    key: &str,
    suffix: &str,
    namespace: &str,
    name: &str,
    policy: Value,
) -> Resource {
    resource::<IamRole>(
        key,
        &iam_role::Inputs {
            name: env.role_name(suffix),
            service_account: Some(ServiceAccountTrust {
                oidc_provider_arn: output("oidc-provider", "arn"),
                issuer: output("cluster", "oidc_issuer"),
                namespace: namespace.into(),
                name: name.into(),
            }),
            inline_policies: [(suffix.to_string(), policy)].into(),
            tags: env.tags(&[]),
            permissions_boundary: Some(env.boundary.clone()),
            ..iam_role::Inputs::default()
        },
    )
}

/// The service account annotation that gives a release's pods IAM role `role`.
fn role_arn(role: &str) -> Value {
    json!({"eks.amazonaws.com/role-arn": output(role, "arn")})
}

/// Karpenter: its interruption queue and the EventBridge rules feeding it, its role, its
/// release, and byoc's default node pool after it.
fn karpenter(env: &Env, cfg: &ComponentConfig) -> Vec<Resource> {
    let (stack, config) = (env.stack, env.config);
    // Spot interruptions, rebalance advice, scheduled maintenance and state changes reach
    // Karpenter through this queue, ahead of the event.
    let queue = env.role_name("karpenter");
    let mut out = vec![resource::<SqsQueue>(
        "karpenter-queue",
        &sqs_queue::Inputs {
            name: queue.clone(),
            message_retention_seconds: 300,
            senders: BTreeSet::from(["events.amazonaws.com".into(), "sqs.amazonaws.com".into()]),
            tags: env.tags(&[]),
        },
    )];
    for (key, source, detail) in INTERRUPTION_EVENTS {
        out.push(resource::<EventbridgeRule>(
            format!("karpenter-rule-{key}"),
            &eventbridge_rule::Inputs {
                name: env.role_name(&format!("k-{key}")),
                event_pattern: json!({"source": [source], "detail-type": [detail]}),
                target_arn: output("karpenter-queue", "arn"),
                tags: env.tags(&[]),
            },
        ));
    }
    out.push(irsa(
        env,
        "karpenter-role",
        "karpenter",
        "kube-system",
        "karpenter",
        karpenter_policy(stack, &config.region, &queue),
    ));
    out.push(release(
        "karpenter",
        cfg,
        Component::Karpenter,
        json!({
            "settings": {
                "clusterName": output("cluster", "name"),
                "clusterEndpoint": output("cluster", "endpoint"),
                "interruptionQueue": output("karpenter-queue", "name"),
            },
            "serviceAccount": {"annotations": role_arn("karpenter-role")},
        }),
    ));
    // Karpenter's CRDs come with its chart: the default pool after it.
    let defaults = Release {
        name: "karpenter-defaults".into(),
        namespace: "kube-system".into(),
        chart: "byoc:karpenter-defaults".into(),
        repo: None,
        version: BUILTIN_CHART_VERSION.into(),
        values: json!({
            "discoveryTag": stack,
            "clusterName": output("cluster", "name"),
            "nodeRole": output("node-role", "name"),
            "capacityTypes": [match config.node_group_config.capacity_type {
                CapacityType::OnDemand => "on-demand",
                CapacityType::Spot => "spot",
            }],
        }),
    };
    out.push(chart_release("karpenter-defaults", defaults));
    out
}

/// cert-manager, with a role for DNS01 challenges in the zones its config lists.
fn cert_manager(env: &Env, cfg: &ComponentConfig) -> Vec<Resource> {
    let mut out = Vec::new();
    let mut values = json!({"crds": {"enabled": true}});
    if !cfg.dns01_hosted_zone_ids.is_empty() {
        out.push(irsa(
            env,
            "cert-manager-role",
            "cert-manager",
            "cert-manager",
            "cert-manager",
            route53_policy(&cfg.dns01_hosted_zone_ids),
        ));
        values["serviceAccount"] = json!({"annotations": role_arn("cert-manager-role")});
        // The role's web identity token: the pod needs fsGroup to read it.
        values["securityContext"] = json!({"fsGroup": 1001});
    }
    out.push(release("cert-manager", cfg, Component::CertManager, values));
    out
}

/// External Secrets, with a role reading secrets and parameters under its prefix.
fn external_secrets(env: &Env, cfg: &ComponentConfig) -> Vec<Resource> {
    let prefix = cfg
        .secrets_prefix
        .clone()
        .unwrap_or_else(|| format!("byoc/{}/", env.stack));
    vec![
        irsa(
            env,
            "external-secrets-role",
            "external-secrets",
            "external-secrets",
            "external-secrets",
            secrets_policy(&env.config.region, &prefix),
        ),
        release(
            "external-secrets",
            cfg,
            Component::ExternalSecrets,
            json!({
                "installCRDs": true,
                "serviceAccount": {"annotations": role_arn("external-secrets-role")},
            }),
        ),
    ]
}

/// The EventBridge events Karpenter acts on: (rule key, source, detail type).
const INTERRUPTION_EVENTS: [(&str, &str, &str); 4] = [
    ("health", "aws.health", "AWS Health Event"),
    ("spot", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    (
        "rebalance",
        "aws.ec2",
        "EC2 Instance Rebalance Recommendation",
    ),
    ("state", "aws.ec2", "EC2 Instance State-change Notification"),
];

/// What the Karpenter controller does: launch and end instances of its node class in the
/// stack's subnets, pass the node role, manage instance profiles, read prices and AMIs, and
/// take messages off its interruption queue.
fn karpenter_policy(stack: &str, region: &str, queue: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InterruptionQueue",
                "Effect": "Allow",
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                "Resource": format!("arn:aws:sqs:{region}:*:{queue}"),
            },
            {
                "Sid": "Launch",
                "Effect": "Allow",
                "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateTags"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
            },
            {
                "Sid": "EndOwnInstances",
                "Effect": "Allow",
                "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                "Resource": "*",
                "Condition": {"StringEquals": {format!("aws:ResourceTag/kubernetes.io/cluster/{stack}"): "owned"}},
            },
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeAvailabilityZones", "ec2:DescribeImages", "ec2:DescribeInstances",
                    "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates", "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets",
                    "pricing:GetProducts", "ssm:GetParameter", "eks:DescribeCluster",
                ],
                "Resource": "*",
            },
            {
                "Sid": "PassNodeRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": format!("arn:aws:iam::*:role/byoc-{stack}-*"),
                "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            },
            {
                "Sid": "InstanceProfiles",
                "Effect": "Allow",
                "Action": [
                    "iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile",
                    "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
                ],
                "Resource": "*",
            },
        ],
    })
}

/// cert-manager's DNS01 solver: change records in the listed zones only.
fn route53_policy(zones: &[String]) -> Value {
    let zone_arns: Vec<String> = zones
        .iter()
        .map(|z| format!("arn:aws:route53:::hostedzone/{z}"))
        .collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "route53:GetChange", "Resource": "arn:aws:route53:::change/*"},
            {
                "Effect": "Allow",
                "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                "Resource": zone_arns,
            },
            {"Effect": "Allow", "Action": "route53:ListHostedZonesByName", "Resource": "*"},
        ],
    })
}

/// External Secrets: read secrets and parameters under `prefix` only.
fn secrets_policy(region: &str, prefix: &str) -> Value {
    let prefix = prefix.trim_start_matches('/');
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
                    "secretsmanager:ListSecretVersionIds",
                ],
                "Resource": format!("arn:aws:secretsmanager:{region}:*:secret:{prefix}*"),
            },
            {
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                "Resource": format!("arn:aws:ssm:{region}:*:parameter/{prefix}*"),
            },
        ],
    })
}
