//! What the trust template grants against what byoc calls (issue 19): every AWS action
//! byoc's role calls must be granted, and every action granted must be called, or be listed
//! here with the reason it is granted anyway.
//!
//! "Called" is what the emulator saw byoc's role call (`Emulator::actions`) during a whole
//! lifecycle through the launched template's role, with IAM enforced (so any call the
//! template does not grant fails the lifecycle itself): a managed environment with Karpenter,
//! cert-manager and External Secrets deployed, changed (tags, Kubernetes version, node
//! group size, NAT per zone, endpoint access, a component removed), swept of what its
//! cluster's controllers left, and destroyed. A code path no lifecycle here takes (drift
//! repair of a trust policy, an OIDC provider's client ids) is caught by a scan of the
//! source: every SDK call in `components/src` outside test code must be granted too, and
//! every call the emulator saw must be in the scan (which keeps the scan honest).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;

use byoc_components::resources::{cluster_drain, helm_release};
use byoc_components::{Platform, PlatformOptions, Target, WaitPolicy};
use byoc_engine::{
    CancellationToken, Created, Ctx, Observed, Provider, ProviderError, RetryPolicy, RunStatus,
    StateStore, drift, refresh,
};
use byoc_model::{EnvironmentConfig, TRUST_ROLE_NAME};
use byoc_testkit::{Emulator, EmulatorOptions, workspace_root};
use common::env::{Env, LeftoverTags, leave_leftovers};
use serde_json::{Value, json};

/// Granted by the template, never called by the lifecycle below: why each is granted.
const GRANTED_UNCALLED: &[(&str, &str)] = &[
    (
        "iam:UpdateAssumeRolePolicy",
        "repairs a role's trust changed outside byoc (scanned: iam_role.rs)",
    ),
    (
        "iam:AddClientIDToOpenIDConnectProvider",
        "repairs an OIDC provider's client ids (scanned: oidc_provider.rs)",
    ),
    (
        "iam:RemoveClientIDFromOpenIDConnectProvider",
        "repairs an OIDC provider's client ids (scanned: oidc_provider.rs)",
    ),
    (
        "iam:UpdateOpenIDConnectProviderThumbprint",
        "repairs an OIDC provider's thumbprints (scanned: oidc_provider.rs)",
    ),
    (
        "iam:PutRolePermissionsBoundary",
        "puts a role made before template 2.0.0 under the boundary (bootstrap.rs tests it)",
    ),
    (
        "iam:PassRole",
        "not an API call: EKS checks it when CreateCluster / CreateNodegroup pass a role",
    ),
    (
        "iam:CreateServiceLinkedRole",
        "not an API call of byoc's: EKS makes its service-linked roles on the first cluster",
    ),
    (
        "eks:ListUpdates",
        "polls an EKS update still in progress (the shared emulator ends them at once; upgrades.rs waits on some)",
    ),
];

/// The deployer's grants: the Allow actions of the policies attached to the role, rendered
/// with every optional feature on.
fn granted() -> anyhow::Result<BTreeSet<String>> {
    let out = std::process::Command::new(workspace_root().join(".venv/bin/python"))
        .arg(workspace_root().join("tools/policy/render.py"))
        .args(["--param", "TrustedAccountId=123456789012"])
        .args(["--param", &format!("ExternalId={}", "e".repeat(40))])
        .args(["--param", "TenantSlug=acme"])
        .args(["--param", "CertManagerHostedZoneIds=Z1"])
        .args(["--param", "ExternalSecretsPrefix=byoc/"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "render.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered: Value = serde_json::from_slice(&out.stdout)?;
    let mut actions = BTreeSet::new();
    for policy in rendered["policies"].as_object().unwrap().values() {
        if policy["attached"] != true {
            continue;
        }
        for s in policy["document"]["Statement"].as_array().unwrap() {
            if s["Effect"] != "Allow" {
                continue;
            }
            match &s["Action"] {
                Value::String(a) => actions.insert(a.clone()),
                Value::Array(list) => {
                    for a in list {
                        actions.insert(a.as_str().unwrap().to_string());
                    }
                    true
                }
                other => panic!("an Action of {other}"),
            };
        }
    }
    Ok(actions)
}

/// `prefix:action`, case-insensitively, matched by a granted pattern (`*` wildcards).
fn is_granted(granted: &BTreeSet<String>, action: &str) -> bool {
    fn matches(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                matches(&pattern[1..], text) || (!text.is_empty() && matches(pattern, &text[1..]))
            }
            (Some(p), Some(t)) => p == t && matches(&pattern[1..], &text[1..]),
            _ => false,
        }
    }
    let action = action.to_lowercase();
    granted
        .iter()
        .any(|g| matches(g.to_lowercase().as_bytes(), action.as_bytes()))
}

