//! The bootstrap layer of an environment: the Helm releases its config lists, each with the
//! AWS prerequisites it needs (an IAM role for its service account through the cluster's
//! OIDC provider) and the values byoc generates for it; the config's own values are merged
//! over those.

use byoc_engine::{Resource, reference};
use byoc_model::{
    CapacityType, Component, ComponentConfig, EksMode, EnvironmentConfig, merge_values,
};
use serde_json::{Value, json};

use crate::helm::BUILTIN_CHART_VERSION;
use crate::resources::{cluster_drain, eventbridge_rule, helm_release, iam_role, sqs_queue};

/// The resources of the components `config` lists, for `stack`. `role_name` names IAM roles
/// (`byoc-{stack}-...`, within AWS's limits); `tags` are the environment's tags.
pub fn bootstrap(
    stack: &str,
    config: &EnvironmentConfig,
    role_name: impl Fn(&str) -> String,
    tags: &Value,
) -> Vec<Resource> {
    let cluster = json!({
        "name": reference("cluster", "name"),
        "endpoint": reference("cluster", "endpoint"),
        "certificate_authority": reference("cluster", "certificate_authority"),
    });
    // Releases wait for their pods: nodes must exist first (Auto Mode makes its own).
    let nodes = (config.eks_mode == EksMode::Managed).then_some("nodegroup-default");
    let release = |key: &str, cfg: &ComponentConfig, component: Component, values: Value| {
        let source = component.source();
        let mut values = values;
        merge_values(&mut values, &Value::Object(cfg.values.clone()));
        let (chart, repo) = match &cfg.chart {
            Some(chart) => (chart.clone(), cfg.repo.clone()),
            None => (source.chart.to_string(), source.repo.map(str::to_string)),
        };
        let mut inputs = json!({
            "cluster": cluster,
            "name": source.release,
            "namespace": source.namespace,
            "chart": chart,
            "version": cfg.version.as_deref().unwrap_or(source.version),
            "values": values,
        });
        if let Some(repo) = repo {
            inputs["repo"] = json!(repo);
        }
        let mut r = Resource::new(helm_release::KIND, key, inputs);
        if let Some(nodes) = nodes {
            r = r.depends_on(nodes);
        }
        r
    };
    // An IAM role only `namespace/name` may assume, with one inline policy.
    let irsa = |key: &str, suffix: &str, namespace: &str, name: &str, policy: Value| {
        Resource::new(
            iam_role::KIND,
            key,
            json!({
                "name": role_name(suffix),
                "service_account": {
                    "oidc_provider_arn": reference("oidc-provider", "arn"),
                    "issuer": reference("cluster", "oidc_issuer"),
                    "namespace": namespace,
                    "name": name,
                },
                "inline_policies": {suffix: policy},
                "tags": tags,
            }),
        )
    };
    let role_arn = |key: &str| json!({"eks.amazonaws.com/role-arn": reference(key, "arn")});

    let mut out = Vec::new();
    for (component, cfg) in config.components.enabled() {
        match component {
            Component::Karpenter => {
                // Spot interruptions, rebalance advice, scheduled maintenance and state
                // changes reach Karpenter through this queue, ahead of the event.
                let queue = role_name("karpenter");
                out.push(Resource::new(
                    sqs_queue::KIND,
                    "karpenter-queue",
                    json!({
                        "name": queue,
                        "senders": ["events.amazonaws.com", "sqs.amazonaws.com"],
                        "tags": tags,
                    }),
                ));
                for (key, source, detail) in INTERRUPTION_EVENTS {
                    out.push(Resource::new(
                        eventbridge_rule::KIND,
                        format!("karpenter-rule-{key}"),
                        json!({
                            "name": role_name(&format!("k-{key}")),
                            "event_pattern": {"source": [source], "detail-type": [detail]},
                            "target_arn": reference("karpenter-queue", "arn"),
                            "tags": tags,
                        }),
                    ));
                }
                out.push(irsa(
                    "karpenter-role",
                    "karpenter",
                    "kube-system",
                    "karpenter",
                    karpenter_policy(stack, &config.region, &queue),
                ));
                out.push(release(
                    "karpenter",
                    cfg,
                    component,
                    json!({
                        "settings": {
                            "clusterName": reference("cluster", "name"),
                            "clusterEndpoint": reference("cluster", "endpoint"),
                            "interruptionQueue": reference("karpenter-queue", "name"),
                        },
                        "serviceAccount": {"annotations": role_arn("karpenter-role")},
                    }),
                ));
                // Karpenter's CRDs come with its chart: the default pool after it.
                out.push(
                    Resource::new(
                        helm_release::KIND,
                        "karpenter-defaults",
                        json!({
                            "cluster": cluster,
                            "name": "karpenter-defaults",
                            "namespace": "kube-system",
                            "chart": "byoc:karpenter-defaults",
                            "version": BUILTIN_CHART_VERSION,
                            "values": {
                                "discoveryTag": stack,
                                "clusterName": reference("cluster", "name"),
                                "nodeRole": reference("node-role", "name"),
                                "capacityTypes": [match config.node_group_config.capacity_type {
                                    CapacityType::OnDemand => "on-demand",
                                    CapacityType::Spot => "spot",
                                }],
                            },
                        }),
                    )
                    .depends_on("karpenter"),
                );
            }
            Component::Argocd => out.push(release(
                "argocd",
                cfg,
                component,
                json!({"configs": {"params": {"server.insecure": true}}}),
            )),
            Component::CertManager => {
                let mut values = json!({"crds": {"enabled": true}});
                if !cfg.dns01_hosted_zone_ids.is_empty() {
                    out.push(irsa(
                        "cert-manager-role",
                        "cert-manager",
                        "cert-manager",
                        "cert-manager",
                        route53_policy(&cfg.dns01_hosted_zone_ids),
                    ));
                    values["serviceAccount"] =
                        json!({"annotations": role_arn("cert-manager-role")});
                    // The role's web identity token: the pod needs fsGroup to read it.
                    values["securityContext"] = json!({"fsGroup": 1001});
                }
                out.push(release("cert-manager", cfg, component, values));
            }
            Component::ExternalSecrets => {
                let prefix = cfg
                    .secrets_prefix
                    .clone()
                    .unwrap_or_else(|| format!("byoc/{stack}/"));
                out.push(irsa(
                    "external-secrets-role",
                    "external-secrets",
                    "external-secrets",
                    "external-secrets",
                    secrets_policy(&config.region, &prefix),
                ));
                out.push(release(
                    "external-secrets",
                    cfg,
                    component,
                    json!({
                        "installCRDs": true,
                        "serviceAccount": {"annotations": role_arn("external-secrets-role")},
                    }),
                ));
            }
            Component::IngressNginx => out.push(release(
                "ingress-nginx",
                cfg,
                component,
                json!({"controller": {"service": {"annotations": {
                    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
                }}}}),
            )),
        }
    }
    // Before any release goes, the cluster is drained while its controllers still run.
    if !out.is_empty() {
        let karpenter = config
            .components
            .enabled()
            .any(|(c, _)| c == Component::Karpenter);
        let mut drain = Resource::new(
            cluster_drain::KIND,
            "cluster-drain",
            json!({"cluster": cluster, "node_pools": karpenter}),
        );
        for r in out.iter().filter(|r| r.kind == helm_release::KIND) {
            drain = drain.depends_on(r.name.clone());
        }
        out.push(drain);
    }
    out
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
