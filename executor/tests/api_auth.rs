//! Caller authentication beyond static tokens: Kubernetes TokenReview (against a fake API server run in
//! the test) with audience binding and allowed callers, and mTLS on both doors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::{
    net::{IpAddr, SocketAddr},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use api_support::{ALICE, Serve, TempDir, authed, code, completed, try_serve};
use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};

const CONFIG: &str = "limits:\n  wallTime: 10s\n";
const OWN_TOKEN: &str = "executor-own-service-account-token";
const AUDIENCE: &str = "mcp-guard.agents.svc";

// Service-account tokens are JWTs: three base64url segments. The executor refuses anything else before
// asking the API server, so the fake's tokens have that shape.
const SA_BOT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudHM6Ym90In0.c2lnLWFnZW50cy1ib3Q";
const SA_OTHER_AUDIENCE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudHM6Ym90In0.c2lnLWF1ZGllbmNl";
const SA_OTHER_NAMESPACE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlcjpib3QifQ.c2lnLW90aGVy";
const SA_FORGED: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudHM6Ym90In0.Zm9yZ2Vk";

/// Tokens the fake API server knows: token -> (user, audiences it was issued for).
fn known(token: &str) -> Option<(&'static str, &'static [&'static str])> {
    match token {
        SA_BOT => Some(("system:serviceaccount:agents:bot", &[AUDIENCE])),
        SA_OTHER_AUDIENCE => Some(("system:serviceaccount:agents:bot", &["https://kubernetes.default.svc"])),
        SA_OTHER_NAMESPACE => Some(("system:serviceaccount:other:bot", &[AUDIENCE])),
        _ => None,
    }
}

/// A JWT-shaped token the fake API server does not know, distinct for each `i`.
fn bad_jwt(i: usize) -> String {
    format!("eyJhbGciOiJSUzI1NiJ9.eyJqdGkiOiI{i}In0.Zm9yZ2Vk")
}

/// A fake TokenReview endpoint that behaves like the API server: a token is authenticated only for the
/// audiences it was issued for, and only the executor's own token may call it.
async fn token_review(
    State(calls): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
    Json(review): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {OWN_TOKEN}")) {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({"kind": "Status", "code": 401})));
    }
    assert_eq!(review["kind"], "TokenReview");
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Vec<&str> =
        review["spec"]["audiences"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let status = match known(token) {
        Some((user, audiences)) => {
            let both: Vec<&str> = wanted.iter().copied().filter(|a| audiences.contains(a)).collect();
            if both.is_empty() {
                json!({"authenticated": false, "error": "[invalid bearer token, token audiences [...] is invalid for the target audiences]"})
            } else {
                json!({"authenticated": true, "user": {"username": user, "groups": ["system:serviceaccounts"]}, "audiences": both})
            }
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    (
        axum::http::StatusCode::CREATED,
        Json(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})),
    )
}

/// The fake API server (`reviews` counts the TokenReviews it answered) and `mcp-guard serve` using it,
/// with the allowed callers `system:serviceaccount:agents:*`.
async fn serve_with_token_review() -> (Serve, Arc<AtomicUsize>, TempDir) {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/apis/authentication.k8s.io/v1/tokenreviews", post(token_review))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = TempDir::new("token-review");
    let own = dir.path().join("token");
    std::fs::write(&own, OWN_TOKEN).unwrap();

    let s = try_serve(
        CONFIG,
        &[
            "--token-review-audience",
            AUDIENCE,
            "--token-review-url",
            &url,
            "--token-review-token-file",
            own.to_str().unwrap(),
            "--allowed-callers",
            "system:serviceaccount:agents:*",
        ],
        false,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    (s, calls, dir)
}

/// A gRPC client whose connections come from `source` (any address in 127.0.0.0/8 is loopback), so
/// that the server sees a different peer.
async fn client_from(
    s: &Serve,
    source: &str,
) -> mcp_guard_proto::v1::executor_client::ExecutorClient<Channel> {
    let target: SocketAddr = s.grpc.parse().unwrap();
    let source: IpAddr = source.parse().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(s.grpc_url())
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(socket.connect(target).await?))
        }))
        .await
        .unwrap();
    mcp_guard_proto::v1::executor_client::ExecutorClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_checks_the_audience_and_the_allowed_callers() {
    let (s, calls, _dir) = serve_with_token_review().await;
    let mut c = s.client().await;
    assert_eq!(completed(&c.execute(authed(code("return 1"), SA_BOT)).await.unwrap().into_inner()), 1);
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(completed(&c.execute(authed(code("return 2"), SA_BOT)).await.unwrap().into_inner()), 2);
    assert_eq!(calls.load(Ordering::SeqCst), before, "a successful review is cached");

    let e = c.execute(authed(code("return 1"), SA_OTHER_AUDIENCE)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "wrong audience: {e:?}");
    assert!(e.message().contains("audience"), "{e:?}");
    let e = c.execute(authed(code("return 1"), SA_FORGED)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = c.execute(authed(code("return 1"), SA_OTHER_NAMESPACE)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("system:serviceaccount:other:bot"), "{e:?}");

    // The same on the MCP door: 401 and 403.
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |token: &str| {
        http.post(&s.mcp)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
    };
    assert_eq!(post(SA_OTHER_AUDIENCE).await.unwrap().status(), 401);
    assert_eq!(post(SA_OTHER_NAMESPACE).await.unwrap().status(), 403);
    assert_eq!(post(SA_BOT).await.unwrap().status(), 200);
}

/// A CA, a server certificate for localhost, client certificates for `carol` and `mallory`, and one for
/// `eve` from another CA.
fn make_pki(dir: &std::path::Path) {
    let script = r#"
set -euo pipefail
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
for ca in ca other-ca; do
  openssl req -x509 $ec -keyout $ca.key -out $ca.crt -subj "/CN=$ca" -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
done
leaf() { # name cn ca ext
  openssl req $ec -keyout $1.key -out $1.csr -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$4" > $1.ext
  openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial -out $1.crt -days 2 -extfile $1.ext 2>/dev/null
}
leaf server localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf carol carol ca "extendedKeyUsage=clientAuth"
leaf mallory mallory ca "extendedKeyUsage=clientAuth"
leaf eve carol other-ca "extendedKeyUsage=clientAuth"
"#;
    let out = Command::new("bash").arg("-c").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
}

async fn tls_channel(
    addr: &str,
    dir: &std::path::Path,
    client: Option<&str>,
) -> Result<Channel, tonic::transport::Error> {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.crt"))).domain_name("localhost");
    if let Some(name) = client {
        tls = tls.identity(Identity::from_pem(read(&format!("{name}.crt")), read(&format!("{name}.key"))));
    }
    Channel::from_shared(format!("https://{addr}")).unwrap().tls_config(tls)?.connect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_callers_are_their_certificate_cn_on_both_doors() {
    let pki = TempDir::new("pki");
    make_pki(pki.path());
    let p = |f: &str| pki.path().join(f).to_str().unwrap().to_string();
    let s = try_serve(
        CONFIG,
        &[
            "--tls-cert",
            &p("server.crt"),
            "--tls-key",
            &p("server.key"),
            "--client-ca",
            &p("ca.crt"),
            "--allowed-callers",
            "carol,alice",
        ],
        true,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.mcp.starts_with("https://"), "{}", s.mcp);
    use mcp_guard_proto::v1::executor_client::ExecutorClient;

    let mut carol = ExecutorClient::new(tls_channel(&s.grpc, pki.path(), Some("carol")).await.unwrap());
    assert_eq!(completed(&carol.execute(code("return 'carol'")).await.unwrap().into_inner()), "carol");
    let mut mallory = ExecutorClient::new(tls_channel(&s.grpc, pki.path(), Some("mallory")).await.unwrap());
    let e = mallory.execute(code("return 1")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("mallory"));
    let mut anonymous = ExecutorClient::new(tls_channel(&s.grpc, pki.path(), None).await.unwrap());
    assert_eq!(anonymous.execute(code("return 1")).await.unwrap_err().code(), Code::Unauthenticated);
    // A bearer token still works over TLS without a certificate.
    assert_eq!(completed(&anonymous.execute(authed(code("return 2"), ALICE)).await.unwrap().into_inner()), 2);
    // A certificate from another CA does not get through the handshake.
    let eve = match tls_channel(&s.grpc, pki.path(), Some("eve")).await {
        Err(_) => None,
        Ok(channel) => Some(ExecutorClient::new(channel).execute(code("return 1")).await),
    };
    assert!(!matches!(eve, Some(Ok(_))), "a foreign certificate was accepted: {eve:?}");

    // The MCP door over TLS.
    let read = |f: &str| std::fs::read(pki.path().join(f)).unwrap();
    let client = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&read("ca.crt")).unwrap()]);
        if let Some(name) = identity {
            let mut pem = read(&format!("{name}.crt"));
            pem.extend(read(&format!("{name}.key")));
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    };
    let url = s.mcp.replace("127.0.0.1", "localhost");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |c: reqwest::Client| {
        c.post(&url).header("accept", "application/json, text/event-stream").json(&initialize).send()
    };
    assert_eq!(post(client(Some("carol"))).await.unwrap().status(), 200);
    assert_eq!(post(client(Some("mallory"))).await.unwrap().status(), 403);
    assert_eq!(post(client(None)).await.unwrap().status(), 401);
}

