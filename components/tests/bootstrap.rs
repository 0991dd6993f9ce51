//! The bootstrap components as the blueprint makes them: each release is rendered by the
//! real helm binary (`helm template`) with a local fixture chart that echoes its values, and
//! the values byoc generates (cluster, role ARNs, the config's own values) are checked.
//! byoc's built-in chart (Karpenter's default NodePool and EC2NodeClass) renders for real.

mod common;

use std::collections::BTreeMap;

use byoc_components::RateLimits;
use byoc_components::blueprint::environment;
use byoc_components::helm::{Helm, Release};
use byoc_components::resources::{helm_release, iam_role};
use byoc_engine::{CancellationToken, Ctx, resolve};
use byoc_model::EnvironmentConfig;
use byoc_testkit::Emulator;
use byoc_testkit::workspace_root;
use serde_json::{Value, json};

const STACK: &str = "acme-dev";
const ISSUER: &str = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789";

fn config(components: Value) -> Result<EnvironmentConfig, byoc_model::ConfigError> {
    EnvironmentConfig::from_value(&json!({
        "region": "eu-west-1",
        "eks_mode": "managed",
        "components": components,
    }))
}

/// Outputs as the cluster, its OIDC provider and the roles would have them.
fn outputs() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    out.insert(
        "cluster".to_string(),
        json!({
            "name": STACK,
            "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
            "certificate_authority": "Q0EgZGF0YQ==",
            "oidc_issuer": ISSUER,
        }),
    );
    out.insert(
        "oidc-provider".to_string(),
        json!({"arn": "arn:aws:iam::111111111111:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"}),
    );
    out.insert(
        "node-role".to_string(),
        json!({"name": "byoc-acme-dev-node"}),
    );
    out.insert(
        "karpenter-queue".to_string(),
        json!({"name": "byoc-acme-dev-karpenter", "arn": "arn:aws:sqs:eu-west-1:111111111111:byoc-acme-dev-karpenter"}),
    );
    for role in [
        "karpenter-role",
        "cert-manager-role",
        "external-secrets-role",
    ] {
        out.insert(
            role.to_string(),
            json!({"arn": format!("arn:aws:iam::111111111111:role/{role}")}),
        );
    }
    out
}

async fn helm() -> anyhow::Result<Helm> {
    Ok(Helm::locate(workspace_root().join(".tools/helm")).await?)
}

/// The values a release renders with, read back from the echo chart's ConfigMap.
async fn rendered_values(helm: &Helm, release: &Release) -> anyhow::Result<Value> {
    let mut echo = release.clone();
    echo.chart = workspace_root()
        .join("components/tests/fixtures/charts/echo")
        .display()
        .to_string();
    echo.repo = None;
    echo.version = "1.0.0".into();
    let manifest = helm.template(&echo, &CancellationToken::new()).await?;
    let doc: Value = serde_norway::from_str(&manifest)?;
    assert_eq!(doc["metadata"]["namespace"], release.namespace.as_str());
    Ok(serde_json::from_str(
        doc["data"]["values.json"].as_str().unwrap(),
    )?)
}

