//! Reaching a tenant's account: platform credentials, the assumed role, SDK clients, the
//! shared rate limiter, and how every AWS call is made, retried and classified.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use byoc_engine::{CancellationToken, Ctx, ErrorClass, ProviderError, base_name};
use tokio::sync::Mutex;

use crate::helm::Helm;
use crate::limiter::{BucketKey, RateLimiter, RateLimits, Service};
use api::Api;

/// The role the customer's trust template creates.
pub use byoc_model::TRUST_ROLE_NAME as DEFAULT_ROLE_NAME;

/// Process-wide: the platform's own credentials (the standard AWS chain) and the rate
/// limiter every run shares.
#[derive(Clone)]
pub struct Platform {
    sdk: SdkConfig,
    limiter: Arc<RateLimiter>,
    pub role_name: String,
    pub wait: WaitPolicy,
    /// For the clusters' Helm releases; `None` where no usable helm was found.
    pub helm: Option<Helm>,
}

/// What a platform needs besides the standard AWS environment.
#[derive(Clone, Debug, Default)]
pub struct PlatformOptions {
    /// Overrides the endpoint of every service (the emulator); `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
    pub role_name: Option<String>,
    pub limits: RateLimits,
    pub wait: WaitPolicy,
    pub helm: Option<Helm>,
}

impl Platform {
    /// Platform credentials from the standard chain (environment, profile, instance metadata).
    pub async fn load(options: PlatformOptions) -> Platform {
        Platform::load_from(aws_config::defaults(BehaviorVersion::latest()), options).await
    }

    /// Platform credentials given outright, e.g. an emulator's, where the process's own
    /// environment must not be consulted (a test process running many of them).
    pub async fn load_with_keys(
        access_key_id: &str,
        secret_access_key: &str,
        region: &str,
        options: PlatformOptions,
    ) -> Platform {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "byoc",
            ));
        Platform::load_from(loader, options).await
    }

    async fn load_from(mut loader: aws_config::ConfigLoader, options: PlatformOptions) -> Platform {
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Platform::with_config(loader.load().await, options)
    }

    pub fn with_config(sdk: SdkConfig, options: PlatformOptions) -> Platform {
        // Every client of every run shares one connection pool: otherwise each SDK client
        // makes its own, and each run would open (and keep) connections of its own.
        let sdk = match sdk.http_client() {
            Some(_) => sdk,
            None => sdk
                .into_builder()
                .http_client(shared_https_client())
                .build(),
        };
        Platform {
            sdk,
            limiter: Arc::new(RateLimiter::new(options.limits)),
            role_name: options
                .role_name
                .unwrap_or_else(|| DEFAULT_ROLE_NAME.to_string()),
            wait: options.wait,
            helm: options.helm,
        }
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The region of the platform's own AWS configuration (`AWS_REGION`, the profile), if any.
    pub fn region(&self) -> Option<&str> {
        self.sdk.region().map(Region::as_ref)
    }

    /// The platform's own account id (STS GetCallerIdentity): the account tenants' trust
    /// roles must trust.
    pub async fn account_id(&self) -> Result<String, ProviderError> {
        let out = aws_sdk_sts::Client::new(&self.sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk_error("sts:GetCallerIdentity", e))?;
        out.account()
            .map(str::to_string)
            .ok_or_else(|| ProviderError::new("sts:GetCallerIdentity returned no account"))
    }

    /// A session in a tenant's account for one run. Credentials are assumed on first use,
    /// kept, and assumed again shortly before they expire.
    pub fn session(&self, target: Target) -> Arc<Aws> {
        let role_arn = format!("arn:aws:iam::{}:role/{}", target.account_id, self.role_name);
        let credentials = Arc::new(TenantCredentials {
            sts: aws_sdk_sts::Client::new(&self.sdk),
            role_arn,
            account_id: target.account_id.clone(),
            external_id: target.external_id,
            session_name: session_name(&target.stack, &target.run_id),
            cached: Mutex::new(None),
        });
        // One retry layer, ours (`Aws::call`), so that every throttle reaches the limiter.
        let sdk = self
            .sdk
            .to_builder()
            .region(Region::new(target.region.clone()))
            .credentials_provider(SharedCredentialsProvider::new(TenantProvider(
                credentials.clone(),
            )))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build();
        Arc::new(Aws {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            eks: aws_sdk_eks::Client::new(&sdk),
            cloudformation: aws_sdk_cloudformation::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            account_id: target.account_id,
            region: target.region,
            stack: target.stack,
            credentials,
            limiter: self.limiter.clone(),
            wait: self.wait.clone(),
            helm: self.helm.clone(),
        })
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc, proxies from the environment), made
/// once: the SDK makes one per service client when the config names none.
fn shared_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Where a run acts: the tenant's account and region, as which stack and run.
#[derive(Clone)]
pub struct Target {
    pub account_id: String,
    /// The tenant's external id (never logged).
    pub external_id: String,
    pub region: String,
    pub stack: String,
    pub run_id: String,
}

/// Everything but the external id, which is a secret.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("account_id", &self.account_id)
            .field("external_id", &"(redacted)")
            .field("region", &self.region)
            .field("stack", &self.stack)
            .field("run_id", &self.run_id)
            .finish()
    }
}

