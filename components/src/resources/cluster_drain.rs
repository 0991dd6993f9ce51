//! Draining the environment's cluster before its releases and the cluster itself go: the
//! controllers still running delete what they made in AWS. Nothing is made on create; on
//! delete, LoadBalancer Services and Ingresses are deleted (their load balancers go with
//! them), then Karpenter's NodePools (Karpenter terminates their nodes), and it waits until
//! all of that is gone. The blueprint orders it before every release and after the cluster,
//! so Karpenter and the load balancer controllers still run while it drains.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use byoc_engine::{Created, Ctx, ErrorClass, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::helm_release::Cluster;
use super::{ResourceKind, Result, Sweeper, is_seconds, seconds};
use crate::aws::{self, Aws, Patience};
use crate::kube::{KUBE_UNAVAILABLE, KubeClient};

pub const KIND: &str = "k8s:ClusterDrain";

const SERVICES: &str = "/api/v1/services";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/ingresses";
const NODE_POOLS: &str = "/apis/karpenter.sh/v1/nodepools";
const KARPENTER_NODES: &str = "/api/v1/nodes?labelSelector=karpenter.sh%2Fnodepool";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub cluster: Cluster,
    /// Delete Karpenter's NodePools: only byoc's own Karpenter (EKS Auto Mode's built-in
    /// pools are EKS's, and go with the cluster).
    #[serde(default)]
    pub node_pools: bool,
    /// How long to wait for load balancers and nodes to go.
    #[serde(default = "seconds::<900>", skip_serializing_if = "is_seconds::<900>")]
    pub timeout_seconds: u64,
}

pub struct ClusterDrain(pub Arc<Aws>);

/// `(namespace, name)` of each item of a list, those `keep` accepts.
fn items(list: &Option<Value>, keep: impl Fn(&Value) -> bool) -> Vec<(String, String)> {
    let Some(list) = list else {
        return Vec::new();
    };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| keep(item))
        .map(|item| {
            let meta = &item["metadata"];
            let text = |key: &str| meta[key].as_str().unwrap_or_default().to_string();
            (text("namespace"), text("name"))
        })
        .collect()
}

fn load_balancer(service: &Value) -> bool {
    service["spec"]["type"] == "LoadBalancer"
}

/// What is left to go: LoadBalancer Services, Ingresses, and with `node_pools` the
/// NodePools and Karpenter's nodes.
async fn remaining(kube: &KubeClient, node_pools: bool) -> Result<[Vec<(String, String)>; 4]> {
    let mut left = [
        items(&kube.get(SERVICES).await?, load_balancer),
        items(&kube.get(INGRESSES).await?, |_| true),
        Vec::new(),
        Vec::new(),
    ];
    if node_pools {
        left[2] = items(&kube.get(NODE_POOLS).await?, |_| true);
        left[3] = items(&kube.get(KARPENTER_NODES).await?, |_| true);
    }
    Ok(left)
}

impl ClusterDrain {
    async fn kube(&self, cluster: &Cluster) -> Result<KubeClient> {
        KubeClient::new(&cluster.access(&self.0).await?)
    }
}

impl ResourceKind for ClusterDrain {
    const KIND: &'static str = KIND;
    type Inputs = Inputs;
    const REPLACE_ON: &'static [&'static str] = &[];
}

#[async_trait]
impl Sweeper for ClusterDrain {
    fn recorded(inputs: &Inputs) -> Created {
        Created {
            physical_id: inputs.cluster.name.clone(),
            outputs: json!({"cluster": inputs.cluster.name}),
        }
    }

    async fn sweep(&self, ctx: &Ctx, inputs: &Inputs) -> Result<()> {
        let kube = self.kube(&inputs.cluster).await?;
        let [services, ingresses, pools, _] = remaining(&kube, inputs.node_pools).await?;
        for (namespace, name) in &services {
            kube.delete(&format!("/api/v1/namespaces/{namespace}/services/{name}"))
                .await?;
        }
        for (namespace, name) in &ingresses {
            kube.delete(&format!(
                "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}"
            ))
            .await?;
        }
        for (_, name) in &pools {
            kube.delete(&format!("{NODE_POOLS}/{name}")).await?;
        }
        let what = format!(
            "cluster {}'s load balancers and Karpenter's nodes to go",
            inputs.cluster.name
        );
        // Load balancers go in seconds; nodes drain and terminate in a minute or two.
        let patience = Patience {
            typical: Duration::from_secs(60),
            timeout: Duration::from_secs(inputs.timeout_seconds),
        };
        self.0
            .wait_for(ctx, &what, patience, || async {
                let left = remaining(&kube, inputs.node_pools).await?;
                Ok(left.iter().all(Vec::is_empty).then_some(()))
            })
            .await?;
        tracing::info!(
            stack = %ctx.stack,
            services = services.len(),
            ingresses = ingresses.len(),
            node_pools = pools.len(),
            "drained the cluster"
        );
        Ok(())
    }

    fn classify(error: &ProviderError) -> ErrorClass {
        match error.code.as_deref() {
            Some(KUBE_UNAVAILABLE) => ErrorClass::Transient,
            _ => aws::classify(error),
        }
    }
}