#[tokio::test]
async fn every_release_renders_with_the_values_byoc_generates() -> anyhow::Result<()> {
    let helm = helm().await?;
    assert!(helm.version().starts_with("v3."), "{}", helm.version());
    let config = config(json!({
        "karpenter": {},
        "argocd": {"values": {"server": {"replicas": 2}}},
        "cert_manager": {"version": "v1.16.0", "dns01_hosted_zone_ids": ["Z0123456789ABC"]},
        "external_secrets": {"secrets_prefix": "acme/"},
        "ingress_nginx": {"values": {"controller": {"replicaCount": 3}}},
    }))?;
    let resources = environment(STACK, &config)?;
    let outputs = outputs();
    let lookup = |name: &str| outputs.get(name);
    let mut releases = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for r in &resources {
        let irsa = r.kind == iam_role::KIND && r.inputs.get("service_account").is_some();
        if r.kind != helm_release::KIND && !irsa {
            continue;
        }
        let inputs = resolve(&r.inputs, &lookup, false)?;
        if r.kind == helm_release::KIND {
            let inputs: helm_release::Inputs = serde_json::from_value(inputs)?;
            assert_eq!(inputs.cluster.name, STACK);
            // Releases wait for nodes; the default pool for Karpenter's CRDs.
            let after = match r.name.as_str() {
                "karpenter-defaults" => "karpenter",
                _ => "nodegroup-default",
            };
            assert!(r.depends_on.iter().any(|d| d == after), "{}", r.name);
            releases.insert(r.name.clone(), inputs.release);
        } else {
            let inputs: iam_role::Inputs = serde_json::from_value(inputs)?;
            roles.insert(r.name.clone(), inputs);
        }
    }
    assert_eq!(
        releases.keys().collect::<Vec<_>>(),
        [
            "argocd",
            "cert-manager",
            "external-secrets",
            "ingress-nginx",
            "karpenter",
            "karpenter-defaults"
        ]
    );
    // The cluster is drained before any release goes (deletes run dependents first).
    let drain = resources
        .iter()
        .find(|r| r.name == "cluster-drain")
        .unwrap();
    for release in releases.keys() {
        assert!(drain.depends_on.contains(release), "drain after {release}");
    }
    assert_eq!(
        drain.inputs["node_pools"], true,
        "byoc's Karpenter: its pools go"
    );
    // Pinned charts, unless the config says otherwise.
    let karpenter = &releases["karpenter"];
    assert_eq!(
        (karpenter.chart.as_str(), karpenter.version.as_str()),
        ("oci://public.ecr.aws/karpenter/karpenter", "1.3.3")
    );
    assert_eq!(releases["cert-manager"].version, "v1.16.0");
    assert_eq!(
        releases["argocd"].repo.as_deref(),
        Some("https://argoproj.github.io/argo-helm")
    );

    let role = |name: &str| json!({"eks.amazonaws.com/role-arn": format!("arn:aws:iam::111111111111:role/{name}")});
    let values = rendered_values(&helm, karpenter).await?;
    assert_eq!(values["settings"]["clusterName"], STACK);
    assert_eq!(
        values["settings"]["clusterEndpoint"],
        "https://ABC.gr7.eu-west-1.eks.amazonaws.com"
    );
    assert_eq!(
        values["serviceAccount"]["annotations"],
        role("karpenter-role")
    );
    assert_eq!(
        values["settings"]["interruptionQueue"],
        "byoc-acme-dev-karpenter"
    );
    let values = rendered_values(&helm, &releases["cert-manager"]).await?;
    assert_eq!(values["crds"]["enabled"], true);
    assert_eq!(
        values["serviceAccount"]["annotations"],
        role("cert-manager-role")
    );
    let values = rendered_values(&helm, &releases["external-secrets"]).await?;
    assert_eq!(values["installCRDs"], true);
    assert_eq!(
        values["serviceAccount"]["annotations"],
        role("external-secrets-role")
    );
    // The config's values merge over byoc's.
    let values = rendered_values(&helm, &releases["ingress-nginx"]).await?;
    assert_eq!(values["controller"]["replicaCount"], 3);
    assert_eq!(
        values["controller"]["service"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"],
        "nlb"
    );
    let values = rendered_values(&helm, &releases["argocd"]).await?;
    assert_eq!(values["server"]["replicas"], 2);
    assert_eq!(values["configs"]["params"]["server.insecure"], true);

    // byoc's own chart renders as it is shipped.
    let defaults = helm
        .template(&releases["karpenter-defaults"], &CancellationToken::new())
        .await?;
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&defaults)
        .map(|d| serde::Deserialize::deserialize(d).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<_>>()?;
    let class = docs.iter().find(|d| d["kind"] == "EC2NodeClass").unwrap();
    assert_eq!(class["spec"]["role"], "byoc-acme-dev-node");
    assert_eq!(
        class["spec"]["subnetSelectorTerms"][0]["tags"]["karpenter.sh/discovery"],
        STACK
    );
    // Its nodes carry the tag by which the trust template lets byoc delete what Karpenter
    // left.
    assert_eq!(class["spec"]["tags"]["karpenter.sh/discovery"], STACK);
    let pool = docs.iter().find(|d| d["kind"] == "NodePool").unwrap();
    assert_eq!(
        pool["spec"]["template"]["spec"]["nodeClassRef"]["name"],
        "default"
    );

    // Each service account role trusts exactly its service account, for STS.
    let host = ISSUER.trim_start_matches("https://");
    for (key, namespace, name) in [
        ("karpenter-role", "kube-system", "karpenter"),
        ("cert-manager-role", "cert-manager", "cert-manager"),
        (
            "external-secrets-role",
            "external-secrets",
            "external-secrets",
        ),
    ] {
        let trust = roles[key].service_account.as_ref().unwrap().policy();
        let statement = &trust["Statement"][0];
        assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(
            statement["Condition"]["StringEquals"],
            json!({
                format!("{host}:sub"): format!("system:serviceaccount:{namespace}:{name}"),
                format!("{host}:aud"): "sts.amazonaws.com",
            })
        );
    }
    let secrets = &roles["external-secrets-role"].inline_policies["external-secrets"];
    assert_eq!(
        secrets["Statement"][0]["Resource"],
        "arn:aws:secretsmanager:eu-west-1:*:secret:acme/*"
    );
    Ok(())
}

#[tokio::test]
async fn no_components_unless_listed_and_bad_ones_are_named() -> anyhow::Result<()> {
    let plain = environment(STACK, &config(json!({}))?)?;
    assert!(plain.iter().all(|r| r.kind != helm_release::KIND));
    let off = environment(STACK, &config(json!({"argocd": {"enabled": false}}))?)?;
    assert_eq!(off.len(), plain.len());

    let auto = EnvironmentConfig::from_value(&json!({
        "region": "eu-west-1", "eks_mode": "auto", "components": {"karpenter": {}},
    }))
    .unwrap_err();
    assert_eq!(auto.field, "components.karpenter");
    for (components, field) in [
        (
            json!({"argocd": {"version": "1 2"}}),
            "components.argocd.version",
        ),
        (
            json!({"argocd": {"dns01_hosted_zone_ids": ["Z1"]}}),
            "components.argocd.dns01_hosted_zone_ids",
        ),
        (
            json!({"argocd": {"repo": "https://x"}}),
            "components.argocd.repo",
        ),
        (
            json!({"cert_manager": {"dns01_hosted_zone_ids": ["nope"]}}),
            "components.cert_manager.dns01_hosted_zone_ids[0]",
        ),
        (
            json!({"external_secrets": {"secrets_prefix": "a/*"}}),
            "components.external_secrets.secrets_prefix",
        ),
        (json!({"linkerd": {}}), "components.linkerd"),
        (
            json!({"argocd": {"colour": "red"}}),
            "components.argocd.colour",
        ),
    ] {
        let err = config(components.clone()).unwrap_err();
        assert_eq!(err.field, field, "{components}: {err}");
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_or_unusable_helm_is_a_clear_error() {
    let err = Helm::locate("/nonexistent/helm")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/helm") && err.contains("BYOC_HELM"),
        "{err}"
    );
    // `true` runs but prints no version.
    let err = Helm::locate("true").await.unwrap_err().to_string();
    assert!(err.contains("not supported"), "{err}");
}

/// A fresh account of the shared emulator, and an environment of stack STACK acting in it.
async fn fresh_env() -> (String, common::env::Env) {
    let emulator = Emulator::shared();
    let account = emulator.fresh_account();
    let platform = common::env::platform(emulator.endpoint(), RateLimits::default()).await;
    let env = common::env::Env::new(&platform, &account, STACK);
    (account, env)
}

/// The context of a provider call on `resource` of STACK.
fn step(resource: &str) -> Ctx {
    Ctx {
        stack: STACK.into(),
        resource: resource.into(),
        token: format!("t-{resource}"),
        attempt: 1,
        cancel: CancellationToken::new(),
    }
}

/// A service account role in the emulator: its trust is made from the service account and
/// reads back as that service account, so a refresh finds no drift.
#[tokio::test]
async fn a_service_account_role_reads_back_as_written() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let (account, env) = fresh_env().await;
    let provider = env
        .providers
        .get(iam_role::KIND)
        .expect("the IAM role provider");
    let ctx = step("external-secrets-role");
    let inputs = json!({
        "name": "byoc-acme-dev-external-secrets",
        "service_account": {
            "oidc_provider_arn": format!("arn:aws:iam::{account}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"),
            "issuer": ISSUER,
            "namespace": "external-secrets",
            "name": "external-secrets",
        },
        "inline_policies": {"read": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}]}},
    });
    let created = provider.create(&ctx, &inputs).await?;
    let observed = provider.read(&ctx, &created.physical_id, &inputs).await?;
    let canonical =
        |v: &Value| -> anyhow::Result<iam_role::Inputs> { Ok(serde_json::from_value(v.clone())?) };
    assert_eq!(canonical(&observed.inputs)?, canonical(&inputs)?);
    // Changed behind byoc's back, the trust shows as drift (the raw policy).
    let customer = common::assumed_account(emulator.endpoint(), &account).await?;
    aws_sdk_iam::Client::new(&customer)
        .update_assume_role_policy()
        .role_name("byoc-acme-dev-external-secrets")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await?;
    let observed = provider.read(&ctx, &created.physical_id, &inputs).await?;
    let drifted = canonical(&observed.inputs)?;
    assert!(drifted.service_account.is_none(), "{drifted:?}");
    provider.delete(&ctx, &created.physical_id, &inputs).await?;
    Ok(())
}