/// `byoc-{stack}-{run}`, within STS's 64 characters of `[\w+=,.@-]`.
fn session_name(stack: &str, run_id: &str) -> String {
    let name: String = format!("byoc-{stack}-{run_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.chars().take(64).collect()
}

/// Credentials are assumed again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

struct TenantCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    account_id: String,
    external_id: String,
    session_name: String,
    cached: Mutex<Option<Credentials>>,
}

impl TenantCredentials {
    async fn get(&self) -> Result<Credentials, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(c.clone());
            }
        }
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .external_id(&self.external_id)
            .send()
            .await
            .map_err(|e| {
                let mut err = sdk_error("sts:AssumeRole", e);
                if classify(&err) != ErrorClass::Transient {
                    err.code = Some(ASSUME_ROLE_DENIED.into());
                    err.message = format!(
                        "cannot assume {} with the tenant's external id ({}). Check that the customer launched the byoc trust stack (cfn-templates/customer-iam-role.yaml) in account {}, that its ExternalId parameter is this tenant's external id, and that the tenant's AWS account id is right",
                        self.role_arn, err.message, self.account_id
                    );
                }
                err
            })?;
        let c = out.credentials().ok_or_else(|| {
            ProviderError::new(format!(
                "AssumeRole {} returned no credentials",
                self.role_arn
            ))
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "byoc-assume-role",
        );
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

/// The code given to a failed AssumeRole: permanent, whatever AWS called it.
pub const ASSUME_ROLE_DENIED: &str = "AssumeRoleDenied";

#[derive(Clone)]
struct TenantProvider(Arc<TenantCredentials>);

impl std::fmt::Debug for TenantProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantProvider")
            .field("role_arn", &self.0.role_arn)
            .finish_non_exhaustive()
    }
}

impl ProvideCredentials for TenantProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0.get().await.map_err(CredentialsError::provider_error)
        })
    }
}

/// A session in one tenant account and region, for one run: SDK clients and the way to
/// call them, and helm for the cluster's releases.
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub eks: aws_sdk_eks::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub account_id: String,
    pub region: String,
    pub stack: String,
    credentials: Arc<TenantCredentials>,
    limiter: Arc<RateLimiter>,
    pub wait: WaitPolicy,
    pub helm: Option<Helm>,
}

/// Attempts of one call on transient errors (throttling, 5xx, timeouts) before the error
/// goes to the engine, which retries the whole step with its own policy.
const CALL_ATTEMPTS: u32 = 5;

impl Aws {
    /// The tenant role this session assumes.
    pub fn role_arn(&self) -> &str {
        &self.credentials.role_arn
    }

