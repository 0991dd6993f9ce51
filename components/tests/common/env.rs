//! Deploying the real environment blueprint into an emulated tenant account with the
//! engine and an in-memory state store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::types::Filter;
use byoc_components::blueprint::environment;
use byoc_components::resources::providers;
use byoc_components::{Aws, Platform, PlatformOptions, RateLimits, Target, WaitPolicy};
use byoc_engine::{
    CancellationToken, Created, Ctx, Diff, ErrorClass, EventLog, ExecOptions, Executor, Graph,
    MemoryStore, Observed, Plan, Provider, ProviderError, Providers, RetryPolicy, RunReport,
    StateStore, plan, plan_destroy,
};
use byoc_model::EnvironmentConfig;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub fn managed_config() -> EnvironmentConfig {
    EnvironmentConfig::from_value(&json!({
        "region": super::REGION,
        "eks_mode": "managed",
        "az_count": 2,
        "node_group_config": {
            "desired_size": 2, "min_size": 1, "max_size": 4,
            "instance_types": ["m6i.large"], "disk_size": 50,
            "labels": {"pool": "system"},
        },
        "tags": {"team": "platform"},
    }))
    .expect("a valid config")
}

pub async fn platform(endpoint: &str, limits: RateLimits) -> Platform {
    let sdk = super::default_account(endpoint, RetryConfig::standard()).await;
    Platform::with_config(
        sdk,
        PlatformOptions {
            limits,
            wait: WaitPolicy::emulator(),
            ..PlatformOptions::default()
        },
    )
}

/// One tenant environment under test: its session, providers and recorded state.
pub struct Env {
    pub stack: String,
    pub aws: Arc<Aws>,
    pub providers: Providers,
    pub store: Arc<MemoryStore>,
    pub events: Arc<EventLog>,
    pub parallelism: Option<usize>,
    /// Cancels the runs of this environment.
    pub cancel: CancellationToken,
}

impl Env {
    pub fn new(platform: &Platform, account: &str, stack: &str) -> Env {
        let aws = platform.session(Target {
            account_id: account.to_string(),
            external_id: "test-external-id".into(),
            region: super::REGION.into(),
            stack: stack.into(),
            run_id: "test".into(),
        });
        Env {
            stack: stack.into(),
            providers: providers(&aws),
            aws,
            store: Arc::new(MemoryStore::new()),
            events: Arc::new(EventLog::default()),
            parallelism: None,
            cancel: CancellationToken::new(),
        }
    }

    pub async fn plan(&self, config: &EnvironmentConfig, run: &str) -> Plan {
        let snapshot = self.store.load().await.unwrap();
        let graph = Graph::new(environment(&self.stack, config).unwrap()).unwrap();
        plan(&self.stack, run, &graph, &snapshot, &self.providers, None).unwrap()
    }

    pub async fn apply(&self, plan: &Plan, providers: Providers) -> RunReport {
        let snapshot = self.store.load().await.unwrap();
        let options = ExecOptions {
            parallelism: self.parallelism,
            retry: RetryPolicy {
                max_attempts: 8,
                initial_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(1),
                max_elapsed: Duration::from_secs(120),
            },
            cancel: self.cancel.clone(),
        };
        Executor::new(providers, self.store.clone(), self.events.clone(), options)
            .apply(plan, &snapshot)
            .await
            .unwrap()
    }

    pub async fn deploy(&self, config: &EnvironmentConfig, run: &str) -> RunReport {
        let plan = self.plan(config, run).await;
        self.apply(&plan, self.providers.clone()).await
    }

    pub async fn destroy(&self, run: &str) -> RunReport {
        let snapshot = self.store.load().await.unwrap();
        let plan = plan_destroy(&self.stack, run, &snapshot).unwrap();
        self.apply(&plan, self.providers.clone()).await
    }

    /// Physical id of a recorded resource.
    pub fn id(&self, name: &str) -> String {
        self.store.snapshot().resources[name].physical_id.clone()
    }

    pub fn outputs(&self, name: &str) -> Value {
        self.store.snapshot().resources[name].outputs.clone()
    }