/// A role is made under the trust template's boundary, and a role made before byoc set
/// boundaries (trust template 1.x) is put under it by the next update, before any policy
/// changes (the template allows those only on roles under it).
#[tokio::test]
async fn roles_are_made_and_put_under_the_boundary() -> anyhow::Result<()> {
    let emulator = Emulator::shared();
    let (account, env) = fresh_env().await;
    let provider = env.providers.get(iam_role::KIND).unwrap();
    let ctx = step;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let boundary_arn = format!("arn:aws:iam::{account}:policy/byoc-deployer-boundary");
    let boundary_of = |name: &'static str| {
        let iam = env.aws.iam.clone();
        async move {
            let role = iam.get_role().role_name(name).send().await?;
            anyhow::Ok(
                role.role()
                    .and_then(|r| r.permissions_boundary())
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_string),
            )
        }
    };

    let bounded = json!({"name": "byoc-acme-dev-new", "assume_role_policy": trust, "permissions_boundary": "byoc-deployer-boundary"});
    let created = provider.create(&ctx("new"), &bounded).await?;
    assert_eq!(
        boundary_of("byoc-acme-dev-new").await?,
        Some(boundary_arn.clone())
    );
    let seen = provider
        .read(&ctx("new"), &created.physical_id, &bounded)
        .await?;
    assert_eq!(
        seen.inputs["permissions_boundary"],
        "byoc-deployer-boundary"
    );

    let old = json!({"name": "byoc-acme-dev-old", "assume_role_policy": trust});
    let created = provider.create(&ctx("old"), &old).await?;
    assert_eq!(boundary_of("byoc-acme-dev-old").await?, None);
    let mut new = old.clone();
    new["permissions_boundary"] = json!("byoc-deployer-boundary");
    new["managed_policy_arns"] = json!(["arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"]);
    assert!(
        matches!(provider.diff(&old, &new), byoc_engine::Diff::Update(_)),
        "an update in place"
    );
    provider
        .update(&ctx("old"), &created.physical_id, &old, &new)
        .await?;
    assert_eq!(boundary_of("byoc-acme-dev-old").await?, Some(boundary_arn));
    let iam = emulator.requests("iam")?;
    let put = iam
        .find("Action=PutRolePermissionsBoundary")
        .expect("a PutRolePermissionsBoundary");
    let attach = iam
        .find("Action=AttachRolePolicy")
        .expect("an AttachRolePolicy");
    assert!(put < attach, "the boundary goes on first");
    Ok(())
}