    /// What of this session's stack lives in the account, as `(type, id)`: the EC2 objects
    /// tagged for it, and the IAM roles, instance profiles and EKS cluster named for it whose
    /// `byoc:stack` tag says so. What the stack's state must account for, and what a destroy
    /// must leave none of. EC2 is asked type by type (DescribeTags may still list the tags
    /// of deleted objects).
    #[cfg(feature = "testing")]
    pub async fn footprint(&self) -> Result<Vec<(String, String)>, ProviderError> {
        use aws_sdk_ec2::types::Filter;
        let cancel = CancellationToken::new();
        let f = || {
            Filter::builder()
                .name(format!("tag:{TAG_STACK}"))
                .values(&self.stack)
                .build()
        };
        let ec2 = &self.ec2;
        let mut out = Vec::new();
        let mut add = |kind: &str, ids: Vec<Option<&str>>| {
            out.extend(
                ids.into_iter()
                    .flatten()
                    .map(|id| (kind.to_string(), id.to_string())),
            );
        };
        let vpcs = self
            .call(Service::Ec2, "DescribeVpcs", &cancel, || {
                ec2.describe_vpcs().filters(f()).send()
            })
            .await?;
        add("vpc", vpcs.vpcs().iter().map(|v| v.vpc_id()).collect());
        let subnets = self
            .call(Service::Ec2, "DescribeSubnets", &cancel, || {
                ec2.describe_subnets().filters(f()).send()
            })
            .await?;
        add(
            "subnet",
            subnets.subnets().iter().map(|s| s.subnet_id()).collect(),
        );
        let igws = self
            .call(Service::Ec2, "DescribeInternetGateways", &cancel, || {
                ec2.describe_internet_gateways().filters(f()).send()
            })
            .await?;
        add(
            "internet-gateway",
            igws.internet_gateways()
                .iter()
                .map(|g| g.internet_gateway_id())
                .collect(),
        );
        let addresses = self
            .call(Service::Ec2, "DescribeAddresses", &cancel, || {
                ec2.describe_addresses().filters(f()).send()
            })
            .await?;
        add(
            "elastic-ip",
            addresses
                .addresses()
                .iter()
                .map(|a| a.allocation_id())
                .collect(),
        );
        let nats = self
            .call(Service::Ec2, "DescribeNatGateways", &cancel, || {
                ec2.describe_nat_gateways().filter(f()).send()
            })
            .await?;
        add(
            "natgateway",
            nats.nat_gateways()
                .iter()
                .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
                .map(|n| n.nat_gateway_id())
                .collect(),
        );
        let tables = self
            .call(Service::Ec2, "DescribeRouteTables", &cancel, || {
                ec2.describe_route_tables().filters(f()).send()
            })
            .await?;
        add(
            "route-table",
            tables
                .route_tables()
                .iter()
                .map(|t| t.route_table_id())
                .collect(),
        );

        // Named `byoc-{stack}-...`; the tag tells this stack from one whose name extends it.
        let prefix = format!("byoc-{}-", self.stack);
        let ours = |tags: &[aws_sdk_iam::types::Tag]| {
            tags.iter()
                .any(|t| t.key() == TAG_STACK && t.value() == self.stack)
        };
        let iam = &self.iam;
        let roles = self
            .call(Service::Iam, "ListRoles", &cancel, || {
                iam.list_roles().max_items(1000).send()
            })
            .await?;
        for name in roles.roles().iter().map(|r| r.role_name()) {
            if !name.starts_with(&prefix) {
                continue;
            }
            let role = self
                .call(Service::Iam, "GetRole", &cancel, || {
                    iam.get_role().role_name(name).send()
                })
                .await?;
            if role.role().is_some_and(|r| ours(r.tags())) {
                out.push(("iam-role".into(), name.into()));
            }
        }
        let profiles = self
            .call(Service::Iam, "ListInstanceProfiles", &cancel, || {
                iam.list_instance_profiles().max_items(1000).send()
            })
            .await?;
        for name in profiles
            .instance_profiles()
            .iter()
            .map(|p| p.instance_profile_name())
        {
            if !name.starts_with(&prefix) {
                continue;
            }
            let profile = self
                .call(Service::Iam, "GetInstanceProfile", &cancel, || {
                    iam.get_instance_profile()
                        .instance_profile_name(name)
                        .send()
                })
                .await?;
            if profile.instance_profile().is_some_and(|p| ours(p.tags())) {
                out.push(("instance-profile".into(), name.into()));
            }
        }
        let eks = &self.eks;
        let clusters = self
            .call(Service::Eks, "ListClusters", &cancel, || {
                eks.list_clusters().send()
            })
            .await?;
        if clusters.clusters().contains(&self.stack) {
            out.push(("eks-cluster".into(), self.stack.clone()));
        }
        Ok(out)
    }