/// The SDK clients byoc's providers call through its role, by the name the code gives them,
/// and their IAM prefixes.
const CLIENTS: [(&str, &str); 7] = [
    ("ec2", "ec2"),
    ("iam", "iam"),
    ("eks", "eks"),
    ("sqs", "sqs"),
    ("events", "events"),
    ("elb", "elasticloadbalancing"),
    ("cloudformation", "cloudformation"),
];

/// Rust source without its test-only items (`#[cfg(test)]`, `#[cfg(feature = "testing")]`):
/// each is cut from its attribute to the end of the braces that follow.
fn without_test_code(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    loop {
        let at = ["#[cfg(test)]", "#[cfg(feature = \"testing\")]"]
            .iter()
            .filter_map(|m| rest.find(m))
            .min();
        let Some(at) = at else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let open = after
            .find('{')
            .expect("a braced item after a cfg attribute");
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
}

/// Every SDK operation `components/src` calls on the tenant's clients (`client.op(` where
/// `client` is one of [`CLIENTS`], across line breaks), as lowercase `prefix:operation`
/// (the SDK's snake_case without `_`, which is how IAM names it, case aside), with a file
/// that calls it.
fn scanned() -> anyhow::Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![workspace_root().join("components/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let code = without_test_code(&std::fs::read_to_string(&path)?);
            let compact: String = code.split_whitespace().collect::<Vec<_>>().join("");
            // `ec2_describe!(Object, "Operation", ...)` writes an EC2 describe call.
            for (at, _) in compact.match_indices("ec2_describe!(") {
                let args = &compact[at..];
                let Some(open) = args.find('"') else { continue };
                let close = open + 1 + args[open + 1..].find('"').unwrap_or(0);
                let op = &args[open + 1..close];
                if !op.is_empty() && op.chars().all(|c| c.is_ascii_alphanumeric()) {
                    let file = path.strip_prefix(workspace_root())?.display().to_string();
                    found
                        .entry(format!("ec2:{}", op.to_lowercase()))
                        .or_insert(file);
                }
            }
            for (client, prefix) in CLIENTS {
                let needle = format!("{client}.");
                for (at, _) in compact.match_indices(&needle) {
                    // A whole identifier: `aws.ec2.x(` or `ec2.x(`, not `my_ec2.`.
                    let before = compact[..at].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let tail = &compact[at + needle.len()..];
                    let op: String = tail
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                        .collect();
                    if op.is_empty() || !tail[op.len()..].starts_with("()") {
                        continue;
                    }
                    let action = format!("{prefix}:{}", op.replace('_', ""));
                    let file = path.strip_prefix(workspace_root())?.display().to_string();
                    found.entry(action).or_insert(file);
                }
            }
        }
    }
    Ok(found)
}

/// Helm releases and the drain talk to Kubernetes, which the emulator has not: they make
/// nothing here (they call no AWS API through the role either).
struct NoKubernetes;

#[async_trait]
impl Provider for NoKubernetes {
    async fn create(&self, ctx: &Ctx, _: &Value) -> Result<Created, ProviderError> {
        Ok(Created {
            physical_id: ctx.resource.clone(),
            outputs: json!({}),
        })
    }

    async fn read(&self, _: &Ctx, _: &str, inputs: &Value) -> Result<Observed, ProviderError> {
        Ok(Observed {
            inputs: inputs.clone(),
            outputs: json!({}),
        })
    }

    async fn update(&self, _: &Ctx, _: &str, _: &Value, _: &Value) -> Result<Value, ProviderError> {
        Ok(json!({}))
    }

