//! The whole pipeline (validate → isolate → outcome) on ordinary code: results, console, tool calls,
//! timers, clocks, errors, non-JSON results and the code contract.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use mcp_guard_sandbox::outcome::{ConsoleLevel, Status, ToolCallStatus};
use serde_json::json;

#[tokio::test]
async fn body_form_returns_its_value() {
    assert_eq!(completed(&run("return 1 + 1").await), &json!(2));
    assert_eq!(
        completed(&run("const x = await Promise.resolve(20); return { x, y: [x + 1] };").await),
        &json!({"x": 20, "y": [21]})
    );
    assert_eq!(completed(&run("console.log('no return')").await), &json!(null));
}

#[tokio::test]
async fn arrow_form_is_called_with_the_bindings() {
    let o = run("async (mcp) => { const r = await mcp.demo.add({ a: 2, b: 3 }); return r.sum; }").await;
    assert_eq!(completed(&o), &json!(5));
    let o = run("async () => 'no params'").await;
    assert_eq!(completed(&o), &json!("no params"));
}

#[tokio::test]
async fn typescript_types_are_stripped() {
    let code = r#"
        interface Point { x: number; y: number }
        type Pair<T> = [T, T];
        enum Color { Red = 1, Green }
        function dist(p: Point): number { return Math.sqrt(p.x * p.x + p.y * p.y); }
        const pair: Pair<number> = [1, 2];
        const p = { x: 3, y: 4 } as Point;
        return { d: dist(p!), pair, green: Color.Green };
    "#;
    assert_eq!(completed(&run(code).await), &json!({"d": 5, "pair": [1, 2], "green": 2}));
}

#[tokio::test]
async fn console_lines_keep_their_levels_and_order() {
    let o = run("console.log('a', 1, {b: 2}); console.info('i'); console.warn('w'); console.error(new TypeError('bad')); console.debug([1]);").await;
    let lines: Vec<(ConsoleLevel, &str)> = o.console.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert_eq!(
        lines,
        vec![
            (ConsoleLevel::Log, "a 1 {\"b\":2}"),
            (ConsoleLevel::Info, "i"),
            (ConsoleLevel::Warn, "w"),
            (ConsoleLevel::Error, "TypeError: bad"),
            (ConsoleLevel::Debug, "[1]"),
        ]
    );
}

#[tokio::test]
async fn console_handles_unprintable_values() {
    let o = run("const c = {}; c.self = c; console.log(c, 10n, Symbol('s'), '\\ud800'); return 1").await;
    assert_eq!(completed(&o), &json!(1));
    assert_eq!(o.console.len(), 1);
    assert!(o.console[0].message.contains("[object Object] 10 Symbol(s)"), "{:?}", o.console);
}