    /// The assumed role's current credentials (assumed again when close to expiry), e.g.
    /// to sign an EKS token.
    pub async fn credentials(&self) -> Result<Credentials, ProviderError> {
        self.credentials.get().await
    }

    /// Makes one AWS call: waits for the rate limiter, retries transient errors with
    /// jittered backoff, slows the limiter down on throttling, and names the operation in
    /// any error. `f` builds the request anew for each attempt.
    pub async fn call<T, E, Fut>(
        &self,
        service: Service,
        operation: &str,
        cancel: &CancellationToken,
        f: impl Fn() -> Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        // A role that cannot be assumed is reported as such, not as a failed request.
        self.credentials.get().await?;
        let key = BucketKey {
            account: self.account_id.clone(),
            region: self.region.clone(),
            service,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            tokio::select! {
                _ = self.limiter.acquire(&key) => {}
                _ = cancel.cancelled() => return Err(cancelled(operation)),
            }
            let error = match f().await {
                Ok(out) => {
                    self.limiter.succeeded(&key);
                    return Ok(out);
                }
                Err(e) => sdk_error(&format!("{}:{operation}", service.as_str()), e),
            };
            if is_throttling(&error) {
                self.limiter.throttled(&key);
            }
            // A throttled request was refused before AWS acted on it; any other transient
            // failure may have happened after it did, and repeating a create there could
            // make a twin: that retry is the engine's, which first looks for the object.
            let retry = is_throttling(&error) || safe_to_repeat(operation);
            if !retry || classify(&error) != ErrorClass::Transient || attempt >= CALL_ATTEMPTS {
                return Err(error);
            }
            let cap = 100u64 << attempt.min(6);
            let delay = Duration::from_millis(cap / 2 + fastrand::u64(0..=cap / 2));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return Err(cancelled(operation)),
            }
        }
    }

    /// [`Aws::call`] as a resource operation makes it: a call of API `A` (e.g. [`api::Ec2`]),
    /// cancelled with the step (`ctx`), the request built on that API's client (`f(client)`,
    /// anew for each attempt).
    pub async fn request<'a, A: Api, T, E, Fut>(
        &'a self,
        _: A,
        operation: &str,
        ctx: &Ctx,
        f: impl Fn(&'a A::Client) -> Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let client = A::client(self);
        self.call(A::SERVICE, operation, &ctx.cancel, || f(client))
            .await
    }

    /// [`Aws::request`] of a call whose answer is not needed (a delete, a setting).
    pub async fn perform<'a, A: Api, T, E, Fut>(
        &'a self,
        api: A,
        operation: &str,
        ctx: &Ctx,
        f: impl Fn(&'a A::Client) -> Fut,
    ) -> Result<(), ProviderError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.request(api, operation, ctx, f).await.map(drop)
    }

    /// The tags every object byoc creates carries, then the user's.
    pub fn tags(&self, ctx: &Ctx, user: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut tags = vec![
            (TAG_STACK.to_string(), self.stack.clone()),
            (
                TAG_RESOURCE.to_string(),
                base_name(&ctx.resource).to_string(),
            ),
            (TAG_MANAGED_BY.to_string(), "byoc".to_string()),
            (TAG_TOKEN.to_string(), ctx.token.clone()),
        ];
        tags.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
        tags
    }

    /// Whether tags found on an object say it is this stack's, made for this resource by the
    /// create with this token: only such an object may be adopted.
    pub fn owns(&self, ctx: &Ctx, tags: &BTreeMap<String, String>, by_token: bool) -> bool {
        tags.get(TAG_STACK) == Some(&self.stack)
            && tags.get(TAG_RESOURCE).map(String::as_str) == Some(base_name(&ctx.resource))
            && (!by_token || tags.get(TAG_TOKEN) == Some(&ctx.token))
    }

    /// Polls `check` until it yields a value, on the policy's schedule for a wait that
    /// usually takes `patience.typical` in AWS, until `patience.timeout`, and stops when the
    /// run is cancelled.
    pub async fn wait_for<T, Fut>(
        &self,
        ctx: &Ctx,
        what: &str,
        patience: Patience,
        mut check: impl FnMut() -> Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: Future<Output = Result<Option<T>, ProviderError>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await? {
                return Ok(value);
            }
            let waited = start.elapsed();
            if waited >= patience.timeout {
                return Err(ProviderError::with_code(
                    WAIT_TIMEOUT,
                    format!("gave up waiting for {what} after {}s", waited.as_secs()),
                ));
            }
            let delay = self.wait.delay(patience.typical, waited);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.cancel.cancelled() => return Err(cancelled(&format!("waiting for {what}"))),
            }
        }
    }
}

