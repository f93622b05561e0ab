//! `mcp-guard server-gate`, the front of servers the operator deploys: only a token of this server's
//! audience (TokenReview, against a fake API server run in the test) from an MCP Guard binding-proxy
//! account of the server's namespace passes (`EXECUTOR` below names the binding proxy that calls for an
//! executor; an executor's own account is refused); everything else is refused before the server sees it. What passes
//! reaches the server unchanged but for the identity header, streamed both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, Uri},
    routing::{any, get, post},
};
use serde_json::{Value, json};

const OWN_TOKEN: &str = "gate-own-service-account-token";
const AUDIENCE: &str = "mcpguard.io/server/team/tools";
const IDENTITY: &str = "x-mcp-guard-identity";

// JWT-shaped tokens the fake API server knows (the gate never reviews anything else).
const EXECUTOR: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtOmV4ZWMifQ.ZXhlY3V0b3I";
const EXECUTOR_API_AUDIENCE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtOmV4ZWMifQ.YXBpLWF1ZA";
const EXECUTOR_OTHER_SERVER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtOmV4ZWMifQ.b3RoZXItc2VydmVy";
const PLAIN_ACCOUNT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtOmRlZmF1bHQifQ.ZGVmYXVsdA";
const OTHER_NAMESPACE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlcjpleGVjIn0.b3RoZXItbnM";
const EXECUTOR_ACCOUNT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtOmV4ZWN1dG9yIn0.ZXhlYy1hY2NvdW50";
const FORGED: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtOmV4ZWMifQ.Zm9yZ2Vk";

fn known(token: &str) -> Option<(&'static str, &'static str)> {
    match token {
        EXECUTOR => Some(("system:serviceaccount:team:agents-binding-proxy", AUDIENCE)),
        EXECUTOR_ACCOUNT => Some(("system:serviceaccount:team:agents-mcp-guard", AUDIENCE)),
        EXECUTOR_API_AUDIENCE => {
            Some(("system:serviceaccount:team:agents-binding-proxy", "https://kubernetes.default.svc"))
        }
        EXECUTOR_OTHER_SERVER => {
            Some(("system:serviceaccount:team:agents-binding-proxy", "mcpguard.io/server/team/other"))
        }
        PLAIN_ACCOUNT => Some(("system:serviceaccount:team:default", AUDIENCE)),
        OTHER_NAMESPACE => Some(("system:serviceaccount:other:agents-binding-proxy", AUDIENCE)),
        _ => None,
    }
}

async fn token_review(
    headers: HeaderMap,
    Json(review): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {OWN_TOKEN}")) {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({"kind": "Status", "code": 401})));
    }
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Vec<&str> =
        review["spec"]["audiences"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let status = match known(token) {
        Some((user, aud)) if wanted.contains(&aud) => {
            json!({"authenticated": true, "user": {"username": user}, "audiences": [aud]})
        }
        Some(_) => {
            json!({"authenticated": false, "error": "token audiences are invalid for the target audiences"})
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    (axum::http::StatusCode::CREATED, Json(json!({"kind": "TokenReview", "status": status})))
}

/// What the server in the pod saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    gate: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

async fn echo(
    State(seen): State<Arc<Seen>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    Json(json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "authorization": h("authorization"),
        "identity": h(IDENTITY),
        "body": String::from_utf8_lossy(&body),
    }))
}

/// Two events: the second only after the test has read the first through the gate (a gate that
/// buffered whole responses would never deliver the first).
async fn stream(State(seen): State<Arc<Seen>>) -> Body {
    use futures::StreamExt;
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let wait = seen.gate.lock().unwrap().take().unwrap();
    let first =
        futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"data: first\n\n")) });
    let second = futures::stream::once(async move {
        let _ = wait.await;
        Ok(Bytes::from_static(b"data: second\n\n"))
    });
    Body::from_stream(first.chain(second))
}

struct Gate {
    child: Child,
    url: String,
    seen: Arc<Seen>,
    _dir: std::path::PathBuf,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

async fn start() -> Gate {
    let api = Router::new().route("/apis/authentication.k8s.io/v1/tokenreviews", post(token_review));
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", api_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(api_listener, api).await.unwrap() });

    let seen = Arc::new(Seen::default());
    let server = Router::new().route("/stream", get(stream)).fallback(any(echo)).with_state(seen.clone());
    let server_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", server_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(server_listener, server).await.unwrap() });

    let dir =
        std::env::temp_dir().join(format!("mcp-guard-gate-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), OWN_TOKEN).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(["server-gate", "--listen", "127.0.0.1:0", "--upstream", &upstream])
        .args(["--namespace", "team", "--server", "tools", "--token-review-url", &api_url])
        .arg("--token-review-token-file")
        .arg(dir.join("token"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let announced: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let url = format!("http://{}", announced["gate"].as_str().unwrap());
    Gate { child, url, seen, _dir: dir }
}

async fn post_with(gate: &Gate, identity: Option<&str>, authorization: Option<&str>) -> reqwest::Response {
    let mut req =
        reqwest::Client::new().post(format!("{}/mcp?session=7", gate.url)).body("{\"jsonrpc\":\"2.0\"}");
    if let Some(t) = identity {
        req = req.header(IDENTITY, t);
    }
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_executors_with_a_token_for_this_server_pass() {
    let gate = start().await;
    let refused: [(&str, Option<&str>, Option<&str>, u16); 8] = [
        ("no token", None, None, 401),
        ("the executor's token in Authorization instead", None, Some(&format!("Bearer {EXECUTOR}")), 401),
        ("a token for the API server's audience", Some(EXECUTOR_API_AUDIENCE), None, 401),
        ("a token for another server", Some(EXECUTOR_OTHER_SERVER), None, 401),
        ("a forged token", Some(FORGED), None, 401),
        ("a plain service account of the namespace", Some(PLAIN_ACCOUNT), None, 403),
        ("a binding proxy of another namespace", Some(OTHER_NAMESPACE), None, 403),
        ("an executor's own account (executors hold no server token)", Some(EXECUTOR_ACCOUNT), None, 403),
    ];
    for (what, identity, authorization, status) in refused {
        let resp = post_with(&gate, identity, authorization).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        if status == 401 {
            let challenge =
                resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(challenge.contains("mcp-guard-server-gate"), "{what}: challenge {challenge:?}");
        }
        let body = resp.text().await.unwrap();
        assert!(!body.trim().is_empty(), "{what}: the refusal says why");
    }
    assert_eq!(gate.seen.requests.load(Ordering::SeqCst), 0, "no refused request reached the server");

    // The executor's token for this server passes; the server sees its own Authorization, never the token.
    let resp = post_with(&gate, Some(EXECUTOR), Some("Bearer server-own-credential")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/mcp?session=7");
    assert_eq!(seen["authorization"], "Bearer server-own-credential");
    assert_eq!(seen["identity"], Value::Null, "the gate removes the identity token");
    assert_eq!(seen["body"], "{\"jsonrpc\":\"2.0\"}");
    assert_eq!(gate.seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stream_through_the_gate() {
    let gate = start().await;
    let (release, wait) = tokio::sync::oneshot::channel();
    *gate.seen.gate.lock().unwrap() = Some(wait);
    let mut resp = reqwest::Client::new()
        .get(format!("{}/stream", gate.url))
        .header(IDENTITY, EXECUTOR)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first event arrives while the server still holds the second")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: first\n\n");
    release.send(()).unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(10), resp.bytes()).await.unwrap().unwrap();
    assert_eq!(&rest[..], b"data: second\n\n");
}
