//! Reaching a tenant's EKS cluster: the bearer token EKS accepts (a presigned STS
//! GetCallerIdentity URL that names the cluster, as `aws eks get-token` makes it), a
//! kubeconfig that exists only as a 0600 temporary file while a helm process needs it, and a
//! minimal API client for draining the cluster.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use byoc_engine::ProviderError;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

/// The header naming the cluster, signed into the token so it cannot be replayed elsewhere.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// How long the presigned URL is valid, as aws-cli and aws-iam-authenticator sign it; EKS
/// accepts a token for 15 minutes after it was signed.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// RFC 3986 unreserved characters stay; everything else is percent-encoded, as SigV4's
/// canonical query string expects.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The bearer token for `cluster` in `region`, signed at `now` with `credentials`.
pub fn eks_token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<String, ProviderError> {
    let failed = |e: &dyn std::fmt::Display| {
        ProviderError::new(format!("signing the EKS token of cluster {cluster}: {e}"))
    };
    let base =
        format!("https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        [(CLUSTER_ID_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let mut url = base;
    for (name, value) in instructions.params() {
        url.push_str(&format!("&{name}={}", utf8_percent_encode(value, QUERY)));
    }
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)))
}

/// What a client needs to reach a cluster's API server.
#[derive(Clone)]
pub struct ClusterAccess {
    pub name: String,
    /// `https://...`
    pub endpoint: String,
    /// The cluster's CA certificate (PEM), base64 as EKS returns it.
    pub ca_data: String,
    /// A bearer token (never logged).
    pub token: String,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl ClusterAccess {
    /// A kubeconfig in a 0600 temporary file, removed when the returned handle is dropped.
    pub fn kubeconfig(&self) -> std::io::Result<tempfile::NamedTempFile> {
        // JSON is YAML: no YAML writer needed.
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": {
                "server": self.endpoint,
                "certificate-authority-data": self.ca_data,
            }}],
            "users": [{"name": "byoc", "user": {"token": self.token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": "byoc"}}],
            "current-context": self.name,
        });
        // tempfile creates it 0600 on Unix.
        let mut file = tempfile::Builder::new()
            .prefix("byoc-kubeconfig-")
            .suffix(".yaml")
            .tempfile()?;
        file.write_all(config.to_string().as_bytes())?;
        file.flush()?;
        Ok(file)
    }
}

