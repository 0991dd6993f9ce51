//! Draining a cluster before its releases go, against an HTTP-level double of the
//! Kubernetes API (no real API server can run here): LoadBalancer Services and Ingresses are
//! deleted, then Karpenter's NodePools, and the drain waits until their load balancers and
//! nodes are gone. The token is the real EKS token of the session's assumed role.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use byoc_components::RateLimits;
use byoc_components::resources::cluster_drain;
use byoc_engine::{CancellationToken, Ctx, ErrorClass};
use byoc_testkit::Emulator;
use serde_json::{Value, json};

/// The cluster as the double holds it. A deleted Service or NodePool lingers for one more
/// listing (finalizers, Karpenter terminating nodes), as in a real cluster.
#[derive(Default)]
struct Cluster {
    services: Vec<Value>,
    ingresses: Vec<Value>,
    /// `None`: Karpenter is not installed (its API group answers 404).
    node_pools: Option<Vec<Value>>,
    nodes: Vec<Value>,
    /// Objects deleted and still finalizing, with the listings they still appear in.
    finalizing: Vec<(String, usize)>,
    /// Every request: method and path.
    log: Vec<String>,
    /// Answer everything with this status instead.
    refuse: Option<StatusCode>,
    bad_tokens: usize,
}

type Shared = Arc<Mutex<Cluster>>;

fn object(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "spec": spec})
}

fn name_of(item: &Value) -> String {
    item["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Checks the token and logs the request; `Err` is the answer when refused.
fn enter(state: &Shared, method: &str, uri: &Uri, headers: &HeaderMap) -> Result<(), StatusCode> {
    let mut c = state.lock().unwrap();
    c.log.push(format!("{method} {}", uri.path()));
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !token.starts_with("Bearer k8s-aws-v1.") {
        c.bad_tokens += 1;
        return Err(StatusCode::UNAUTHORIZED);
    }
    c.refuse.map_or(Ok(()), Err)
}

/// Lists, dropping what finished finalizing.
fn list(
    items: &mut Vec<Value>,
    finalizing: &mut [(String, usize)],
    keep: impl Fn(&Value) -> bool,
) -> Value {
    items.retain(|i| {
        let name = name_of(i);
        match finalizing.iter_mut().find(|(n, _)| *n == name) {
            Some((_, 0)) => false,
            Some((_, left)) => {
                *left -= 1;
                true
            }
            None => true,
        }
    });
    json!({"items": items.iter().filter(|i| keep(i)).cloned().collect::<Vec<_>>()})
}

/// DELETE of a namespaced object: it finalizes over the next listing.
async fn delete_namespaced(
    State(s): State<Shared>,
    Path((_, name)): Path<(String, String)>,
    uri: Uri,
    h: HeaderMap,
) -> Result<StatusCode, StatusCode> {
    enter(&s, "DELETE", &uri, &h)?;
    s.lock().unwrap().finalizing.push((name, 1));
    Ok(StatusCode::OK)
}

fn double(state: Shared) -> Router {
    Router::new()
        .route(
            "/api/v1/services",
            get(|State(s): State<Shared>, uri: Uri, h: HeaderMap| async move {
                enter(&s, "GET", &uri, &h)?;
                let mut c = s.lock().unwrap();
                let c = &mut *c;
                Ok::<_, StatusCode>(axum::Json(list(&mut c.services, &mut c.finalizing, |_| true)))
            }),
        )
        .route("/api/v1/namespaces/{ns}/services/{name}", axum::routing::delete(delete_namespaced))
        .route(
            "/apis/networking.k8s.io/v1/ingresses",
            get(|State(s): State<Shared>, uri: Uri, h: HeaderMap| async move {
                enter(&s, "GET", &uri, &h)?;
                let mut c = s.lock().unwrap();
                let c = &mut *c;
                Ok::<_, StatusCode>(axum::Json(list(&mut c.ingresses, &mut c.finalizing, |_| true)))
            }),
        )
        .route("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}", axum::routing::delete(delete_namespaced))
        .route(
            "/apis/karpenter.sh/v1/nodepools",
            get(|State(s): State<Shared>, uri: Uri, h: HeaderMap| async move {
                enter(&s, "GET", &uri, &h)?;
                let mut c = s.lock().unwrap();
                let c = &mut *c;
                match &mut c.node_pools {
                    None => Err(StatusCode::NOT_FOUND),
                    Some(pools) => Ok(axum::Json(list(pools, &mut c.finalizing, |_| true))),
                }
            }),
        )
        .route(
            "/apis/karpenter.sh/v1/nodepools/{name}",
            axum::routing::delete(
                |State(s): State<Shared>, Path(name): Path<String>, uri: Uri, h: HeaderMap| async move {
                    enter(&s, "DELETE", &uri, &h)?;
                    let mut c = s.lock().unwrap();
                    // Karpenter terminates the pool's nodes, then lets the pool go.
                    let nodes: Vec<String> = c
                        .nodes
                        .iter()
                        .filter(|n| n["metadata"]["labels"]["karpenter.sh/nodepool"] == name.as_str())
                        .map(name_of)
                        .collect();
                    c.finalizing.extend(nodes.into_iter().map(|n| (n, 2)));
                    c.finalizing.push((name, 1));
                    Ok::<_, StatusCode>(StatusCode::OK)
                },
            ),
        )
        .route(
            "/api/v1/nodes",
            get(|State(s): State<Shared>, uri: Uri, h: HeaderMap| async move {
                enter(&s, "GET", &uri, &h)?;
                let selected = uri.query().unwrap_or_default().contains("labelSelector=karpenter.sh%2Fnodepool");
                let mut c = s.lock().unwrap();
                let c = &mut *c;
                Ok::<_, StatusCode>(axum::Json(list(&mut c.nodes, &mut c.finalizing, |n| {
                    !selected || n["metadata"]["labels"].get("karpenter.sh/nodepool").is_some()
                })))
            }),
        )
        .with_state(state)
}

async fn serve(cluster: Cluster) -> anyhow::Result<(Shared, String)> {
    let state = Arc::new(Mutex::new(cluster));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = double(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((state, url))
}

/// Drains the double at `endpoint` as a destroy would, with the tenant's session.
async fn drain(endpoint: &str, node_pools: bool) -> Result<(), byoc_engine::ProviderError> {
    let emulator = Emulator::shared();
    let platform = common::env::platform(emulator.endpoint(), RateLimits::default()).await;
    let env = common::env::Env::new(&platform, &emulator.fresh_account(), "acme-dev");
    let provider = env.providers.get(cluster_drain::KIND).unwrap().clone();
    let inputs = json!({
        "cluster": {"name": "acme-dev", "endpoint": endpoint, "certificate_authority": ""},
        "node_pools": node_pools,
        "timeout_seconds": 30,
    });
    let ctx = Ctx {
        stack: "acme-dev".into(),
        resource: "cluster-drain".into(),
        token: "t".into(),
        attempt: 1,
        cancel: CancellationToken::new(),
    };
    let result = provider.delete(&ctx, "acme-dev", &inputs).await;
    if let Err(e) = &result {
        assert_eq!(provider.classify(e), ErrorClass::Permanent, "{e}");
    }
    result
}

fn karpenter_node(name: &str, pool: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"karpenter.sh/nodepool": pool}}})
}