    /// How many objects of each kind the emulator holds for this stack: EC2 by the
    /// `byoc:stack` tag, IAM and EKS by their deterministic names.
    pub async fn census(&self) -> BTreeMap<&'static str, usize> {
        let ec2 = &self.aws.ec2;
        let f = || {
            Filter::builder()
                .name("tag:byoc:stack")
                .values(&self.stack)
                .build()
        };
        let mut c = BTreeMap::new();
        let vpcs = ec2.describe_vpcs().filters(f()).send().await.unwrap();
        c.insert("vpc", vpcs.vpcs().len());
        let subnets = ec2.describe_subnets().filters(f()).send().await.unwrap();
        c.insert("subnet", subnets.subnets().len());
        let igws = ec2
            .describe_internet_gateways()
            .filters(f())
            .send()
            .await
            .unwrap();
        c.insert("internet_gateway", igws.internet_gateways().len());
        let eips = ec2.describe_addresses().filters(f()).send().await.unwrap();
        c.insert("elastic_ip", eips.addresses().len());
        let nats = ec2
            .describe_nat_gateways()
            .filter(f())
            .send()
            .await
            .unwrap();
        let live = nats
            .nat_gateways()
            .iter()
            .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
            .count();
        c.insert("nat_gateway", live);
        let tables = ec2
            .describe_route_tables()
            .filters(f())
            .send()
            .await
            .unwrap();
        c.insert("route_table", tables.route_tables().len());
        let roles = self.aws.iam.list_roles().send().await.unwrap();
        let ours = roles
            .roles()
            .iter()
            .filter(|r| r.role_name().starts_with(&format!("byoc-{}-", self.stack)))
            .count();
        c.insert("iam_role", ours);
        let profiles = self.aws.iam.list_instance_profiles().send().await.unwrap();
        let ours = profiles
            .instance_profiles()
            .iter()
            .filter(|p| {
                p.instance_profile_name()
                    .starts_with(&format!("byoc-{}-", self.stack))
            })
            .count();
        c.insert("instance_profile", ours);
        let oidc = self
            .aws
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .unwrap();
        c.insert("oidc_provider", oidc.open_id_connect_provider_list().len());
        let clusters = self.aws.eks.list_clusters().send().await.unwrap();
        c.insert(
            "eks_cluster",
            clusters
                .clusters()
                .iter()
                .filter(|n| **n == self.stack)
                .count(),
        );
        let nodegroups = if clusters.clusters().contains(&self.stack) {
            let out = self
                .aws
                .eks
                .list_nodegroups()
                .cluster_name(&self.stack)
                .send()
                .await
                .unwrap();
            out.nodegroups().len()
        } else {
            0
        };
        c.insert("eks_nodegroup", nodegroups);
        c
    }
}

/// The census of a deployed managed-mode environment with two zones and one NAT gateway.
pub fn expected_managed() -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("vpc", 1),
        ("subnet", 4),
        ("internet_gateway", 1),
        ("elastic_ip", 1),
        ("nat_gateway", 1),
        ("route_table", 3),
        ("iam_role", 2),
        ("instance_profile", 1),
        ("oidc_provider", 1),
        ("eks_cluster", 1),
        ("eks_nodegroup", 1),
    ])
}

pub fn empty_census() -> BTreeMap<&'static str, usize> {
    expected_managed().into_keys().map(|k| (k, 0)).collect()
}

/// Where a run was killed: just after the first create call that returned.
#[derive(Default)]
pub struct CrashPoint {
    pub crashed: Notify,
    resource: std::sync::Mutex<Option<String>>,
}

impl CrashPoint {
    pub fn resource(&self) -> String {
        self.resource
            .lock()
            .unwrap()
            .clone()
            .expect("a crash happened")
    }
}

/// A provider that makes the real create call, then, on the run's first create, hangs
/// without answering: the test drops the run there, as a killed process would.
pub struct CrashAfterCreate {
    pub inner: Arc<dyn Provider>,
    pub crash: Arc<CrashPoint>,
}

#[async_trait]
impl Provider for CrashAfterCreate {
    fn check(&self, inputs: &Value) -> Result<(), String> {
        self.inner.check(inputs)
    }

    fn diff(&self, old: &Value, new: &Value) -> Diff {
        self.inner.diff(old, new)
    }