impl Aws {
    /// Waits until `describe` finds `name` (e.g. `NAT gateway nat-1`) in `state`, as `ready`
    /// tells (an error from it: the object failed); an object gone meanwhile is a not-found
    /// error.
    pub async fn wait_ready<T, Fut>(
        &self,
        ctx: &Ctx,
        name: &str,
        state: &str,
        patience: Patience,
        describe: impl Fn() -> Fut,
        ready: impl Fn(&T) -> Result<bool, ProviderError>,
    ) -> Result<T, ProviderError>
    where
        Fut: Future<Output = Result<Option<T>, ProviderError>>,
    {
        self.wait_for(ctx, &format!("{name} to be {state}"), patience, || async {
            let object = describe().await?.ok_or_else(|| {
                ProviderError::with_code("NotFound", format!("{name} does not exist"))
            })?;
            Ok(ready(&object)?.then_some(object))
        })
        .await
    }

    /// Waits until `describe` no longer finds `name`.
    pub async fn wait_gone<T, Fut>(
        &self,
        ctx: &Ctx,
        name: &str,
        patience: Patience,
        describe: impl Fn() -> Fut,
    ) -> Result<(), ProviderError>
    where
        Fut: Future<Output = Result<Option<T>, ProviderError>>,
    {
        self.wait_for(ctx, &format!("{name} to be deleted"), patience, || async {
            Ok(describe().await?.is_none().then_some(()))
        })
        .await
    }
}

/// The APIs a resource operation calls ([`Aws::request`]): each names its session client
/// and the limiter's bucket its calls count against, so that a request names its service once.
pub mod api {
    use super::Aws;
    use crate::limiter::Service;

    /// An AWS API of a session.
    pub trait Api: Copy {
        type Client: Sync + 'static;
        const SERVICE: Service;
        fn client(aws: &Aws) -> &Self::Client;
    }

    macro_rules! apis {
        ($($api:ident => $field:ident: $client:ty),* $(,)?) => {$(
            #[derive(Clone, Copy, Debug)]
            pub struct $api;

            impl Api for $api {
                type Client = $client;
                const SERVICE: Service = Service::$api;

                fn client(aws: &Aws) -> &$client {
                    &aws.$field
                }
            }
        )*};
    }

    apis! {
        Ec2 => ec2: aws_sdk_ec2::Client,
        Iam => iam: aws_sdk_iam::Client,
        Eks => eks: aws_sdk_eks::Client,
        Elb => elb: aws_sdk_elasticloadbalancingv2::Client,
        Sqs => sqs: aws_sdk_sqs::Client,
        Events => events: aws_sdk_eventbridge::Client,
    }
}

/// How long a wait usually takes in AWS, and when to give up on it.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    pub typical: Duration,
    pub timeout: Duration,
}

impl Patience {
    pub const fn secs(typical: u64, timeout: u64) -> Patience {
        Patience {
            typical: Duration::from_secs(typical),
            timeout: Duration::from_secs(timeout),
        }
    }
}

