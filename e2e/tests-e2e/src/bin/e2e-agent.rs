//! The e2e agent: runs in a pod, calls the executor's gRPC `Execute` and prints one JSON line.
//!
//! `e2e-agent execute ENDPOINT CODE [--token-file PATH] [--timeout-secs N] [--connect-retry-secs N]
//! [--fail-on-error]`; `e2e-agent resume ENDPOINT APPROVAL_ID [same options]` resumes an execution that
//! ended as `approval_required` (its `detail` is then the approval's id).
//!
//! A refused or failed connection is retried every 500 ms for `--connect-retry-secs` (default 20), as a
//! real client would: a NetworkPolicy enforcer admits a new pod's address only once it has seen the pod,
//! which can be after the pod's first packet. The JSON line says how many attempts it took.
//!
//! Output: `{"status":"ok","outcome":"completed|rejected|threw|limit_exceeded","detail":...}` or
//! `{"status":"error","code":"<gRPC code or connect|timeout>","message":...}`. Exits 0 after printing,
//! so the test reads the result from the pod's log; with `--fail-on-error`, exits 1 when there is no
//! outcome (`"status":"error"`), so a Kubernetes Job retries in a new pod (examples/kubernetes/).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use mcp_guard_proto::v1::{self as pb, executor_client::ExecutorClient, outcome::Status as St};
use serde_json::{Value, json};

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned())
}

async fn execute(
    endpoint: String,
    code: String,
    resume: bool,
    token: Option<String>,
    timeout: Duration,
    connect_retry: Duration,
) -> Value {
    let endpoint = match tonic::transport::Endpoint::from_shared(endpoint) {
        Ok(e) => e.connect_timeout(Duration::from_secs(5)).timeout(timeout),
        Err(e) => return json!({"status": "error", "code": "bad-endpoint", "message": e.to_string()}),
    };
    let started = std::time::Instant::now();
    let mut attempts = 0u32;
    let channel = loop {
        attempts += 1;
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if started.elapsed() >= connect_retry => {
                return json!({"status": "error", "code": "connect", "message": format!("{e:?}"),
                              "connectAttempts": attempts});
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let mut client = ExecutorClient::new(channel);
    let authorization = match token.map(|t| format!("Bearer {}", t.trim()).parse()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return json!({"status": "error", "code": "bad-token", "message": ""}),
    };
    let answer = if resume {
        let mut req = tonic::Request::new(pb::ResumeRequest { approval_id: code, limits: None });
        if let Some(v) = authorization {
            req.metadata_mut().insert("authorization", v);
        }
        client.resume(req).await
    } else {
        let mut req = tonic::Request::new(pb::ExecuteRequest { code, limits: None });
        if let Some(v) = authorization {
            req.metadata_mut().insert("authorization", v);
        }
        client.execute(req).await
    };
    match answer {
        Ok(r) => {
            let o = r.into_inner().outcome.unwrap_or_default();
            let (kind, detail) = match o.status {
                Some(St::CompletedJson(j)) => ("completed", j),
                Some(St::Rejected(r)) => ("rejected", format!("{r:?}")),
                Some(St::Threw(t)) => ("threw", format!("{t:?}")),
                Some(St::LimitExceeded(l)) => ("limit_exceeded", format!("{}: {}", l.limit, l.message)),
                Some(St::ApprovalRequired(a)) => ("approval_required", a.id),
                None => ("none", String::new()),
            };
            json!({"status": "ok", "outcome": kind, "detail": detail, "toolCalls": o.tool_calls.len(),
                   "connectAttempts": attempts})
        }
        Err(s) => json!({"status": "error", "code": format!("{:?}", s.code()), "message": s.message(),
                         "connectAttempts": attempts}),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.first().map(String::as_str) {
        Some("execute" | "resume") if args.len() >= 3 => run(&args).await,
        Some("proxy-probe") if args.len() >= 2 => {
            let labelled: Vec<(String, Option<String>)> = args[2..]
                .iter()
                .map(|a| match a.split_once('=') {
                    Some((label, token)) => (label.to_string(), Some(token.to_string())),
                    None => (a.clone(), None),
                })
                .collect();
            proxy_probe(&args[1], &labelled).await
        }
        _ => {
            json!({"status": "error", "code": "usage", "message": "e2e-agent execute|resume ENDPOINT CODE|APPROVAL_ID [--token-file PATH] [--timeout-secs N] [--connect-retry-secs N] [--fail-on-error] | e2e-agent proxy-probe URL LABEL[=TOKEN]..."})
        }
    };
    println!("{out}");
    if out["status"] != "ok" && args.iter().any(|a| a == "--fail-on-error") {
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> Value {
    let token = match arg_after(args, "--token-file") {
        Some(p) => match std::fs::read_to_string(&p) {
            Ok(t) => Some(t),
            Err(e) => return json!({"status": "error", "code": "token-file", "message": e.to_string()}),
        },
        None => None,
    };
    let secs = arg_after(args, "--timeout-secs").and_then(|s| s.parse().ok()).unwrap_or(30);
    let timeout = Duration::from_secs(secs);
    let retry = arg_after(args, "--connect-retry-secs").and_then(|s| s.parse().ok()).unwrap_or(20);
    let retry = Duration::from_secs(retry);
    match tokio::time::timeout(
        retry + timeout + Duration::from_secs(10),
        execute(args[1].clone(), args[2].clone(), args[0] == "resume", token, timeout, retry),
    )
    .await
    {
        Ok(v) => v,
        Err(_) => json!({"status": "error", "code": "timeout", "message": "no answer"}),
    }
}

/// Calls the binding proxy's internal ListTools at `url` once per `(label, token)` (no token: no
/// `authorization`), the way an executor would; answers `{"status": "ok", "results": {label: code}}`
/// with `OK` or the gRPC code, or `connect-failed` when the proxy cannot be reached.
async fn proxy_probe(url: &str, probes: &[(String, Option<String>)]) -> Value {
    use mcp_guard_proto::internal::{ListToolsRequest, binding_proxy_client::BindingProxyClient};
    let endpoint = match tonic::transport::Endpoint::from_shared(url.to_string()) {
        Ok(e) => e.connect_timeout(Duration::from_secs(4)).timeout(Duration::from_secs(10)),
        Err(e) => return json!({"status": "error", "code": "bad-endpoint", "message": e.to_string()}),
    };
    let mut results = serde_json::Map::new();
    for (label, token) in probes {
        let code = match endpoint.connect().await {
            Err(_) => "connect-failed".to_string(),
            Ok(channel) => {
                let mut request = tonic::Request::new(ListToolsRequest {});
                if let Some(t) = token
                    && let Ok(v) = format!("Bearer {}", t.trim()).parse()
                {
                    request.metadata_mut().insert("authorization", v);
                }
                match BindingProxyClient::new(channel).list_tools(request).await {
                    Ok(_) => "OK".to_string(),
                    Err(s) => format!("{:?}", s.code()),
                }
            }
        };
        results.insert(label.clone(), json!(code));
    }
    json!({"status": "ok", "results": results})
}