/// Karpenter's interruption queue and one of its rules in the emulator: written, read back
/// as written (no drift), adopted after an interrupted create, and deleted.
#[tokio::test]
async fn the_interruption_queue_and_its_rules_read_back_as_written() -> anyhow::Result<()> {
    use byoc_components::resources::{eventbridge_rule, sqs_queue};
    let (account, env) = fresh_env().await;
    let ctx = step;
    let queue = env.providers.get(sqs_queue::KIND).unwrap();
    let rule = env.providers.get(eventbridge_rule::KIND).unwrap();
    let queue_inputs = json!({
        "name": "byoc-acme-dev-karpenter",
        "senders": ["events.amazonaws.com", "sqs.amazonaws.com"],
        "tags": {"team": "platform"},
    });
    let q = queue.create(&ctx("karpenter-queue"), &queue_inputs).await?;
    assert_eq!(
        q.outputs["arn"],
        format!(
            "arn:aws:sqs:{}:{account}:byoc-acme-dev-karpenter",
            common::REGION
        )
    );
    let observed = queue
        .read(&ctx("karpenter-queue"), &q.physical_id, &queue_inputs)
        .await?;
    let canonical_queue =
        |v: &Value| -> anyhow::Result<sqs_queue::Inputs> { Ok(serde_json::from_value(v.clone())?) };
    assert_eq!(
        canonical_queue(&observed.inputs)?,
        canonical_queue(&queue_inputs)?
    );

    let rule_inputs = json!({
        "name": "byoc-acme-dev-k-spot",
        "event_pattern": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
        "target_arn": q.outputs["arn"],
        "tags": {"team": "platform"},
    });
    let r = rule
        .create(&ctx("karpenter-rule-spot"), &rule_inputs)
        .await?;
    let observed = rule
        .read(&ctx("karpenter-rule-spot"), &r.physical_id, &rule_inputs)
        .await?;
    let canonical_rule = |v: &Value| -> anyhow::Result<eventbridge_rule::Inputs> {
        Ok(serde_json::from_value(v.clone())?)
    };
    assert_eq!(
        canonical_rule(&observed.inputs)?,
        canonical_rule(&rule_inputs)?
    );
    // An interrupted create is adopted (the tags name this stack), not made twice.
    let adopted = rule
        .find_existing(&ctx("karpenter-rule-spot"), &rule_inputs)
        .await?;
    assert_eq!(adopted.map(|c| c.physical_id), Some(r.physical_id.clone()));
    // Another stack's rule of the same name is not adopted.
    let other = Ctx {
        stack: "other-dev".into(),
        ..ctx("karpenter-rule-spot")
    };
    let platform =
        common::env::platform(Emulator::shared().endpoint(), RateLimits::default()).await;
    let env_other = common::env::Env::new(&platform, &account, "other-dev");
    let foreign = env_other
        .providers
        .get(eventbridge_rule::KIND)
        .unwrap()
        .find_existing(&other, &rule_inputs)
        .await?;
    assert!(foreign.is_none());

    rule.delete(&ctx("karpenter-rule-spot"), &r.physical_id, &rule_inputs)
        .await?;
    queue
        .delete(&ctx("karpenter-queue"), &q.physical_id, &queue_inputs)
        .await?;
    let gone = rule
        .read(&ctx("karpenter-rule-spot"), &r.physical_id, &rule_inputs)
        .await
        .unwrap_err();
    assert_eq!(
        rule.classify(&gone),
        byoc_engine::ErrorClass::NotFound,
        "{gone}"
    );
    let gone = queue
        .read(&ctx("karpenter-queue"), &q.physical_id, &queue_inputs)
        .await
        .unwrap_err();
    assert_eq!(
        queue.classify(&gone),
        byoc_engine::ErrorClass::NotFound,
        "{gone}"
    );
    Ok(())
}
