//! The binding proxy over TCP, the way it runs in Kubernetes (pods of its own): every request must carry
//! the policy executor's own service-account token for the proxy's audience (checked with TokenReview
//! against a fake API server run in the test); callers' tokens are reviewed by the proxy for the
//! policy's audience (`ReviewCaller`, `BeginExecution.caller_token`), so the executor needs no access to
//! the API server; and N replicas share the rate limits so that together they never allow more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::{
    io::Read,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use api_support::{Serve, TempDir, authed, code, completed, test_server_bin, try_serve};
use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
use mcp_guard_proto::internal::{self as ipb, binding_proxy_client::BindingProxyClient, tool_failure::Kind};
use serde_json::{Value, json};
use tonic::{Code, transport::Channel};

/// The proxy's own service-account token, for calling TokenReview.
const OWN_TOKEN: &str = "proxy-own-service-account-token";
/// The audience of this policy's executor token for its proxy, and another policy's.
const PROXY_AUD: &str = "mcpguard.io/proxy/agents/policy-a";
const OTHER_PROXY_AUD: &str = "mcpguard.io/proxy/agents/policy-b";
/// The policy's caller audience.
const CALLER_AUD: &str = "mcpguard.io/policy/agents/policy-a";

const EXECUTOR_ID: &str = "system:serviceaccount:mcp-guard:policy-a-executor";
const ALICE_ID: &str = "system:serviceaccount:agents:alice";
const BOB_ID: &str = "system:serviceaccount:agents:bob";
const CAROL_ID: &str = "system:serviceaccount:agents:carol";

// Service-account tokens are JWT-shaped (three base64url segments); each is distinct.
/// This policy's executor, for the proxy's audience.
const EXEC: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJleGVjLWEifQ.c2lnLWV4ZWMtYQ";
/// Another policy's executor: another audience and another account.
const OTHER_EXEC: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJleGVjLWIifQ.c2lnLWV4ZWMtYg";
/// A token valid for the proxy's audience that names another service account.
const INTRUDER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJpbnRydWRlciJ9.c2lnLWludHJ1ZGVy";
/// Callers, for the caller audience: alice may execute, bob is on no list, carol may only discover.
const ALICE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnLWFsaWNl";
const BOB: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnLWJvYg";
const CAROL: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.c2lnLWNhcm9s";
/// Known to nobody.
const FORGED: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.Zm9yZ2Vk";