/// A minimal client of a cluster's Kubernetes API: JSON GETs and DELETEs with the bearer
/// token, all that draining a cluster needs. TLS trusts only the cluster's own CA.
pub struct KubeClient {
    base: String,
    token: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The code of an API server that could not be reached or answered 5xx: worth retrying.
pub const KUBE_UNAVAILABLE: &str = "KubeUnavailable";

impl KubeClient {
    pub fn new(access: &ClusterAccess) -> Result<KubeClient, ProviderError> {
        let failed = |e: &dyn std::fmt::Display| {
            ProviderError::new(format!(
                "the API server of cluster {} cannot be trusted: {e}",
                access.name
            ))
        };
        let mut roots = rustls::RootCertStore::empty();
        if access.endpoint.starts_with("https://") {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(access.ca_data.trim())
                .map_err(|e| failed(&e))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots
                    .add(cert.map_err(|e| failed(&e))?)
                    .map_err(|e| failed(&e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(KubeClient {
            base: access.endpoint.trim_end_matches('/').to_string(),
            token: access.token.clone(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// GETs `path`; `None` when it does not exist (404: e.g. an API group not installed).
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ProviderError> {
        let (status, body) = self.send(Method::GET, path).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ProviderError::new(format!("GET {path}: not JSON: {e}")))
    }

    /// DELETEs `path`; something already gone counts as deleted.
    pub async fn delete(&self, path: &str) -> Result<(), ProviderError> {
        self.send(Method::DELETE, path).await.map(drop)
    }

    async fn send(&self, method: Method, path: &str) -> Result<(StatusCode, Bytes), ProviderError> {
        let what = format!("{method} {path}");
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ProviderError::new(format!("{what}: {e}")))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| ProviderError::with_code(KUBE_UNAVAILABLE, format!("{what}: timed out")))?
            .map_err(|e| ProviderError::with_code(KUBE_UNAVAILABLE, format!("{what}: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ProviderError::with_code(KUBE_UNAVAILABLE, format!("{what}: {e}")))?
            .to_bytes();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok((status, body));
        }
        let message = format!("{what}: {status}: {}", String::from_utf8_lossy(&body));
        Err(
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                ProviderError::with_code(KUBE_UNAVAILABLE, message)
            } else {
                ProviderError::with_code("KubeRefused", message)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(data)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }

    fn sha256_hex(data: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(data))
    }

    /// Decodes the token and checks the presigned request against SigV4's rules, computing
    /// the signature independently of the signer that made it.
    #[test]
    fn eks_token_is_a_presigned_get_caller_identity_for_the_cluster() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret/key",
            Some("session-token".into()),
            None,
            "test",
        );
        // 2026-11-25T14:00:00Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_615_200);
        let token = eks_token(&credentials, "eu-west-1", "acme-dev", now).unwrap();
        let encoded = token.strip_prefix("k8s-aws-v1.").expect("the prefix");
        assert!(!encoded.contains('=') && !encoded.contains('+') && !encoded.contains('/'));
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://sts.eu-west-1.amazonaws.com/");
        let mut params: Vec<(String, String)> = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap();
                (k.to_string(), v.into_owned())
            })
            .collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} in {url}"))
        };
        assert_eq!(get("Action"), "GetCallerIdentity");
        assert_eq!(get("Version"), "2011-06-15");
        assert_eq!(get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(
            get("X-Amz-Credential"),
            "AKIDEXAMPLE/20261125/eu-west-1/sts/aws4_request"
        );
        assert_eq!(get("X-Amz-Date"), "20261125T140000Z");
        assert_eq!(get("X-Amz-Expires"), "60");
        assert_eq!(get("X-Amz-SignedHeaders"), "host;x-k8s-aws-id");
        assert_eq!(get("X-Amz-Security-Token"), "session-token");
        let signature = get("X-Amz-Signature");

        params.retain(|(k, _)| k != "X-Amz-Signature");
        params.sort();
        let canonical_query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect::<Vec<_>>()
            .join("&");
        let canonical_request = format!(
            "GET\n/\n{canonical_query}\nhost:sts.eu-west-1.amazonaws.com\nx-k8s-aws-id:acme-dev\n\nhost;x-k8s-aws-id\n{}",
            sha256_hex(b"")
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20261125T140000Z\n20261125/eu-west-1/sts/aws4_request\n{}",
            sha256_hex(canonical_request.as_bytes())
        );
        let mut key = hmac(b"AWS4secret/key", b"20261125");
        for part in ["eu-west-1", "sts", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        assert_eq!(
            signature,
            hex::encode(hmac(&key, string_to_sign.as_bytes()))
        );

        // Another cluster, another token: the cluster's name is signed in.
        let other = eks_token(&credentials, "eu-west-1", "acme-prod", now).unwrap();
        assert_ne!(token, other);
    }

    #[test]
    fn kubeconfig_is_private_and_gone_after_use() {
        let access = ClusterAccess {
            name: "acme-dev".into(),
            endpoint: "https://example.eks.amazonaws.com".into(),
            ca_data: "Q0E=".into(),
            token: "k8s-aws-v1.secret".into(),
        };
        let file = access.kubeconfig().unwrap();
        let path = file.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config["users"][0]["user"]["token"], "k8s-aws-v1.secret");
        assert_eq!(
            config["clusters"][0]["cluster"]["server"],
            "https://example.eks.amazonaws.com"
        );
        assert!(!format!("{access:?}").contains("secret"));
        drop(file);
        assert!(!path.exists());
    }
}