/// How waiters poll, in the shape of AWS's own waiters: once right away (the object may be
/// ready), then not again until most of the typical time has passed, then at a short
/// interval. An object ready near its typical time is seen at most one interval late (1%
/// of that time), with few calls; one ready much sooner is seen at the window's opening.
#[derive(Clone, Debug)]
pub struct WaitPolicy {
    /// How long things take here relative to AWS: 1 against AWS; an emulator whose
    /// readiness delays are AWS's scaled down by a factor sets the same factor.
    pub scale: f64,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

/// The part of the typical time the waiter sleeps through before polling again.
const WAIT_WINDOW: f64 = 0.8;
/// The interval from then on, as a part of the typical time (or of the time waited, once
/// that is longer: a wait far past its typical time polls less often).
const WAIT_INTERVAL: f64 = 0.01;

impl WaitPolicy {
    /// The pause after a poll, `waited` into a wait that usually takes `typical` in AWS.
    pub fn delay(&self, typical: Duration, waited: Duration) -> Duration {
        let typical = typical.mul_f64(self.scale);
        let window = typical.mul_f64(WAIT_WINDOW);
        if waited + self.min_delay < window {
            return window - waited;
        }
        typical
            .max(waited)
            .mul_f64(WAIT_INTERVAL)
            .clamp(self.min_delay, self.max_delay)
    }

    /// For an emulator whose readiness delays are AWS's scaled by `scale`.
    pub fn scaled(scale: f64) -> WaitPolicy {
        WaitPolicy {
            scale,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }

    /// For the emulator as the tests set it: readiness in seconds where AWS takes minutes.
    pub fn emulator() -> WaitPolicy {
        WaitPolicy::scaled(0.001)
    }
}

impl Default for WaitPolicy {
    fn default() -> WaitPolicy {
        WaitPolicy {
            scale: 1.0,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15),
        }
    }
}

pub const TAG_STACK: &str = "byoc:stack";
pub const TAG_RESOURCE: &str = "byoc:resource";
pub const TAG_MANAGED_BY: &str = "byoc:managed-by";
pub const TAG_TOKEN: &str = "byoc:token";

/// The code of a waiter that ran out of time.
pub const WAIT_TIMEOUT: &str = "WaitTimeout";
pub const CANCELLED: &str = "Cancelled";

fn cancelled(what: &str) -> ProviderError {
    ProviderError::with_code(CANCELLED, format!("{what}: the run was cancelled"))
}

/// An SDK error as a provider error: the operation, AWS's code and message.
pub fn sdk_error<E>(operation: &str, error: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, message) = match &error {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let code = e
                .err()
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = e.err().message().unwrap_or("no message").to_string();
            (code, message)
        }
        SdkError::TimeoutError(_) => ("Timeout".to_string(), "the request timed out".into()),
        SdkError::DispatchFailure(e) => (
            "Dispatch".to_string(),
            format!("the request could not be sent: {e:?}"),
        ),
        SdkError::ResponseError(_) => (
            "Dispatch".to_string(),
            "the response could not be read".to_string(),
        ),
        other => ("Request".to_string(), format!("{other:?}")),
    };
    ProviderError {
        message: format!("{operation}: {code}: {message}"),
        code: Some(code),
        source: Some(Box::new(error)),
    }
}

/// Whether an operation may be sent again after an ambiguous failure (a timeout, a 5xx):
/// reads, deletes and setters end in the same state; creates, allocations, associations and
/// EKS updates do not.
fn safe_to_repeat(operation: &str) -> bool {
    ![
        "Create",
        "Allocate",
        "Associate",
        "AttachInternetGateway",
        "Update",
    ]
    .iter()
    .any(|prefix| operation.starts_with(prefix))
}

fn is_throttling(error: &ProviderError) -> bool {
    matches!(
        error.code.as_deref(),
        Some(
            "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled"
                | "RequestThrottledException"
                | "EC2ThrottledException"
                | "SlowDown"
        )
    )
}

/// What the engine does with an AWS error; the same for every provider.
pub fn classify(error: &ProviderError) -> ErrorClass {
    let code = error.code.as_deref().unwrap_or("");
    if is_throttling(error) {
        return ErrorClass::Transient;
    }
    if code.ends_with(".NotFound")
        || code.ends_with("NotFound")
        || matches!(code, "NoSuchEntity" | "ResourceNotFoundException")
    {
        return ErrorClass::NotFound;
    }
    let transient = matches!(
        code,
        "Timeout"
            | "Dispatch"
            | "InternalError"
            | "InternalFailure"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "ServerException"
            | "Unavailable"
            | "ConcurrentModification"
            | "ConcurrentModificationException"
            | "IncorrectState"
            | "InvalidRouteTableID.Malformed"
            // Deletes whose dependents AWS is still tearing down (ENIs, NAT addresses).
            | "DependencyViolation"
            // EKS: the cluster is busy (another update, or node groups still going).
            | "ResourceInUseException"
    ) || code.starts_with("HTTP5")
        // IAM is eventually consistent: a new role may not be assumable for a few seconds.
        || (code == "InvalidParameterException" && error.message.contains("assume"));
    if transient {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

/// EC2-style tag lists as a map.
pub fn tag_map<'a>(
    tags: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<String, String> {
    tags.into_iter()
        .filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or("").to_string())))
        .collect()
}

