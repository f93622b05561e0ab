//! The server gate: the front of every MCP server the operator deploys (`mcp-guard server-gate`, a
//! container beside the server in its pod). The server itself is reachable only on the pod's loopback
//! (its NetworkPolicy admits the gate's port and nothing else); the gate forwards a request to it only
//! when the request carries a service-account token that
//! - the Kubernetes TokenReview API accepts **for this server's audience** (`mcpguard.io/server/<ns>/<name>`:
//!   the operator projects such a token only into the binding proxies of policies that bind the server),
//! - and names an MCP Guard binding-proxy service account of the server's namespace
//!   (`system:serviceaccount:<ns>:<policy>-binding-proxy`, which only the operator's own workloads may
//!   run as: the chart's admission policies refuse any other pod, Deployment or token request for it).
//!
//! So the labels a pod carries are not what lets it in: a pod that got past the network with copied
//! labels has no such token. The token travels in [`IDENTITY_HEADER`], not `Authorization`, which
//! stays the server's own (a server may demand its own credential, which the proxy sends as before); the
//! gate removes it before forwarding, so the server never sees a token it could replay.
//!
//! TokenReview is guarded as for callers of the executor ([`crate::auth`]): only JWT-shaped tokens are
//! reviewed, results are cached by digest, and each peer has a budget of failed reviews.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::{
    ApiError,
    auth::{Authenticator, Caller},
};

pub use mcp_guard_crds::identity::{SERVER_IDENTITY_HEADER as IDENTITY_HEADER, server_audience};

/// The realm of the gate's own refusals (`WWW-Authenticate`), which tells them apart from the server's.
pub const REALM: &str = "mcp-guard-server-gate";

/// The suffix of binding-proxy service accounts (the operator names them `<policy>-binding-proxy`).
pub const PROXY_ACCOUNT_SUFFIX: &str = "-binding-proxy";

/// Whether `caller` is an MCP Guard binding-proxy service account of `namespace`. (Executor accounts
/// are not: executor pods hold no server token and cannot reach a server.)
pub fn is_proxy_account(caller: &str, namespace: &str) -> bool {
    caller
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.strip_prefix(namespace))
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|account| account.strip_suffix(PROXY_ACCOUNT_SUFFIX))
        .is_some_and(|policy| {
            !policy.is_empty()
                && policy.len() <= 253
                && policy
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        })
}

/// A gate: who may pass, and where to.
#[derive(Debug)]
pub struct Gate {
    authenticator: Authenticator,
    namespace: String,
    /// `http://127.0.0.1:<port>`: the server in the same pod.
    upstream: Uri,
    client: Client<HttpConnector, Body>,
}

impl Gate {
    /// `upstream` must be an `http://host:port` URI (the server on the pod's loopback).
    pub fn new(authenticator: Authenticator, namespace: String, upstream: &str) -> Result<Self, String> {
        let upstream: Uri = upstream.parse().map_err(|e| format!("the upstream `{upstream}`: {e}"))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(format!("the upstream `{upstream}` must be http://<host>:<port>"));
        }
        if authenticator.is_insecure() {
            return Err("the server gate always authenticates".into());
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Gate { authenticator, namespace, upstream, client })
    }

    /// Who sent `headers`, if they may pass.
    pub async fn admit(&self, headers: &axum::http::HeaderMap, peer: SocketAddr) -> Result<Caller, ApiError> {
        let token = match headers.get(IDENTITY_HEADER) {
            None => {
                return Err(ApiError::Unauthenticated(format!(
                    "no `{IDENTITY_HEADER}` header: this server admits only MCP Guard binding proxies"
                )));
            }
            Some(v) => v.to_str().map_err(|_| {
                ApiError::Unauthenticated(format!("the `{IDENTITY_HEADER}` header is not a token"))
            })?,
        };
        let caller = self
            .authenticator
            .authenticate(Some(&format!("Bearer {}", token.trim())), None, Some(peer.ip()))
            .await?;
        if !is_proxy_account(&caller.name, &self.namespace) {
            return Err(ApiError::PermissionDenied(format!(
                "`{}` is not an MCP Guard binding proxy of namespace {}",
                caller.name, self.namespace
            )));
        }
        Ok(caller)
    }

    /// Forward an admitted request to the server, streaming both bodies.
    async fn forward(&self, mut req: Request<Body>) -> Response<Body> {
        let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let uri = match Uri::builder()
            .scheme("http")
            .authority(self.upstream.authority().map(|a| a.as_str()).unwrap_or_default())
            .path_and_query(path)
            .build()
        {
            Ok(u) => u,
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("bad request target: {e}")),
        };
        *req.uri_mut() = uri;
        strip_hop_by_hop(req.headers_mut());
        req.headers_mut().remove(IDENTITY_HEADER);
        match self.client.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the server in this pod did not answer");
                plain(StatusCode::BAD_GATEWAY, "the MCP server in this pod did not answer")
            }
        }
    }
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{message}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A refusal by the gate: the status of `e`, its message, and (for 401) a challenge naming the gate.
pub fn refusal(e: &ApiError) -> Response<Body> {
    let mut resp = plain(e.http_status(), &e.to_string());
    if matches!(e, ApiError::Unauthenticated(_)) {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!("Bearer realm=\"{REALM}\""))
                .unwrap_or(HeaderValue::from_static("Bearer")),
        );
    }
    resp
}

/// Connection-level headers, which a proxy must not pass on (RFC 9110 §7.6.1), and those the
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

async fn handle(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response<Body> {
    match gate.admit(req.headers(), peer).await {
        Ok(caller) => {
            tracing::debug!(caller = %caller.name, method = %req.method(), path = %req.uri().path(), "admitted");
            gate.forward(req).await
        }
        Err(e) => {
            tracing::info!(%peer, reason = e.reason(), error = %e, "refused");
            refusal(&e)
        }
    }
}

/// Serve the gate on `listener` until `shutdown` resolves.
pub async fn serve(
    gate: Arc<Gate>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(gate);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_binding_proxy_accounts_of_the_namespace_pass() {
        let ok = |c: &str| is_proxy_account(c, "team");
        assert!(ok("system:serviceaccount:team:agents-binding-proxy"));
        assert!(!ok("system:serviceaccount:team:agents-mcp-guard"), "an executor holds no server token");
        assert!(!ok("system:serviceaccount:team:-binding-proxy"), "no policy name");
        assert!(!ok("system:serviceaccount:team:agents"), "not a proxy account");
        assert!(!ok("system:serviceaccount:other:agents-binding-proxy"), "another namespace");
        assert!(!ok("system:serviceaccount:team-b:agents-binding-proxy"), "a namespace with the same prefix");
        assert!(!ok("system:serviceaccount:teamx:agents-binding-proxy"));
        assert!(!ok("system:serviceaccount:team:a:b-binding-proxy"), "a colon in the account");
        assert!(!ok("team:agents-binding-proxy"));
        assert!(!ok("system:serviceaccount:team:Agents-binding-proxy"), "not a DNS name");
        assert!(!ok("system:serviceaccount:team:agents-binding-proxy\n"));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer server-own"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret-hop").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(h.get(header::AUTHORIZATION).map(|v| v.as_bytes()), Some(&b"Bearer server-own"[..]));
    }

    #[test]
    fn the_audience_names_the_server() {
        assert_eq!(server_audience("team", "github"), "mcpguard.io/server/team/github");
    }
}
