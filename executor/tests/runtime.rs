//! Layer 2 on its own: the isolate holds even when validation is skipped entirely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use mcp_guard_crds::LimitKind;
use serde_json::json;
use std::sync::Arc;

async fn value(body: &str) -> serde_json::Value {
    completed(&run_unvalidated(body, &fast_limits()).await).clone()
}

#[tokio::test]
async fn code_generation_is_unavailable_by_every_route() {
    // Each attempt must throw; the code reports which ones did.
    let attempts = [
        "eval('1')",
        "globalThis.eval('1')",
        "globalThis['ev' + 'al']('1')",
        "Function('return 1')()",
        "new Function('return 1')()",
        "(function(){}).constructor('return 1')()",
        "(async function(){}).constructor('return 1')()",
        "(function*(){}).constructor('return 1')().next()",
        "(async function*(){}).constructor('return 1')()",
        "(async () => {}).constructor('return 1')()",
        "[].map.constructor('return 1')()",
        "({}).constructor.constructor('return 1')()",
        "Object.getPrototypeOf(async function(){}).constructor('return 1')()",
        "Reflect.construct(Function, ['return 1'])()",
        "Reflect.getPrototypeOf(function(){}).constructor('return 1')()",
        "Object.getOwnPropertyDescriptor(Function.prototype, 'constructor').value('return 1')()",
        "setTimeout('globalThis.pwned = 1', 0)",
        "setInterval('globalThis.pwned = 1', 0)",
    ];
    let mut body = String::from("const results = [];\n");
    for a in attempts {
        body.push_str(&format!(
            "try {{ const r = {a}; results.push(['ran', {a:?}, String(r)]); }} catch (e) {{ results.push(['blocked', {a:?}, e.name]); }}\n"
        ));
    }
    body.push_str("await new Promise(r => setTimeout(r, 5)); results.push(['pwned', String(globalThis.pwned)]); return results;");
    let results = value(&body).await;
    for r in results.as_array().unwrap() {
        assert_ne!(r[0], "ran", "code generation succeeded: {r}");
    }
    assert_eq!(results.as_array().unwrap().last().unwrap(), &json!(["pwned", "undefined"]));
}

#[tokio::test]
async fn dangerous_globals_do_not_exist() {
    let names = [
        "eval",
        "process",
        "require",
        "module",
        "exports",
        "Deno",
        "Bun",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "WebAssembly",
        "SharedArrayBuffer",
        "Atomics",
        "importScripts",
        "__dirname",
        "__filename",
        "std",
        "os",
        "Buffer",
        "navigator",
        "location",
        "caches",
    ];
    let list = serde_json::to_string(&names).unwrap();
    let found = value(&format!("return {list}.filter(n => typeof globalThis[n] !== 'undefined');")).await;
    assert_eq!(found, json!([]));
    // `crypto` is the web built-in's two random functions and nothing else: no `subtle`, no keys.
    let crypto = value(
        "return [Reflect.ownKeys(crypto).map(String).sort(), typeof crypto.subtle, Object.isFrozen(crypto)];",
    )
    .await;
    assert_eq!(crypto, json!([["getRandomValues", "randomUUID"], "undefined", true]));
}

#[tokio::test]
async fn no_network_or_filesystem_api_exists() {
    let r = value(
        "const out = [];
         for (const f of [() => fetch('http://169.254.169.254/latest/meta-data/'), () => require('fs'),
                          () => process.env, () => Deno.readTextFile('/etc/passwd'), () => import('fs')]) {
           try { await f(); out.push('ran'); } catch (e) { out.push(e.name); }
         }
         return out;",
    )
    .await;
    assert!(r.as_array().unwrap().iter().all(|v| v != "ran"), "{r}");
}

#[tokio::test]
async fn interrupts_cannot_be_caught() {
    let outcome =
        run_unvalidated("while (true) { try { while (true) {} } catch (e) {} }", &fast_limits()).await;
    assert_eq!(limit(&outcome), LimitKind::CpuTime);
    let outcome = run_unvalidated(
        "const f = () => { try { for(;;){} } finally { f(); } }; try { f() } catch (e) {} return 1",
        &fast_limits(),
    )
    .await;
    assert!(matches!(limit(&outcome), LimitKind::CpuTime | LimitKind::Stack), "{outcome:?}");
}

#[tokio::test]
async fn memory_errors_cannot_be_swallowed() {
    let outcome = run_unvalidated(
        "let keep = []; for (let i = 0; i < 1e6; i++) { try { keep.push(new Array(1e5).fill(i)); } catch (e) {} } return 'survived';",
        &fast_limits(),
    )
    .await;
    assert_eq!(limit(&outcome), LimitKind::Memory);
}

/// The thread engine starts a thread for every execution that waits, even when a burst arrives while
/// one thread is idle: eight executions that each wait in a tool call for all eight to be there (a
/// rendezvous) complete. With too few threads the first would hold the only one and the others would
/// never reach the tool: the rendezvous would fail after its 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_waiting_executions_each_gets_a_thread() {
    const N: usize = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let host = test_host().tool("demo", "rendezvous", move |_| {
        let barrier = barrier.clone();
        async move {
            match tokio::time::timeout(std::time::Duration::from_secs(20), barrier.wait()).await {
                Ok(_) => Ok(json!("met")),
                Err(_) => Err(mcp_guard_sandbox::host::ToolError::new("not everyone came")),
            }
        }
    });
    let engine = mcp_guard_sandbox::engine::quickjs::QuickJsEngine::new(64);
    let mut limits = fast_limits();
    limits.wall_time = mcp_guard_crds::DurationSpec::secs(30);
    // One execution first, so that the pool has one idle thread when the burst arrives.
    let warm = run_on_host(&engine, &host, "return 1", &limits).await;
    assert_eq!(completed(&warm), &json!(1));
    let burst = (0..N).map(|_| run_on_host(&engine, &host, "return await mcp.demo.rendezvous({})", &limits));
    for outcome in futures::future::join_all(burst).await {
        assert_eq!(completed(&outcome), &json!("met"));
    }
}