#[tokio::test]
async fn drain_deletes_load_balancers_ingresses_and_node_pools_and_waits() -> anyhow::Result<()> {
    let (state, url) = serve(Cluster {
        services: vec![
            object("ingress-nginx", "ingress-nginx-controller", json!({"type": "LoadBalancer"})),
            object("shop", "checkout", json!({"type": "LoadBalancer"})),
            object("shop", "cart", json!({"type": "ClusterIP"})),
        ],
        ingresses: vec![object("shop", "web", json!({}))],
        node_pools: Some(vec![object("", "default", json!({}))]),
        nodes: vec![
            karpenter_node("ip-10-0-1-1", "default"),
            karpenter_node("ip-10-0-1-2", "default"),
            json!({"metadata": {"name": "ip-10-0-9-9", "labels": {"eks.amazonaws.com/nodegroup": "default"}}}),
        ],
        ..Cluster::default()
    })
    .await?;
    drain(&url, true).await?;
    let c = state.lock().unwrap();
    assert_eq!(c.bad_tokens, 0, "every request carries the EKS token");
    let deletes: Vec<&str> = c
        .log
        .iter()
        .filter(|l| l.starts_with("DELETE"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        deletes,
        [
            "DELETE /api/v1/namespaces/ingress-nginx/services/ingress-nginx-controller",
            "DELETE /api/v1/namespaces/shop/services/checkout",
            "DELETE /apis/networking.k8s.io/v1/namespaces/shop/ingresses/web",
            "DELETE /apis/karpenter.sh/v1/nodepools/default",
        ]
    );
    // What was not byoc's to drain stays; the rest is gone.
    assert_eq!(c.services.iter().map(name_of).collect::<Vec<_>>(), ["cart"]);
    assert!(c.ingresses.is_empty());
    assert_eq!(
        c.nodes.iter().map(name_of).collect::<Vec<_>>(),
        ["ip-10-0-9-9"]
    );
    // It waited: listings after the deletes saw the load balancers and nodes go.
    let last_delete = c.log.iter().rposition(|l| l.starts_with("DELETE")).unwrap();
    assert!(
        c.log[last_delete..]
            .iter()
            .filter(|l| l.contains("/nodes"))
            .count()
            >= 2,
        "{:?}",
        c.log
    );
    Ok(())
}

#[tokio::test]
async fn drain_without_karpenter_and_refusals_are_clear() -> anyhow::Result<()> {
    let (state, url) = serve(Cluster {
        services: vec![object("app", "web", json!({"type": "LoadBalancer"}))],
        ..Cluster::default()
    })
    .await?;
    drain(&url, true).await?;
    assert!(state.lock().unwrap().services.is_empty());

    // EKS Auto Mode's built-in pools are EKS's: drained of load balancers only.
    let (state, url) = serve(Cluster {
        services: vec![object("app", "web", json!({"type": "LoadBalancer"}))],
        node_pools: Some(vec![object("", "general-purpose", json!({}))]),
        nodes: vec![karpenter_node("i-auto", "general-purpose")],
        ..Cluster::default()
    })
    .await?;
    drain(&url, false).await?;
    {
        let c = state.lock().unwrap();
        assert!(c.services.is_empty());
        assert_eq!(c.node_pools.as_ref().map(Vec::len), Some(1));
        let log = &c.log;
        assert!(!log.iter().any(|l| l.contains("nodepools")), "{log:?}");
    }

    // An API server that refuses byoc's role: a permanent error naming the request.
    let (_, url) = serve(Cluster {
        refuse: Some(StatusCode::FORBIDDEN),
        ..Cluster::default()
    })
    .await?;
    let err = drain(&url, true).await.unwrap_err().to_string();
    assert!(
        err.contains("GET /api/v1/services") && err.contains("403"),
        "{err}"
    );
    Ok(())
}