#[tokio::test]
async fn tool_calls_return_plain_values_and_are_recorded() {
    let o = run("const a = await mcp.demo.echo({ msg: 'hi' });
         const [b, c] = await Promise.all([mcp.demo.add({a: 1, b: 2}), mcp.my_server.get_time()]);
         return { a, b, c };")
    .await;
    assert_eq!(completed(&o), &json!({"a": {"msg": "hi"}, "b": {"sum": 3}, "c": "12:00"}));
    let calls: Vec<(&str, &str, ToolCallStatus)> =
        o.tool_calls.iter().map(|c| (c.server.as_str(), c.tool.as_str(), c.status)).collect();
    assert_eq!(
        calls,
        vec![
            ("demo", "echo", ToolCallStatus::Ok),
            ("demo", "add", ToolCallStatus::Ok),
            ("my-server", "get-time", ToolCallStatus::Ok),
        ]
    );
}

#[tokio::test]
async fn tool_errors_are_thrown_inside_the_sandbox_and_recorded() {
    let o = run(
        "try { await mcp.demo.fail({}); return 'no error'; }
         catch (e) { return { name: e.name, message: e.message, isError: e instanceof Error, server: e.server, tool: e.tool, code: e.code }; }",
    )
    .await;
    assert_eq!(
        completed(&o),
        &json!({"name": "McpToolError", "message": "the tool failed on purpose", "isError": true, "server": "demo", "tool": "fail", "code": "tool_error"})
    );
    assert_eq!(o.tool_calls[0].status, ToolCallStatus::Error);
    assert_eq!(o.tool_calls[0].error.as_deref(), Some("the tool failed on purpose"));
    assert_eq!(o.tool_calls[0].error_code.as_deref(), Some("tool_error"));
}

#[tokio::test]
async fn unknown_servers_and_tools_are_errors_inside_the_sandbox() {
    let o = run("const out = [];
         try { await mcp.nope.tool(); } catch (e) { out.push(e.message); }
         try { await mcp.demo.nope(); } catch (e) { out.push(e.message); }
         try { mcp.demo = 1; } catch (e) { out.push(e.message); }
         out.push(typeof mcp.then, typeof mcp.demo.then);
         return out;")
    .await;
    assert_eq!(
        completed(&o),
        &json!([
            "unknown MCP server 'nope'; available: demo, my_server",
            "unknown tool 'nope' on MCP server 'demo'; available: add, echo, fail, slow",
            "the mcp bindings are read-only",
            "undefined",
            "undefined"
        ])
    );
    assert!(o.tool_calls.is_empty());
}

/// Code may wrap the bindings in a Proxy of its own (to log or retry calls) and it works; no trap of any
/// kind can change them: not assignment, definition, deletion, freezing (which would make their
/// properties non-configurable) nor a new prototype.
#[tokio::test]
async fn bindings_can_be_wrapped_but_not_changed() {
    let o = run("const seen = [];
         const logged = new Proxy(mcp.demo, { get(t, p) {
           const f = t[p];
           return typeof f === 'function' ? async (...a) => { seen.push(p); return f(...a); } : f;
         } });
         const sum = await logged.add({ a: 2, b: 3 });
         const attempts = [
           () => { mcp.demo.add = () => 1; },
           () => Object.defineProperty(mcp.demo, 'add', { value: 1 }),
           () => delete mcp.demo.add,
           () => Object.freeze(mcp.demo),
           () => Object.preventExtensions(mcp),
           () => Object.setPrototypeOf(mcp.demo, {}),
           () => Reflect.defineProperty(mcp, 'demo', { value: {} }),
         ];
         const refused = attempts.map((f) => { try { f(); return 'changed'; } catch (e) { return e.message; } });
         const still = await mcp.demo.add({ a: 1, b: 1 });
         return { sum, seen, refused, still, frozen: Object.isFrozen(mcp.demo), keys: Object.keys(mcp.demo).length > 0 };")
    .await;
    let result = completed(&o);
    assert_eq!(result["seen"], json!(["add"]), "{result}");
    assert_eq!(result["refused"], json!(vec!["the mcp bindings are read-only"; 7]), "{result}");
    assert_eq!((&result["sum"], &result["still"]), (&json!({"sum": 5}), &json!({"sum": 2})), "{result}");
    assert_eq!(result["frozen"], false, "{result}");
    assert_eq!(result["keys"], true, "{result}");
}

#[tokio::test]
async fn tool_arguments_must_be_json_objects() {
    let o = run(
        "const out = [];
         for (const a of [1, 'x', [1], null, { n: 10n }]) { try { await mcp.demo.echo(a); out.push('sent'); } catch (e) { out.push(e.name); } }
         const c = {}; c.c = c;
         try { await mcp.demo.echo(c); } catch (e) { out.push(e.name); }
         return out;",
    )
    .await;
    assert_eq!(
        completed(&o),
        &json!(["TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError"])
    );
    assert!(o.tool_calls.is_empty(), "no call with bad arguments may reach the host");
}

#[tokio::test]
async fn timers_work_within_the_wall_limit() {
    let o = run(
        "const order = [];
         const t = setTimeout(() => order.push('cleared'), 5); clearTimeout(t);
         await new Promise(r => setTimeout(() => { order.push('timeout'); r(); }, 10));
         let n = 0;
         await new Promise(r => { const i = setInterval(() => { n++; if (n === 3) { clearInterval(i); r(); } }, 1); });
         order.push('interval ' + n);
         setTimeout((a, b) => order.push(a + b), 0, 'x', 'y');
         await new Promise(r => setTimeout(r, 1));
         return order;",
    )
    .await;
    assert_eq!(completed(&o), &json!(["timeout", "interval 3", "xy"]));
}

#[tokio::test]
async fn clocks_are_frozen_while_code_runs_and_advance_across_awaits() {
    let o = run(
        "const d0 = Date.now(), p0 = performance.now(), n0 = new Date().getTime();
         let x = 0; for (let i = 0; i < 3e5; i++) { x += i; }
         const d1 = Date.now(), p1 = performance.now(), n1 = new Date().getTime();
         await mcp.demo.slow({ ms: 30 });
         const d2 = Date.now();
         return { frozen: d0 === d1 && p0 === p1 && n0 === n1 && d0 === n0, advanced: d2 - d1 >= 30, isDate: new Date() instanceof Date, parse: Date.parse('2020-01-01T00:00:00Z') };",
    )
    .await;
    assert_eq!(
        completed(&o),
        &json!({"frozen": true, "advanced": true, "isDate": true, "parse": 1577836800000i64})
    );
}

#[tokio::test]
async fn non_json_results_are_clear_errors() {
    let cases = [
        ("return 10n", "BigInt"),
        ("return () => 1", "function"),
        ("return { f() {} }", "function"),
        ("const a = {}; a.a = a; return a", "circular"),
        ("return { get x() { throw new Error('getter says no'); } }", "getter says no"),
        ("return '\\ud800'", "lone surrogate"),
        ("return Symbol('s')", "symbol"),
    ];
    for (code, expected) in cases {
        let o = run(code).await;
        let (name, message) = threw(&o);
        assert_eq!(name, "TypeError", "{code}");
        assert!(message.contains(expected), "{code}: {message}");
    }
    // JSON's own conversions still apply.
    assert_eq!(
        completed(&run("return { d: new Date(0), n: NaN, u: undefined, m: new Map() }").await),
        &json!({"d": "1970-01-01T00:00:00.000Z", "n": null, "m": {}})
    );
}

#[tokio::test]
async fn thrown_errors_carry_name_message_and_a_sandbox_only_stack() {
    let code = "interface A { x: number }\nconst a: A = { x: 1 };\nfunction inner(): never {\n  throw new RangeError('deep ' + a.x);\n}\nfunction outer() { inner(); }\nouter();";
    let o = run(code).await;
    let Status::Threw { error } = &o.status else { panic!("{o:?}") };
    assert_eq!(error.name, "RangeError");
    assert_eq!(error.message, "deep 1");
    let frames: Vec<&str> = error.stack.lines().collect();
    assert!(frames[0].starts_with("    at inner (sandbox:4:"), "{}", error.stack);
    assert!(frames[1].starts_with("    at outer (sandbox:6:"), "{}", error.stack);
    assert!(
        !error.stack.contains('/') && !error.stack.contains(".rs") && !error.stack.contains("prelude"),
        "{}",
        error.stack
    );
}

#[tokio::test]
async fn non_error_throws_are_described() {
    let o = run("throw 'boom'").await;
    assert_eq!(threw(&o), ("NonError", "boom"));
    let o = run("throw { code: 7 }").await;
    assert_eq!(threw(&o), ("NonError", "{\"code\":7}"));
    let o =
        run("const e = new Error('x'); Object.defineProperty(e, 'message', { get() { throw 1 } }); throw e;")
            .await;
    assert_eq!(threw(&o).0, "Error");
}

#[tokio::test]
async fn a_promise_that_can_never_settle_is_reported() {
    let o = run("await new Promise(() => {}); return 1;").await;
    let (_, message) = threw(&o);
    assert!(message.contains("can never settle"), "{message}");
}

#[tokio::test]
async fn uncaught_errors_in_timer_callbacks_end_the_execution() {
    let o = run("setTimeout(() => { throw new SyntaxError('late') }, 1); await new Promise(r => setTimeout(r, 20)); return 'finished';").await;
    assert_eq!(threw(&o), ("SyntaxError", "late"));
}

#[tokio::test]
async fn outcome_json_has_the_documented_shape() {
    let o = run("console.log('x'); await mcp.demo.echo({}); return 1").await;
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(v["outcome"], "completed");
    assert_eq!(v["result"], 1);
    assert_eq!(v["console"], json!([{"level": "log", "message": "x"}]));
    assert_eq!(v["toolCalls"][0]["server"], "demo");
    assert_eq!(v["toolCalls"][0]["status"], "ok");
    assert!(v["metrics"]["wallMs"].as_f64().unwrap() > 0.0);
    assert!(v["metrics"]["peakHeapBytes"].as_u64().unwrap() > 0);
    let back: mcp_guard_sandbox::outcome::Outcome = serde_json::from_value(v).unwrap();
    assert_eq!(back, o);
}

#[tokio::test]
async fn a_lone_function_declaration_is_called() {
    let o = run(
        "async function main(mcp) {\n  const r = await mcp.demo.add({ a: 1, b: 2 });\n  return r.sum * 2;\n}",
    )
    .await;
    assert_eq!(completed(&o), &json!(6));
    // With a call already there, nothing changes.
    let o = run("async function main() { return 'called once'; }\nreturn await main();").await;
    assert_eq!(completed(&o), &json!("called once"));
}

#[tokio::test]
async fn discovery_from_running_code_goes_to_the_hosts_directory() {
    let host = test_host().tool("$", "search", |args| async move { Ok(json!({ "asked": args })) });
    let sandbox = mcp_guard_sandbox::sandbox::Sandbox::new(host.catalog(), std::sync::Arc::new(host));
    let o = sandbox.run("return await mcp.$search('echo')", &fast_limits()).await;
    assert_eq!(completed(&o), &json!({ "asked": { "query": "echo", "detail": "summaries" } }));
    // Listed as a call on the reserved server `$` (with its own budget, `limits.discoveryCalls`).
    assert_eq!(o.tool_calls.len(), 1);
    assert_eq!((o.tool_calls[0].server.as_str(), o.tool_calls[0].tool.as_str()), ("$", "search"));
    let o = sandbox
        .run("try { await mcp.$describe(['demo.echo']); } catch (e) { return e.name; }", &fast_limits())
        .await;
    assert_eq!(completed(&o), &json!("McpToolError"));
}

// --- Approvals and replay: what the engine guarantees ---------------------------------------------------

mod replay {
    use std::{sync::Arc, time::Duration};

    use mcp_guard_sandbox::{
        engine::ExecutionRequest,
        host::{ExecutionInfo, FailureKind, ToolError, testing::ScriptedHost},
        outcome::{Outcome, Status, ToolCallStatus},
        validator::{PositionMap, Prepared},
    };
    use serde_json::json;

    use super::common::{engine, fast_limits};

    fn host() -> ScriptedHost {
        ScriptedHost::new()
            .tool("bank", "pay", |_| async move {
                Err(ToolError::of(FailureKind::ApprovalRequired, "bank.pay needs approval"))
            })
            .tool("bank", "diverged", |_| async move {
                Err(ToolError::of(FailureKind::ReplayDiverged, "call #0 of the resumed run is bank.diverged"))
            })
            .tool("bank", "balance", |_| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(json!(42))
            })
    }

    async fn run(body: &str, seed: u64, clock_ms: u64) -> Outcome {
        let host = host();
        let script = format!("\"use strict\";\n(async function () {{\n{body}\n}})");
        engine()
            .execute(ExecutionRequest {
                code: Prepared { script, positions: PositionMap::default() }.into(),
                limits: fast_limits(),
                catalog: host.catalog(),
                host: Arc::new(host),
                execution: Arc::new(ExecutionInfo { seed, clock_ms, ..ExecutionInfo::new("test", body) }),
                events: None,
            })
            .await
    }

    #[tokio::test]
    async fn a_call_that_needs_approval_pauses_the_execution_and_the_code_cannot_catch_it() {
        let o = run(
            "try { await mcp.bank.pay({ amount: 1 }); } catch (e) { console.log('caught', e.code); return 'caught'; }\n\
             return 'went on';",
            1,
            0,
        )
        .await;
        assert!(matches!(o.status, Status::ApprovalRequired { .. }), "{o:?}");
        assert!(o.console.is_empty(), "no guest code runs after the pause: {o:?}");
    }

    #[tokio::test]
    async fn calls_in_flight_at_the_pause_finish_and_no_more_guest_code_runs() {
        let o = run(
            "const [b] = await Promise.all([mcp.bank.balance({}), mcp.bank.pay({ amount: 1 })]);\n\
             console.log('after', b); return b;",
            1,
            0,
        )
        .await;
        assert!(matches!(o.status, Status::ApprovalRequired { .. }), "{o:?}");
        assert_eq!(o.tool_calls.len(), 2, "{o:?}");
        let balance = o.tool_calls.iter().find(|c| c.tool == "balance").unwrap();
        assert_eq!(
            balance.status,
            ToolCallStatus::Ok,
            "the call in flight finished (and was recorded): {o:?}"
        );
        let pay = o.tool_calls.iter().find(|c| c.tool == "pay").unwrap();
        assert_eq!(pay.error_code.as_deref(), Some("approval_required"));
        assert!(o.console.is_empty(), "{o:?}");
    }

    #[tokio::test]
    async fn a_diverged_replay_ends_as_thrown_replay_diverged_even_when_caught() {
        let o = run(
            "try { await mcp.bank.diverged({}); } catch (e) { return 'caught'; }\nreturn 'went on';",
            1,
            0,
        )
        .await;
        match &o.status {
            Status::Threw { error } => {
                assert_eq!(error.name, "ReplayDiverged");
                assert!(error.message.contains("call #0"), "{error:?}");
            }
            other => panic!("expected threw ReplayDiverged, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn math_random_is_seeded_per_execution() {
        let draw = "const xs = []; for (let i = 0; i < 4; i++) xs.push(Math.random());\n\
                    return { xs, inRange: xs.every((x) => x >= 0 && x < 1) };";
        let a = run(draw, 42, 0).await;
        let b = run(draw, 42, 0).await;
        let c = run(draw, 43, 0).await;
        let (
            Status::Completed { result: a },
            Status::Completed { result: b },
            Status::Completed { result: c },
        ) = (&a.status, &b.status, &c.status)
        else {
            panic!("{a:?} {b:?} {c:?}");
        };
        assert_eq!(a, b, "the same seed draws the same numbers");
        assert_ne!(a["xs"], c["xs"], "another seed draws others");
        assert_eq!(a["inRange"], true);
        let xs: Vec<f64> = a["xs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(xs.windows(2).all(|w| w[0] != w[1]), "{xs:?}");
        // crypto.getRandomValues and randomUUID draw from it too (not for secrets, as documented).
        let uuid = "return crypto.randomUUID();";
        let (u1, u2) = (run(uuid, 5, 0).await, run(uuid, 5, 0).await);
        assert_eq!(u1.status, u2.status);
    }

    #[tokio::test]
    async fn the_clock_starts_at_the_executions_origin() {
        let origin = 1_500_000_000_000u64;
        let o = run("return [Date.now(), new Date().getTime()];", 1, origin).await;
        let Status::Completed { result } = &o.status else { panic!("{o:?}") };
        for t in result.as_array().unwrap() {
            let t = t.as_f64().unwrap() as u64;
            assert!((origin..origin + 5_000).contains(&t), "{t} is not near the origin {origin}");
        }
    }
}