    async fn create(&self, ctx: &Ctx, inputs: &Value) -> Result<Created, ProviderError> {
        let created = self.inner.create(ctx, inputs).await?;
        let first = {
            let mut at = self.crash.resource.lock().unwrap();
            at.is_none()
                .then(|| *at = Some(ctx.resource.clone()))
                .is_some()
        };
        if first {
            self.crash.crashed.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(created)
    }

    async fn read(&self, ctx: &Ctx, id: &str, inputs: &Value) -> Result<Observed, ProviderError> {
        self.inner.read(ctx, id, inputs).await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        id: &str,
        old: &Value,
        new: &Value,
    ) -> Result<Value, ProviderError> {
        self.inner.update(ctx, id, old, new).await
    }

    async fn delete(&self, ctx: &Ctx, id: &str, inputs: &Value) -> Result<(), ProviderError> {
        self.inner.delete(ctx, id, inputs).await
    }

    async fn find_existing(
        &self,
        ctx: &Ctx,
        inputs: &Value,
    ) -> Result<Option<Created>, ProviderError> {
        self.inner.find_existing(ctx, inputs).await
    }

    fn classify(&self, error: &ProviderError) -> ErrorClass {
        self.inner.classify(error)
    }
}

/// How a cluster's controllers tagged each object they leave: `(key, value)`.
pub struct LeftoverTags<'a> {
    pub lb_security_group: (&'a str, &'a str),
    pub node_security_group: (&'a str, &'a str),
    pub network_interface: (&'a str, &'a str),
    pub instance: (&'a str, &'a str),
    pub load_balancer: (&'a str, &'a str),
    pub target_group: (&'a str, &'a str),
}

/// What a cluster's controllers leave in `env`'s VPC (deployed, two zones), made with
/// `ec2` and `elb`: a load balancer's security group, a node security group letting it in,
/// an ENI, an instance, a network load balancer and a target group, tagged by `tags`.
/// Returns the load balancer's ARN.
pub async fn leave_leftovers(
    ec2: &aws_sdk_ec2::Client,
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    env: &Env,
    tags: &LeftoverTags<'_>,
) -> anyhow::Result<String> {
    use aws_sdk_ec2::types::{IpPermission, ResourceType, Tag, TagSpecification, UserIdGroupPair};
    use aws_sdk_elasticloadbalancingv2::types as elbv2;
    let tagged = |kind: ResourceType, (key, value): (&str, &str)| {
        TagSpecification::builder()
            .resource_type(kind)
            .tags(Tag::builder().key(key).value(value).build())
            .build()
    };
    let elb_tag = |(key, value): (&str, &str)| elbv2::Tag::builder().key(key).value(value).build();
    let vpc = env.id("vpc");
    let lb_sg = ec2
        .create_security_group()
        .group_name("k8s-elb")
        .description("made by the load balancer controller")
        .vpc_id(&vpc)
        .tag_specifications(tagged(ResourceType::SecurityGroup, tags.lb_security_group))
        .send()
        .await?
        .group_id()
        .unwrap()
        .to_string();
    let node_sg = ec2
        .create_security_group()
        .group_name("k8s-node")
        .description("refers to the load balancer's group")
        .vpc_id(&vpc)
        .tag_specifications(tagged(
            ResourceType::SecurityGroup,
            tags.node_security_group,
        ))
        .send()
        .await?
        .group_id()
        .unwrap()
        .to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&node_sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(30000)
                .to_port(32767)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&lb_sg).build())
                .build(),
        )
        .send()
        .await?;
    ec2.create_network_interface()
        .subnet_id(env.id("subnet-private-a"))
        .groups(&node_sg)
        .tag_specifications(tagged(
            ResourceType::NetworkInterface,
            tags.network_interface,
        ))
        .send()
        .await?;
    ec2.run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::M6iLarge)
        .min_count(1)
        .max_count(1)
        .subnet_id(env.id("subnet-private-a"))
        .tag_specifications(tagged(ResourceType::Instance, tags.instance))
        .send()
        .await?;
    let lb = elb
        .create_load_balancer()
        .name("k8s-ingress-nginx")
        .r#type(elbv2::LoadBalancerTypeEnum::Network)
        .subnets(env.id("subnet-public-a"))
        .subnets(env.id("subnet-public-b"))
        .tags(elb_tag(tags.load_balancer))
        .send()
        .await?;
    elb.create_target_group()
        .name("k8s-ingress-nginx-80")
        .protocol(elbv2::ProtocolEnum::Tcp)
        .port(80)
        .vpc_id(&vpc)
        .tags(elb_tag(tags.target_group))
        .send()
        .await?;
    Ok(lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string())
}