/// `--discovery-callers`: such a caller may list and describe the bound tools, never run code, on either
/// door; an allowed caller still does both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_callers_list_tools_but_may_not_execute() {
    use api_support::{BOB, faults_config, serve};
    use mcp_guard_proto::v1 as pb;
    use rmcp::{
        ServiceExt,
        model::CallToolRequestParams,
        transport::{
            StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
        },
    };

    let s = serve(&faults_config(""), &["--allowed-callers", "alice", "--discovery-callers", "b*"]);
    let mut c = s.client().await;

    // bob (discovery only): ListTools and DescribeTools work.
    let listed = c.list_tools(authed(pb::ListToolsRequest {}, BOB)).await.unwrap().into_inner();
    assert!(listed.tools.iter().any(|t| t.name == "echo"), "{listed:?}");
    assert_eq!(listed.servers.first().map(|s| s.name.as_str()), Some("faults"), "{listed:?}");
    let described =
        c.describe_tools(authed(pb::DescribeToolsRequest::default(), BOB)).await.unwrap().into_inner();
    assert_eq!(described.tools.len(), listed.tools.len());

    // ... and Execute / ExecuteStream are refused with a clear message.
    let e = c.execute(authed(code("return 1"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("`bob` is a discovery caller"), "{e:?}");
    let e = c.execute_stream(authed(code("return 1"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // alice (allowed): both.
    assert_eq!(completed(&c.execute(authed(code("return 7"), ALICE)).await.unwrap().into_inner()), 7);
    let listed = c.list_tools(authed(pb::ListToolsRequest {}, ALICE)).await.unwrap().into_inner();
    assert!(!listed.tools.is_empty());

    // The MCP door: bob may search, but execute_code is refused as permission_denied.
    let transport = |token: &str| {
        StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(s.mcp.clone()).auth_header(token),
        )
    };
    let bob = ().serve(transport(BOB)).await.unwrap();
    let args = |v: Value| v.as_object().cloned().unwrap();
    let r = bob
        .call_tool(CallToolRequestParams::new("search_tools").with_arguments(args(json!({"query": "echo"}))))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let r = bob
        .call_tool(
            CallToolRequestParams::new("execute_code").with_arguments(args(json!({"code": "return 1"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let structured = r.structured_content.unwrap();
    assert_eq!(structured["error"], "permission_denied", "{structured}");
    assert!(structured["message"].as_str().unwrap().contains("discovery caller"), "{structured}");
    let alice = ().serve(transport(ALICE)).await.unwrap();
    let r = alice
        .call_tool(
            CallToolRequestParams::new("execute_code").with_arguments(args(json!({"code": "return 1"}))),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
}

/// An MCP `initialize` POST with `token` (the MCP door authenticates every request).
async fn mcp_post(s: &Serve, token: &str) -> reqwest::StatusCode {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    reqwest::Client::new()
        .post(&s.mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap()
        .status()
}

/// Hundreds of distinct bad (JWT-shaped) tokens from one peer, fired concurrently, cost the API server a
/// handful of TokenReviews, not one each: past the per-peer budget the executor answers
/// RESOURCE_EXHAUSTED itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_do_not_amplify_into_token_reviews() {
    let (s, calls, _dir) = serve_with_token_review().await;
    let c = s.client().await;
    let started = std::time::Instant::now();
    let results = futures::future::join_all((0..400).map(|i| {
        let mut c = c.clone();
        async move { c.execute(authed(code("return 1"), &bad_jwt(i))).await }
    }))
    .await;
    let elapsed = started.elapsed();
    let reviews = calls.load(Ordering::SeqCst);
    let mut limited = 0;
    for r in results {
        let e = r.unwrap_err();
        assert!(matches!(e.code(), Code::Unauthenticated | Code::ResourceExhausted), "{e:?}");
        limited += usize::from(e.code() == Code::ResourceExhausted);
    }
    // Burst 20, refill 2/s: allow for the time the storm took.
    let budget = 20 + 2 * elapsed.as_secs() as usize + 4;
    assert!(reviews <= budget, "400 bad tokens cost {reviews} TokenReviews in {elapsed:?} (budget {budget})");
    assert!(limited >= 300, "only {limited} of 400 were limited");

    // The MCP door shares the limiter and the caches.
    let before = calls.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for i in 1000..1100 {
        let status = mcp_post(&s, &bad_jwt(i)).await;
        assert!(status == 401 || status == 429, "{status}");
    }
    let elapsed = started.elapsed();
    let reviews = calls.load(Ordering::SeqCst) - before;
    let budget = 20 + 2 * elapsed.as_secs() as usize + 4;
    assert!(reviews <= budget, "100 bad tokens on the MCP door cost {reviews} TokenReviews in {elapsed:?}");
}

/// A refused token is remembered (by its digest) for a while: sending it again, on either door, does not
/// ask the API server again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_bad_token_is_reviewed_once() {
    let (s, calls, _dir) = serve_with_token_review().await;
    let mut c = s.client().await;
    for token in [SA_FORGED, SA_OTHER_AUDIENCE] {
        let before = calls.load(Ordering::SeqCst);
        for _ in 0..15 {
            let e = c.execute(authed(code("return 1"), token)).await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
            assert_eq!(mcp_post(&s, token).await, 401);
        }
        assert_eq!(calls.load(Ordering::SeqCst) - before, 1, "30 tries of one bad token");
    }
    // The wrong-audience message survives the cache.
    let e = c.execute(authed(code("return 1"), SA_OTHER_AUDIENCE)).await.unwrap_err();
    assert!(e.message().contains("audience"), "{e:?}");
    // A good token is still reviewed (once) and let in.
    assert_eq!(completed(&c.execute(authed(code("return 3"), SA_BOT)).await.unwrap().into_inner()), 3);
}

/// Tokens that are not JWT-shaped (three base64url segments, at most 8 KiB) are refused without a
/// TokenReview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_jwt_tokens_never_reach_the_api_server() {
    let (s, calls, _dir) = serve_with_token_review().await;
    let mut c = s.client().await;
    let long = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", "A".repeat(9000));
    let tokens = [
        "forged-token",
        "a.b",
        "a.b.c.d",
        "a..c",
        ".b.c",
        "a.b.",
        "a.b.c=",
        "a+b.c.d/e",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2ln with-a-space",
        long.as_str(),
    ];
    for token in tokens {
        let e = c.execute(authed(code("return 1"), token)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:.40}: {e:?}");
        assert_eq!(mcp_post(&s, token).await, 401, "{token:.40}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a non-JWT token reached the API server");
}

/// The failure budget is per peer: a peer that exhausts it is answered RESOURCE_EXHAUSTED, while a good
/// token from another peer still works, and another peer's bad token is still reviewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_limit_is_per_peer() {
    let (s, calls, _dir) = serve_with_token_review().await;
    let mut attacker = client_from(&s, "127.0.0.2").await;
    let mut limited = None;
    for i in 0..200 {
        match attacker.execute(authed(code("return 1"), &bad_jwt(i))).await.unwrap_err().code() {
            Code::Unauthenticated => {}
            Code::ResourceExhausted => {
                limited = Some(i);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let limited = limited.expect("200 failures from one peer were never limited");
    assert!((10..=40).contains(&limited), "limited after {limited} failures");
    // Once limited, the peer's further tries (at once) are answered without the API server, bar the
    // budget's refill.
    let reviews = calls.load(Ordering::SeqCst);
    let results = futures::future::join_all((5000..5020).map(|i| {
        let mut c = attacker.clone();
        async move { c.execute(authed(code("return 1"), &bad_jwt(i))).await.unwrap_err().code() }
    }))
    .await;
    let limited = results.iter().filter(|c| **c == Code::ResourceExhausted).count();
    assert!(limited >= 18, "{results:?}");
    assert!(calls.load(Ordering::SeqCst) - reviews <= 2, "a limited peer reached the API server");
    let reviews = calls.load(Ordering::SeqCst);

    // Another peer with a good (not yet cached) token gets in.
    let mut good = client_from(&s, "127.0.0.3").await;
    assert_eq!(completed(&good.execute(authed(code("return 4"), SA_BOT)).await.unwrap().into_inner()), 4);
    // Another peer with a bad token is reviewed and refused as usual, not limited.
    let mut other = client_from(&s, "127.0.0.4").await;
    let e = other.execute(authed(code("return 1"), &bad_jwt(6000))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert_eq!(calls.load(Ordering::SeqCst), reviews + 2);
    // A token already verified costs the API server nothing, so even the limited peer may use it.
    assert_eq!(completed(&attacker.execute(authed(code("return 5"), SA_BOT)).await.unwrap().into_inner()), 5);
}

/// The config file's `callers` (how the operator passes a policy's callers, one identity per entry) work
/// like the flags: alice may execute, bob may only discover, and a flag adds to the file's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_from_the_config_file_are_enforced() {
    use api_support::{BOB, serve};
    use mcp_guard_proto::v1 as pb;

    let config = "callers:\n  execute: [alice]\n  discover: [b*]\n";
    let s = serve(config, &[]);
    let mut c = s.client().await;
    assert_eq!(completed(&c.execute(authed(code("return 7"), ALICE)).await.unwrap().into_inner()), 7);
    let e = c.execute(authed(code("return 1"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("`bob` is a discovery caller"), "{e:?}");
    c.list_tools(authed(pb::ListToolsRequest {}, BOB)).await.unwrap();

    // Without any list in the file, the flag alone decides: bob is not on it.
    let s = serve("callers:\n  discover: [nobody]\n", &["--allowed-callers", "alice"]);
    let mut c = s.client().await;
    let e = c.execute(authed(code("return 1"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(completed(&c.execute(authed(code("return 2"), ALICE)).await.unwrap().into_inner()), 2);
}