/// The user tags recorded in a resource's inputs (byoc's own are not inputs).
pub fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("byoc:") && !k.starts_with("aws:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait polls once at once, then at 80% of the typical time, then every 1% of it: an
    /// object ready at its typical time is seen within one interval, after a few polls.
    #[test]
    fn waiters_poll_near_the_typical_time() {
        let policy = WaitPolicy::default();
        let typical = Duration::from_secs(600);
        let (mut t, mut polls) = (Duration::ZERO, 1);
        while t < typical {
            t += policy.delay(typical, t);
            polls += 1;
        }
        assert!(t - typical <= Duration::from_secs(6), "{t:?}");
        assert!(polls <= 25, "{polls} polls");
        let ms = Duration::from_millis;
        // (policy, waited, the next delay)
        for (policy, waited, delay) in [
            (&policy, ms(0), ms(480_000)),
            (&policy, ms(480_000), ms(6_000)),
            // Far past its typical time a wait polls less often, within the bounds.
            (&policy, ms(1_200_000), ms(12_000)),
            (&policy, ms(3_600_000), ms(15_000)),
            // Scaled down for an emulator, with the policy's own bounds.
            (&WaitPolicy::scaled(0.01), ms(0), ms(4_800)),
            (&WaitPolicy::scaled(0.01), ms(5_000), ms(60)),
        ] {
            assert_eq!(policy.delay(typical, waited), delay, "after {waited:?}");
        }
    }

    #[test]
    fn a_target_never_prints_its_external_id() {
        let target = Target {
            account_id: "111111111111".into(),
            external_id: "s3cr3t-external-id".into(),
            region: "eu-west-1".into(),
            stack: "acme-dev".into(),
            run_id: "r1".into(),
        };
        let shown = format!("{target:?} {target:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("acme-dev") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn classification() {
        let c = |code: &str| classify(&ProviderError::with_code(code, "m"));
        assert_eq!(c("RequestLimitExceeded"), ErrorClass::Transient);
        assert_eq!(c("Throttling"), ErrorClass::Transient);
        assert_eq!(c("InvalidVpcID.NotFound"), ErrorClass::NotFound);
        assert_eq!(c("NoSuchEntity"), ErrorClass::NotFound);
        assert_eq!(c("ResourceNotFoundException"), ErrorClass::NotFound);
        assert_eq!(c("NatGatewayNotFound"), ErrorClass::NotFound);
        assert_eq!(c("DependencyViolation"), ErrorClass::Transient);
        assert_eq!(c("HTTP503"), ErrorClass::Transient);
        assert_eq!(c("AccessDenied"), ErrorClass::Permanent);
        assert_eq!(c(ASSUME_ROLE_DENIED), ErrorClass::Permanent);
        assert_eq!(c("InvalidParameterValue"), ErrorClass::Permanent);
    }

    #[test]
    fn only_repeatable_operations_are_retried_after_ambiguous_failures() {
        assert!(safe_to_repeat("DescribeVpcs"));
        assert!(safe_to_repeat("DeleteVpc"));
        assert!(safe_to_repeat("ModifyVpcAttribute"));
        assert!(!safe_to_repeat("CreateVpc"));
        assert!(!safe_to_repeat("AllocateAddress"));
        assert!(!safe_to_repeat("AssociateRouteTable"));
        assert!(!safe_to_repeat("UpdateClusterVersion"));
    }

    #[test]
    fn session_names_fit_sts() {
        assert_eq!(session_name("acme-dev", "r1"), "byoc-acme-dev-r1");
        let long = session_name("acme-dev", &"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert_eq!(session_name("a b", "r/1"), "byoc-a-b-r-1");
    }
}