    async fn delete(&self, _: &Ctx, _: &str, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn find_existing(&self, _: &Ctx, _: &Value) -> Result<Option<Created>, ProviderError> {
        Ok(None)
    }

    fn classify(&self, _: &ProviderError) -> byoc_engine::ErrorClass {
        byoc_engine::ErrorClass::Permanent
    }
}

fn config(extra: Value) -> EnvironmentConfig {
    let mut c = json!({
        "region": common::REGION,
        "eks_mode": "managed",
        "kubernetes_version": "1.31",
        "node_group_config": {"desired_size": 2, "min_size": 1, "max_size": 4},
        "tags": {"team": "platform"},
        "components": {
            "karpenter": {},
            "cert_manager": {"dns01_hosted_zone_ids": ["Z1"]},
            "external_secrets": {},
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    EnvironmentConfig::from_value(&c).expect("a valid config")
}

/// A session of another role than byoc's in `account` (what the cluster's controllers do is
/// not byoc's call).
async fn other_session(emulator: &Emulator, account: &str) -> anyhow::Result<SdkConfig> {
    let platform = common::default_account(emulator.endpoint(), RetryConfig::standard()).await;
    let out = aws_sdk_sts::Client::new(&platform)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/eks-controllers"))
        .role_session_name("controllers")
        .send()
        .await?;
    let c = out.credentials().expect("credentials");
    let creds = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "controllers",
    );
    Ok(sdk(emulator.endpoint(), creds).await)
}

/// An emulator enforcing IAM, with an account where the customer launched the trust
/// template, and the platform as an IAM user (in moto's default account) that may only
/// assume roles.
struct Enforced {
    emulator: Emulator,
    account: String,
    platform: Platform,
    platform_sdk: SdkConfig,
}

async fn enforced() -> anyhow::Result<Enforced> {
    let emulator = Emulator::start(&EmulatorOptions {
        iam_enforcement: true,
        ..EmulatorOptions::default()
    })?;
    let account = emulator.fresh_account();
    emulator.launch_trust_stack(&account, EXTERNAL_ID, &[])?;
    let admin = common::default_account(emulator.endpoint(), RetryConfig::standard()).await;
    let iam = aws_sdk_iam::Client::new(&admin);
    iam.create_user().user_name("platform").send().await?;
    iam.put_user_policy()
        .user_name("platform")
        .policy_name("assume-tenant-roles")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#)
        .send()
        .await?;
    let key = iam.create_access_key().user_name("platform").send().await?;
    let key = key.access_key().expect("an access key");
    let creds = aws_credential_types::Credentials::new(
        key.access_key_id(),
        key.secret_access_key(),
        None,
        None,
        "platform",
    );
    let platform_sdk = sdk(emulator.endpoint(), creds).await;
    let platform = Platform::with_config(
        platform_sdk.clone(),
        PlatformOptions {
            wait: WaitPolicy::emulator(),
            ..PlatformOptions::default()
        },
    );
    emulator.enforce_iam(true)?;
    Ok(Enforced {
        emulator,
        account,
        platform,
        platform_sdk,
    })
}

async fn sdk(endpoint: &str, creds: aws_credential_types::Credentials) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_types::region::Region::new(common::REGION))
        .credentials_provider(creds)
        .retry_config(RetryConfig::standard())
        .load()
        .await
}

const EXTERNAL_ID: &str = "test-external-id-0123456789abcdef";

/// A whole lifecycle through byoc's role, every call checked against its policies.
async fn lifecycle(e: &Enforced) -> anyhow::Result<()> {
    let (emulator, account) = (&e.emulator, e.account.as_str());
    let stack = "acme-dev";
    let mut env = Env::new(&e.platform, account, stack);
    // The verification first, as onboarding runs it.
    byoc_components::trust::read_trust_stack(&env.aws, "byoc-trust").await?;
    let none: Arc<dyn Provider> = Arc::new(NoKubernetes);
    env.providers = env
        .providers
        .clone()
        .with(helm_release::KIND, none.clone())
        .with(cluster_drain::KIND, none);
    let runs = [
        config(json!({})),
        // Tags, version, scaling, NAT per zone, endpoint access, a component less.
        config(json!({
            "tags": {"owner": "infra"},
            "kubernetes_version": "1.32",
            "node_group_config": {"desired_size": 3, "min_size": 1, "max_size": 4},
            "nat_mode": "per_az",
            "endpoint_access": {"public": true, "private": false, "public_cidrs": ["10.0.0.0/8"]},
            "components": {"karpenter": {}, "cert_manager": {"dns01_hosted_zone_ids": ["Z1"]}},
        })),
    ];
    for (i, config) in runs.iter().enumerate() {
        let report = env.deploy(config, &format!("run-{i}")).await;
        anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
        // A refresh reads everything, as deploys and drift checks do.
        let snapshot = env.store.load().await?;
        let observed = refresh(
            &env.stack,
            &snapshot,
            &env.providers,
            None,
            &RetryPolicy::default(),
            &CancellationToken::new(),
        )
        .await?;
        let drifted = drift(&snapshot, &observed, &env.providers);
        anyhow::ensure!(drifted.is_empty(), "drift after run {i}: {drifted:?}");
    }
    // The controllers are not byoc: made with enforcement off, by another role.
    emulator.enforce_iam(false)?;
    let controllers = other_session(emulator, account).await?;
    // Tagged as the template's deletes of what Kubernetes made expect them.
    let tags = LeftoverTags {
        lb_security_group: ("elbv2.k8s.aws/cluster", stack),
        node_security_group: ("eks:eks-cluster-name", stack),
        network_interface: ("cluster.k8s.amazonaws.com/name", stack),
        instance: ("karpenter.sh/discovery", stack),
        load_balancer: ("elbv2.k8s.aws/cluster", stack),
        target_group: ("elbv2.k8s.aws/cluster", stack),
    };
    let left = leave_leftovers(
        &aws_sdk_ec2::Client::new(&controllers),
        &aws_sdk_elasticloadbalancingv2::Client::new(&controllers),
        &env,
        &tags,
    )
    .await;
    emulator.enforce_iam(true)?;
    left?;
    let report = env.destroy("run-destroy").await;
    anyhow::ensure!(report.status == RunStatus::Succeeded, "{report:?}");
    Ok(())
}

/// The lifecycle runs with IAM enforced (tools/emulator/iam_enforcement.py): a call the
/// template does not grant fails it. Then what it called is held against the grants.
#[tokio::test]
async fn the_template_grants_what_byoc_calls_and_nothing_it_does_not() -> anyhow::Result<()> {
    let e = enforced().await?;
    lifecycle(&e).await?;
    let (emulator, account) = (&e.emulator, &e.account);
    let seen: Value = serde_json::from_str(&emulator.actions(account, TRUST_ROLE_NAME)?)?;
    let called: BTreeSet<String> = seen["actions"]
        .as_object()
        .unwrap()
        .keys()
        // The signing name of ELB is its IAM prefix; STS is the platform's own.
        .map(|a| a.to_string())
        .collect();
    assert!(called.len() > 50, "{called:?}");
    let granted = granted()?;
    let scanned = scanned()?;
    let mut problems = Vec::new();

    // Called (or in the code) but not granted: a deploy would fail with AccessDenied.
    for action in &called {
        if !is_granted(&granted, action) {
            problems.push(format!("{action}: called, not granted"));
        }
        if !scanned.contains_key(&action.to_lowercase()) {
            problems.push(format!(
                "{action}: called, but the source scan did not find it"
            ));
        }
    }
    for (action, file) in &scanned {
        if !is_granted(&granted, action) {
            problems.push(format!("{action}: called in {file}, not granted"));
        }
    }
    // Granted but never called: a permission nothing needs, unless listed with a reason.
    let listed: BTreeMap<String, &str> = GRANTED_UNCALLED
        .iter()
        .map(|(a, why)| (a.to_lowercase(), *why))
        .collect();
    let called_lower: BTreeSet<String> = called.iter().map(|a| a.to_lowercase()).collect();
    for action in &granted {
        let low = action.to_lowercase();
        if low.contains('*') {
            problems.push(format!("{action}: a wildcard grant (list the actions)"));
        } else if called_lower.contains(&low) {
            if listed.contains_key(&low) {
                problems.push(format!(
                    "{action}: called now, so GRANTED_UNCALLED need not list it"
                ));
            }
        } else if !listed.contains_key(&low) {
            problems.push(format!(
                "{action}: granted, never called (remove it, or list it in GRANTED_UNCALLED with why)"
            ));
        }
    }
    for action in listed.keys() {
        if !granted.iter().any(|g| g.to_lowercase() == *action) {
            problems.push(format!("{action}: in GRANTED_UNCALLED but not granted"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\ncalled: {called:?}",
        problems.join("\n")
    );
    Ok(())
}

/// The escalation of issue 19, tried through byoc's role with IAM enforced: a role trusting
/// the platform can be made only under the boundary, AdministratorAccess cannot be attached,
/// the role's own policies and the boundary are out of reach, and what a role under the
/// boundary may do stops short of IAM.
#[tokio::test]
async fn the_escalation_through_the_role_is_refused() -> anyhow::Result<()> {
    let e = enforced().await?;
    let aws = e.platform.session(Target {
        account_id: e.account.clone(),
        external_id: EXTERNAL_ID.into(),
        region: common::REGION.into(),
        stack: "acme-dev".into(),
        run_id: "escalation".into(),
    });
    let iam = &aws.iam;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    let boundary = format!(
        "arn:aws:iam::{}:policy/{}",
        e.account,
        byoc_model::boundary_policy_name(TRUST_ROLE_NAME)
    );
    let admin_policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

    // Enforcement is on: what the template does not grant is refused.
    refused("ec2:DescribeImages", aws.ec2.describe_images().send()).await?;
    refused(
        "a role trusting the platform, without the boundary",
        iam.create_role()
            .role_name("byoc-x")
            .assume_role_policy_document(trust)
            .send(),
    )
    .await?;
    refused(
        "a role named otherwise, under the boundary",
        iam.create_role()
            .role_name("admin-x")
            .assume_role_policy_document(trust)
            .permissions_boundary(&boundary)
            .send(),
    )
    .await?;
    // Under the boundary it can be made (byoc makes its roles so) ...
    iam.create_role()
        .role_name("byoc-x")
        .assume_role_policy_document(trust)
        .permissions_boundary(&boundary)
        .send()
        .await?;
    // ... but not given AdministratorAccess, nor freed of the boundary.
    refused(
        "AttachRolePolicy AdministratorAccess",
        iam.attach_role_policy()
            .role_name("byoc-x")
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send(),
    )
    .await?;
    refused(
        "DeleteRolePermissionsBoundary",
        iam.delete_role_permissions_boundary()
            .role_name("byoc-x")
            .send(),
    )
    .await?;
    // byoc's own role and policies are the customer's.
    refused(
        "PutRolePolicy on the role itself",
        iam.put_role_policy()
            .role_name(TRUST_ROLE_NAME)
            .policy_name("all")
            .policy_document(admin_policy)
            .send(),
    )
    .await?;
    refused(
        "CreatePolicyVersion of the boundary",
        iam.create_policy_version()
            .policy_arn(&boundary)
            .policy_document(admin_policy)
            .set_as_default(true)
            .send(),
    )
    .await?;
    // An inline policy goes on (the role is under the boundary), and the platform can
    // assume the role: what it then may do is capped by the boundary.
    iam.put_role_policy()
        .role_name("byoc-x")
        .policy_name("all")
        .policy_document(admin_policy)
        .send()
        .await?;
    let assumed = aws_sdk_sts::Client::new(&e.platform_sdk)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{}:role/byoc-x", e.account))
        .role_session_name("escalation")
        .send()
        .await?;
    let c = assumed.credentials().expect("credentials");
    let x = sdk(
        e.emulator.endpoint(),
        aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "byoc-x",
        ),
    )
    .await;
    let x_iam = aws_sdk_iam::Client::new(&x);
    refused(
        "byoc-x creating a user",
        x_iam.create_user().user_name("evil").send(),
    )
    .await?;
    refused(
        "byoc-x attaching AdministratorAccess to itself",
        x_iam
            .attach_role_policy()
            .role_name("byoc-x")
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send(),
    )
    .await?;
    // What the boundary allows (EKS's needs) it may do.
    aws_sdk_ec2::Client::new(&x).describe_vpcs().send().await?;
    Ok(())
}

/// That `call` is refused with AccessDenied.
async fn refused<T, E: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<()> {
    match call.await {
        Ok(_) => anyhow::bail!("{what}: allowed"),
        Err(e) => {
            let e = format!("{e:?}");
            anyhow::ensure!(
                e.contains("AccessDenied"),
                "{what}: failed, but not as denied: {e}"
            );
            Ok(())
        }
    }
}

/// The scan finds the calls it should and skips test-only code.
#[test]
fn the_source_scan_reads_calls_across_lines_and_skips_test_code() -> anyhow::Result<()> {
    let code = "fn a() { aws.iam\n    .create_role()\n }\n#[cfg(test)]\nmod tests { fn b() { iam.list_roles() } }\nfn c() { ec2.describe_vpcs() }";
    let kept = without_test_code(code);
    assert!(kept.contains("create_role") && kept.contains("describe_vpcs"));
    assert!(!kept.contains("list_roles"), "{kept}");
    let scanned = scanned()?;
    for action in [
        "iam:createrole",
        "iam:putrolepermissionsboundary",
        "ec2:terminateinstances",
        "elasticloadbalancing:deleteloadbalancer",
        "cloudformation:describestacks",
    ] {
        assert!(scanned.contains_key(action), "{action}: {scanned:?}");
    }
    // Aws::footprint (feature "testing") lists roles; byoc's role never does.
    assert!(!scanned.contains_key("iam:listroles"), "{scanned:?}");
    Ok(())
}