/// Tokens the fake API server knows: token -> (user, audiences it was issued for).
fn known(token: &str) -> Option<(&'static str, &'static [&'static str])> {
    match token {
        EXEC => Some((EXECUTOR_ID, &[PROXY_AUD])),
        OTHER_EXEC => Some(("system:serviceaccount:mcp-guard:policy-b-executor", &[OTHER_PROXY_AUD])),
        INTRUDER => Some(("system:serviceaccount:mcp-guard:intruder", &[PROXY_AUD])),
        ALICE => Some((ALICE_ID, &[CALLER_AUD])),
        BOB => Some((BOB_ID, &[CALLER_AUD])),
        CAROL => Some((CAROL_ID, &[CALLER_AUD])),
        _ => None,
    }
}

/// Every TokenReview the fake API server answered: (audiences asked for, token).
type Reviews = Arc<Mutex<Vec<(Vec<String>, String)>>>;

async fn token_review(
    State(reviews): State<Reviews>,
    headers: HeaderMap,
    Json(review): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {OWN_TOKEN}")) {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({"kind": "Status", "code": 401})));
    }
    let token = review["spec"]["token"].as_str().unwrap_or_default().to_string();
    let wanted: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    reviews.lock().unwrap().push((wanted.clone(), token.clone()));
    let status = match known(&token) {
        Some((user, audiences)) => {
            let both: Vec<&str> =
                wanted.iter().map(String::as_str).filter(|a| audiences.contains(a)).collect();
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

/// The fake API server: its URL, the reviews it answered, and a directory with the proxy's own token
/// (`own-token`) and the executor's token for the proxy (`executor-token`).
struct Api {
    url: String,
    reviews: Reviews,
    dir: TempDir,
}

impl Api {
    async fn start() -> Api {
        let reviews: Reviews = Arc::default();
        let app = Router::new()
            .route("/apis/authentication.k8s.io/v1/tokenreviews", post(token_review))
            .with_state(reviews.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = TempDir::new("proxy-remote");
        std::fs::write(dir.path().join("own-token"), OWN_TOKEN).unwrap();
        std::fs::write(dir.path().join("executor-token"), format!("{EXEC}\n")).unwrap();
        Api { url, reviews, dir }
    }

    fn own_token(&self) -> PathBuf {
        self.dir.path().join("own-token")
    }

    fn executor_token(&self) -> PathBuf {
        self.dir.path().join("executor-token")
    }

    /// How many reviews asked for `audience`.
    fn reviews_for(&self, audience: &str) -> usize {
        self.reviews.lock().unwrap().iter().filter(|(a, _)| a.iter().any(|x| x == audience)).count()
    }

    /// How many reviews of `token` (for any audience).
    fn reviews_of(&self, token: &str) -> usize {
        self.reviews.lock().unwrap().iter().filter(|(_, t)| t == token).count()
    }
}

/// A running `mcp-guard proxy --listen`; killed on drop.
struct Proxy {
    child: Child,
    addr: String,
    stderr: PathBuf,
    _dir: TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            let tail = &text[text.len().saturating_sub(4000)..];
            eprintln!("--- mcp-guard proxy {} stderr (tail) ---\n{tail}", self.addr);
        }
    }
}

impl Proxy {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plain client (no credentials of its own: each request gets its metadata by hand).
    async fn client(&self) -> BindingProxyClient<Channel> {
        BindingProxyClient::new(Channel::from_shared(self.url()).unwrap().connect().await.unwrap())
    }
}

/// YAML binding the fault-injection server (stdio) as `faults`, with `extra` appended at top level and
/// `binding_extra` inside `binding:`.
fn config(extra: &str, binding_extra: &str) -> String {
    format!(
        "servers:\n  - name: faults\n    command: {}\n    args: [stdio]\nbinding:\n  audit: {{ path: \"-\" }}\n{binding_extra}{extra}",
        test_server_bin().display()
    )
}

/// The config of the policy's callers: alice executes, carol discovers, bob is on no list.
const CALLERS: &str = "callers:\n  execute: [\"system:serviceaccount:agents:alice\"]\n  discover: [\"system:serviceaccount:agents:carol\"]\n";

/// The address in a `... serving over TCP ... listen=127.0.0.1:PORT` line (colours or not).
fn announced_addr(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains("serving over TCP"))?;
    let at = line.find("127.0.0.1:")?;
    let port: String = line[at + "127.0.0.1:".len()..].chars().take_while(char::is_ascii_digit).collect();
    (!port.is_empty()).then(|| format!("127.0.0.1:{port}"))
}

/// Start `mcp-guard proxy --listen 127.0.0.1:0` with `config` against the fake API server; `extra` are
/// added. `Err` with the exit status and stderr when it exits instead of serving. Ready once it answers
/// a ListTools with the executor's token.
async fn try_proxy(api: &Api, config: &str, extra: &[&str]) -> Result<Proxy, (Option<ExitStatus>, String)> {
    let dir = TempDir::new("proxy");
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .arg("proxy")
        .arg("--config")
        .arg(&config_path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--executor-audience",
            PROXY_AUD,
            "--executor-identity",
            EXECUTOR_ID,
        ])
        .args(["--token-review-url", &api.url, "--token-review-token-file"])
        .arg(api.own_token())
        .args(extra)
        .env("RUST_LOG", "info,rmcp=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err((Some(status), std::fs::read_to_string(&stderr).unwrap_or_default()));
        }
        if let Some(addr) = announced_addr(&std::fs::read_to_string(&stderr).unwrap_or_default()) {
            break addr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err((child.wait().ok(), std::fs::read_to_string(&stderr).unwrap_or_default()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let proxy = Proxy { child, addr, stderr, _dir: dir };
    // Serving starts once the upstreams are connected: wait for an answer.
    let mut client = proxy.client().await;
    let listed = tokio::time::timeout(
        Duration::from_secs(60),
        client.list_tools(authed(ipb::ListToolsRequest {}, EXEC)),
    )
    .await
    .expect("the proxy did not answer within 60 s")
    .expect("the executor's own token is refused");
    assert!(listed.into_inner().servers.iter().any(|s| s.name == "faults"));
    Ok(proxy)
}

async fn proxy(api: &Api, config: &str, extra: &[&str]) -> Proxy {
    match try_proxy(api, config, extra).await {
        Ok(p) => p,
        Err((status, stderr)) => panic!("mcp-guard proxy did not start ({status:?}):\n{stderr}"),
    }
}

fn begin(id: &str, caller: &str, caller_token: &str) -> ipb::BeginExecutionRequest {
    ipb::BeginExecutionRequest {
        execution_id: id.into(),
        caller: caller.into(),
        code_sha256: "0".repeat(64),
        caller_token: caller_token.into(),
        ..Default::default()
    }
}

fn echo(id: &str, text: &str) -> ipb::CallToolRequest {
    ipb::CallToolRequest {
        execution_id: id.into(),
        server: "faults".into(),
        tool: "echo".into(),
        arguments_json: json!({ "text": text }).to_string(),
        ..Default::default()
    }
}

fn end(id: &str) -> ipb::EndExecutionRequest {
    ipb::EndExecutionRequest {
        execution_id: id.into(),
        outcome: "completed".into(),
        limit: String::new(),
        wall_ms: 1.0,
        cpu_ms: 1.0,
        ..Default::default()
    }
}

/// a. Over TCP only this policy's executor gets in: no token, another policy's executor, a caller's
/// token, a token for the proxy's audience naming another account and garbage are refused on every
/// RPC; the executor's token works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_policys_executor_may_talk_to_the_proxy() {
    let api = Api::start().await;
    let p = proxy(&api, &config(CALLERS, ""), &["--caller-audience", CALLER_AUD]).await;
    let mut c = p.client().await;

    // No token at all, on each RPC.
    let e = c.list_tools(ipb::ListToolsRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no token: {e:?}");
    let e = c.begin_execution(begin("x", ALICE_ID, ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no token: {e:?}");
    let e = c.call_tool(echo("x", "hi")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no token: {e:?}");
    let e = c.end_execution(end("x")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no token: {e:?}");
    let e = c
        .review_caller(ipb::ReviewCallerRequest { token: ALICE.into(), peer: String::new() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no token: {e:?}");

    // Another policy's executor (another audience, another account).
    let e = c.list_tools(authed(ipb::ListToolsRequest {}, OTHER_EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "another policy's executor: {e:?}");
    // A caller's token (valid, but for the caller audience) presented as the executor's.
    let e = c.list_tools(authed(ipb::ListToolsRequest {}, ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "a caller's token as the executor's: {e:?}");
    let e = c.begin_execution(authed(begin("y", ALICE_ID, ALICE), ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "a caller opening an execution itself: {e:?}");
    // Valid for the proxy's audience, but another service account.
    let e = c.list_tools(authed(ipb::ListToolsRequest {}, INTRUDER)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "another account with the right audience: {e:?}");
    let e = c.call_tool(authed(echo("x", "hi"), INTRUDER)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Forged, non-JWT, and not a bearer at all.
    let e = c.list_tools(authed(ipb::ListToolsRequest {}, FORGED)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "forged: {e:?}");
    let e = c.list_tools(authed(ipb::ListToolsRequest {}, "not-a-jwt")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "non-JWT: {e:?}");
    let mut basic = tonic::Request::new(ipb::ListToolsRequest {});
    basic.metadata_mut().insert("authorization", format!("Basic {EXEC}").parse().unwrap());
    let e = c.list_tools(basic).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "not a bearer: {e:?}");

    // The executor's token: ListTools works and names the bound tools.
    let listed = c.list_tools(authed(ipb::ListToolsRequest {}, EXEC)).await.unwrap().into_inner();
    let faults = listed.servers.iter().find(|s| s.name == "faults").expect("faults is bound");
    assert!(faults.connected, "{faults:?}");
    assert!(faults.tools.iter().any(|t| t.name == "echo"), "{faults:?}");

    // The proxy asked for its own audience only when reviewing executor tokens, never the caller one.
    let reviews = api.reviews.lock().unwrap().clone();
    for (audiences, token) in &reviews {
        assert_eq!(
            audiences,
            &vec![PROXY_AUD.to_string()],
            "an executor credential reviewed as: {audiences:?}"
        );
        assert_ne!(token, "not-a-jwt", "a non-JWT token reached the API server");
    }
    assert!(api.reviews_of(EXEC) >= 1);
}

/// b. ReviewCaller: a good caller token names the caller; a bad one is UNAUTHENTICATED; a caller on no
/// list is PERMISSION_DENIED; a discovery caller is named discovery-only; an executor token is not a
/// caller token. Without --caller-audience the proxy reviews no callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_caller_names_allowed_callers_only() {
    let api = Api::start().await;
    let p = proxy(&api, &config(CALLERS, ""), &["--caller-audience", CALLER_AUD]).await;
    let mut c = p.client().await;
    let review = |token: &str, peer: &str| {
        authed(ipb::ReviewCallerRequest { token: token.into(), peer: peer.into() }, EXEC)
    };

    let r = c.review_caller(review(ALICE, "10.0.0.7")).await.unwrap().into_inner();
    assert_eq!(r.caller, ALICE_ID);
    assert!(!r.discovery_only);
    assert_eq!(api.reviews_for(CALLER_AUD), 1, "alice was reviewed for the caller audience");

    let e = c.review_caller(review(FORGED, "10.0.0.7")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "forged: {e:?}");
    let e = c.review_caller(review("", "10.0.0.7")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "empty: {e:?}");
    // The executor's own token (another audience) is no caller token.
    let e = c.review_caller(review(EXEC, "10.0.0.7")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "the executor's token as a caller's: {e:?}");
    let e = c.review_caller(review(BOB, "10.0.0.7")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "bob is on no list: {e:?}");
    assert!(e.message().contains(BOB_ID), "{e:?}");
    let r = c.review_caller(review(CAROL, "10.0.0.7")).await.unwrap().into_inner();
    assert_eq!((r.caller.as_str(), r.discovery_only), (CAROL_ID, true));

    // ReviewCaller itself needs the executor's token.
    let e = c
        .review_caller(authed(ipb::ReviewCallerRequest { token: ALICE.into(), peer: String::new() }, ALICE))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // A proxy without --caller-audience reviews no callers.
    let plain = proxy(&api, &config(CALLERS, ""), &[]).await;
    let mut c = plain.client().await;
    let e = c.review_caller(review(ALICE, "")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
}

/// c. BeginExecution on a proxy that reviews callers: the token must name exactly the claimed caller,
/// one that may execute; then CallTool and EndExecution work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_execution_needs_the_callers_own_token() {
    let api = Api::start().await;
    let p = proxy(&api, &config(CALLERS, ""), &["--caller-audience", CALLER_AUD]).await;
    let mut c = p.client().await;

    let e = c.begin_execution(authed(begin("e1", ALICE_ID, ""), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "no caller_token: {e:?}");
    let e = c.begin_execution(authed(begin("e1", ALICE_ID, "   "), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "blank caller_token: {e:?}");
    let e = c.begin_execution(authed(begin("e1", BOB_ID, ALICE), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "alice's token for bob: {e:?}");
    let e = c.begin_execution(authed(begin("e1", "alice", ALICE), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "alice's token for a near name: {e:?}");
    let e = c.begin_execution(authed(begin("e1", BOB_ID, BOB), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "bob is on no list, even with his own token: {e:?}");
    let e = c.begin_execution(authed(begin("e1", CAROL_ID, CAROL), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "carol may only discover: {e:?}");
    let e = c.begin_execution(authed(begin("e1", ALICE_ID, FORGED), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "forged caller token: {e:?}");
    let e = c.begin_execution(authed(begin("e1", EXECUTOR_ID, EXEC), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "the executor's token as a caller's: {e:?}");

    // None of those opened e1.
    let r = c.call_tool(authed(echo("e1", "too early"), EXEC)).await.unwrap().into_inner();
    match r.result {
        Some(ipb::call_tool_response::Result::Failure(f)) => {
            assert_eq!(f.kind(), Kind::UnknownExecution, "{f:?}")
        }
        other => panic!("a refused BeginExecution opened the execution: {other:?}"),
    }

    // alice's token for alice.
    c.begin_execution(authed(begin("e1", ALICE_ID, ALICE), EXEC)).await.unwrap();
    let r = c.call_tool(authed(echo("e1", "through tcp"), EXEC)).await.unwrap().into_inner();
    match r.result {
        Some(ipb::call_tool_response::Result::ValueJson(v)) => {
            assert_eq!(serde_json::from_str::<Value>(&v).unwrap(), json!("through tcp"))
        }
        other => panic!("expected the echo: {other:?}"),
    }
    // A tool call of an open execution still needs the executor's credential.
    let e = c.call_tool(authed(echo("e1", "x"), ALICE)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    c.end_execution(authed(end("e1"), EXEC)).await.unwrap();
    let r = c.call_tool(authed(echo("e1", "after the end"), EXEC)).await.unwrap().into_inner();
    match r.result {
        Some(ipb::call_tool_response::Result::Failure(f)) => assert_eq!(f.kind(), Kind::UnknownExecution),
        other => panic!("a closed execution took a call: {other:?}"),
    }
}

/// Start `mcp-guard serve` using the TCP proxy `p`, reviewing callers through it (no --token-review-url,
/// so the executor cannot ask the API server itself). Its own config has no `callers`: the proxy's
/// decide.
fn serve_via(p: &Proxy, api: &Api, executor_config: &str) -> Serve {
    let token = api.executor_token();
    try_serve(
        executor_config,
        &[
            "--proxy-url",
            &p.url(),
            "--proxy-token-file",
            token.to_str().unwrap(),
            "--caller-review-via-proxy",
        ],
        false,
    )
    .unwrap_or_else(|(status, stderr)| panic!("mcp-guard serve did not start ({status:?}):\n{stderr}"))
}

/// d. End to end: `serve --proxy-url --caller-review-via-proxy` runs alice's code against the tool
/// behind the TCP proxy; a bad token is UNAUTHENTICATED, a caller on no list PERMISSION_DENIED; the
/// API server was asked by the proxy only (for the proxy audience and the caller audience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_code_through_a_remote_proxy_that_reviews_callers() {
    let api = Api::start().await;
    let p = proxy(&api, &config(CALLERS, ""), &["--caller-audience", CALLER_AUD]).await;
    let s = serve_via(&p, &api, "limits:\n  wallTime: 20s\n");
    let mut c = s.client().await;

    let r = c
        .execute(authed(code("return await mcp.faults.echo({ text: 'hello from the remote proxy' })"), ALICE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed(&r), json!("hello from the remote proxy"));
    let r = c
        .execute(authed(code("return await mcp.faults.add({ a: 2, b: 40 })"), ALICE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed(&r)["sum"].as_f64(), Some(42.0), "{r:?}");

    let e = c.execute(authed(code("return 1"), FORGED)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "forged: {e:?}");
    // The executor's own token for the proxy is no caller token.
    let e = c.execute(authed(code("return 1"), EXEC)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "the executor's token as a caller's: {e:?}");
    let e = c.execute(authed(code("return 1"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "bob is on no list: {e:?}");
    let e = c.execute(authed(code("return await mcp.faults.echo({ text: 'x' })"), BOB)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "bob is on no list: {e:?}");

    // Who asked the API server what: the proxy, for its own audience (the executor's token) and the
    // caller audience (alice, bob, the forged and the executor token presented as a caller's).
    let proxy_reviews = api.reviews_for(PROXY_AUD);
    let caller_reviews = api.reviews_for(CALLER_AUD);
    assert!(proxy_reviews >= 1, "the executor's token was never reviewed for the proxy audience");
    assert!(
        (3..=6).contains(&caller_reviews),
        "caller reviews for the caller audience: {caller_reviews} ({:?})",
        api.reviews.lock().unwrap()
    );
    assert_eq!(api.reviews_of(ALICE), 1, "alice's good review is cached (in the executor and the proxy)");
    for (audiences, token) in api.reviews.lock().unwrap().iter() {
        assert_eq!(audiences.len(), 1, "{audiences:?}");
        let expected = if token == EXEC && audiences[0] == PROXY_AUD { PROXY_AUD } else { CALLER_AUD };
        assert_eq!(audiences[0], expected, "{token:.30} reviewed for {audiences:?}");
    }
    assert!(!s.stderr().contains(ALICE), "a caller's token is in the executor's log");
}

/// A discovery caller reviewed through the proxy may list tools through the executor, and Execute is
/// refused as PERMISSION_DENIED, as when the executor reviews callers itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_caller_reviewed_by_the_proxy_may_not_execute() {
    use mcp_guard_proto::v1 as pb;

    let api = Api::start().await;
    let p = proxy(&api, &config(CALLERS, ""), &["--caller-audience", CALLER_AUD]).await;
    let s = serve_via(&p, &api, "limits:\n  wallTime: 20s\n");
    let mut c = s.client().await;
    // The proxy refuses to open the execution either way; the executor must not report that as the
    // proxy being unavailable.
    let listed = c.list_tools(authed(pb::ListToolsRequest {}, CAROL)).await;
    let listed = listed.expect("a discovery caller may list tools").into_inner();
    assert!(listed.tools.iter().any(|t| t.name == "echo"), "{listed:?}");
    let e = c.execute(authed(code("return 1"), CAROL)).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "a discovery-only caller reviewed through the proxy must get PERMISSION_DENIED from Execute, \
         not UNAVAILABLE: {e:?}"
    );
}

/// The executor runs with no access to the API server at all: without --caller-review-via-proxy and
/// without --token-review-url it has no way to authenticate callers and refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_remote_proxy_needs_a_way_to_authenticate_callers() {
    let api = Api::start().await;
    let p = proxy(&api, &config(CALLERS, ""), &["--caller-audience", CALLER_AUD]).await;
    let token = api.executor_token();
    let r = try_serve(
        "limits:\n  wallTime: 5s\n",
        &["--proxy-url", &p.url(), "--proxy-token-file", token.to_str().unwrap()],
        false,
    );
    let Err((status, stderr)) = r else { panic!("serve started without any caller authentication") };
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(stderr.contains("no caller authentication"), "{stderr}");
}

/// e. Two replicas of a policy's proxy, each with `--replicas 2`, never together allow more than the
/// per-caller rate limit, however the calls spread; each grants its half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_together_keep_the_per_caller_rate_limit() {
    let api = Api::start().await;
    let cfg = config("", "  rateLimits:\n    perCaller: { requests: 10, per: 1m }\n");
    let a = proxy(&api, &cfg, &["--replicas", "2"]).await;
    let b = proxy(&api, &cfg, &["--replicas", "2"]).await;
    let mut clients = [a.client().await, b.client().await];

    let mut granted = [0usize; 2];
    let mut limited = [0usize; 2];
    let started = Instant::now();
    for i in 0..40 {
        let replica = i % 2;
        let c = &mut clients[replica];
        let id = format!("rate-{i}");
        c.begin_execution(authed(begin(&id, "alice", ""), EXEC)).await.unwrap();
        let r = c.call_tool(authed(echo(&id, &format!("call {i}")), EXEC)).await.unwrap().into_inner();
        match r.result {
            Some(ipb::call_tool_response::Result::ValueJson(v)) => {
                assert_eq!(serde_json::from_str::<Value>(&v).unwrap(), json!(format!("call {i}")));
                granted[replica] += 1;
            }
            Some(ipb::call_tool_response::Result::Failure(f)) => {
                assert_eq!(f.kind(), Kind::RateLimited, "call {i} on replica {replica}: {f:?}");
                assert!(f.retry_after_ms > 0, "{f:?}");
                assert!(f.message.contains("caller alice"), "{f:?}");
                limited[replica] += 1;
            }
            None => panic!("empty response"),
        }
        c.end_execution(authed(end(&id), EXEC)).await.unwrap();
    }
    let elapsed = started.elapsed();
    // Each replica refills one call every 12 s (5 per minute): the 40 calls must fit in that window.
    assert!(elapsed < Duration::from_secs(11), "the calls took {elapsed:?}: the limiter may have refilled");
    let total: usize = granted.iter().sum();
    assert!(total <= 10, "two replicas together granted {total} calls ({granted:?}) of a limit of 10/min");
    assert!(
        total >= 10,
        "two replicas together granted only {total} calls ({granted:?}); each should grant 5"
    );
    assert_eq!(granted, [5, 5], "each replica grants its share");
    assert_eq!(limited, [15, 15]);

    // Another caller has a budget of its own.
    let id = "rate-bob";
    clients[0].begin_execution(authed(begin(id, "bob", ""), EXEC)).await.unwrap();
    let r = clients[0].call_tool(authed(echo(id, "bob"), EXEC)).await.unwrap().into_inner();
    assert!(matches!(r.result, Some(ipb::call_tool_response::Result::ValueJson(_))), "{r:?}");
}

/// e. A rate that cannot be shared by the replicas (fewer requests than replicas) is refused at start,
/// with a message that says why; `--replicas 0` is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_too_small_for_the_replicas_is_refused_at_start() {
    let api = Api::start().await;
    let cfg = config("", "  rateLimits:\n    perCaller: { requests: 2, per: 1m }\n");
    let Err((status, stderr)) = try_proxy(&api, &cfg, &["--replicas", "3"]).await else {
        panic!("a proxy with 3 replicas started with a rate of 2 requests");
    };
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(stderr.contains("binding.rateLimits.perCaller"), "{stderr}");
    assert!(stderr.contains("cannot be shared by 3"), "{stderr}");

    let cfg = config("", "  rateLimits:\n    perTool: { requests: 2, per: 1m }\n");
    let Err((_, stderr)) = try_proxy(&api, &cfg, &["--replicas", "3"]).await else {
        panic!("a proxy with 3 replicas started with a per-tool rate of 2 requests");
    };
    assert!(stderr.contains("binding.rateLimits.perTool"), "{stderr}");

    // Exactly as many requests as replicas is fine.
    let cfg = config("", "  rateLimits:\n    perCaller: { requests: 3, per: 1m }\n");
    drop(proxy(&api, &cfg, &["--replicas", "3"]).await);

    let out = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(["proxy", "--config", "/nonexistent", "--socket", "/nonexistent/s", "--replicas", "0"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let mut text = String::new();
    out.stderr.as_slice().read_to_string(&mut text).unwrap();
    assert!(text.contains("--replicas"), "{text}");
}
