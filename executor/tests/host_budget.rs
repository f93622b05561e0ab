//! Work the host does for one execution stays within that execution's limits: discovery calls have a
//! budget of their own and are listed, their inputs are capped, compiling runs under the CPU/wall/memory
//! limits, and validation is linear in the input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use common::*;
use mcp_guard_crds::{DurationSpec, Limits};
use mcp_guard_sandbox::{host::discovery::DiscoveryHost, outcome::Status, sandbox::Sandbox};
use mcp_guard_tools::ToolIndex;
use serde_json::json;

/// A sandbox whose host answers `mcp.$search`/`mcp.$describe` from the test tools' directory, as the
/// servers do.
fn discovery_sandbox() -> Sandbox {
    let host = test_host();
    let catalog = host.catalog();
    let index = ToolIndex::from_catalog(&catalog);
    let host = DiscoveryHost::new(host.into_arc(), Arc::new(RwLock::new(Arc::new(index))));
    Sandbox::new(catalog, Arc::new(host))
}

/// CPU time (user + system) of this whole process so far, from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based) → indexes 11 and 12 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn limit_name(o: &mcp_guard_sandbox::outcome::Outcome) -> &'static str {
    limit(o).as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_loop_ends_at_its_own_budget() {
    let sb = discovery_sandbox();
    let limits =
        Limits { wall_time: DurationSpec::secs(10), cpu_time: DurationSpec::secs(5), ..Limits::default() };
    // The default discovery budget.
    let budget = 20;
    for code in [
        "for (let i = 0; i < 10000; i++) await mcp.$search('echo'); return 'done'",
        // Not awaited: every call is started at once.
        "const ps = []; for (let i = 0; i < 10000; i++) ps.push(mcp.$search('e', 'full').catch(() => 0)); \
         await Promise.all(ps); return 'done'",
        "for (let i = 0; i < 10000; i++) { try { await mcp.$describe(['demo.echo']); } catch {} } return 'done'",
    ] {
        let cpu = process_cpu();
        let started = Instant::now();
        let o = sb.run(code, &limits).await;
        let took = started.elapsed();
        let used = process_cpu().saturating_sub(cpu);
        println!("{code:.60}: {took:?} wall, {used:?} process CPU, outcome metrics {:?}", o.metrics);
        assert_eq!(limit_name(&o), "discovery_calls", "{code}: {:?}", o.status);
        assert!(took < Duration::from_secs(5), "{code}: took {took:?}");
        // The discovery calls the code made are listed, as calls on the reserved server `$`.
        assert_eq!(o.tool_calls.len(), budget, "{code}");
        assert!(o.tool_calls.iter().all(|c| c.server == "$" && (c.tool == "search" || c.tool == "describe")));
    }
    // A program within the budget still works, and its calls are listed.
    let o = sb
        .run(
            "const a = await mcp.$search('echo', 'names'); await mcp.$describe(['demo.echo']); return a",
            &limits,
        )
        .await;
    assert_eq!(completed(&o), &json!([{ "binding": "mcp.demo.echo", "server": "demo", "name": "echo" }]));
    let calls: Vec<_> = o.tool_calls.iter().map(|c| (c.server.as_str(), c.tool.as_str())).collect();
    assert_eq!(calls, [("$", "search"), ("$", "describe")]);
    // A zero budget refuses discovery altogether.
    let mut zero = serde_json::to_value(&limits).unwrap();
    zero["discoveryCalls"] = json!(0);
    let zero: Limits = serde_json::from_value(zero).unwrap();
    let o = sb.run("await mcp.$search('echo'); return 1", &zero).await;
    assert_eq!(limit_name(&o), "discovery_calls");
}

#[tokio::test]
async fn oversize_discovery_inputs_are_refused() {
    let sb = discovery_sandbox();
    for code in [
        "return await mcp.$search('x'.repeat(257))",
        "return await mcp.$search('echo', 'd'.repeat(300))",
        "return await mcp.$describe(Array.from({ length: 65 }, (_, i) => 'demo.t' + i))",
        "return await mcp.$describe(['demo.' + 'x'.repeat(300)])",
    ] {
        let o = sb
            .run(&format!("try {{ {code} }} catch (e) {{ return [e.name, e.message]; }}"), &fast_limits())
            .await;
        let v = completed(&o);
        assert_eq!(v[0], "McpToolError", "{code}: {v}");
        let message = v[1].as_str().unwrap();
        assert!(message.contains("at most"), "{code}: {message}");
    }
    // At the caps, the calls are answered.
    let o = sb.run("await mcp.$search('x'.repeat(256)); return (await mcp.$describe(Array(64).fill('demo.echo'))).unknown", &fast_limits()).await;
    assert_eq!(completed(&o), &json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trivial_execution_is_prompt_while_a_discovery_loop_runs() {
    let sb = discovery_sandbox();
    let limits =
        Limits { wall_time: DurationSpec::secs(10), cpu_time: DurationSpec::secs(5), ..Limits::default() };
    let cpu = process_cpu();
    let started = Instant::now();
    let adversaries: Vec<_> = (0..4)
        .map(|_| {
            let sb = sb.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                sb.run(
                    "while (true) { const ps = []; for (let i = 0; i < 1000; i++) ps.push(mcp.$search('e', 'full').catch(() => 0)); await Promise.all(ps); }",
                    &limits,
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let o = sb.run("return 1 + 1", &fast_limits()).await;
    let trivial = t.elapsed();
    assert_eq!(completed(&o), &json!(2));
    for a in adversaries {
        let o = a.await.unwrap();
        assert!(matches!(o.status, Status::LimitExceeded { .. }), "{:?}", o.status);
    }
    let took = started.elapsed();
    let used = process_cpu().saturating_sub(cpu);
    println!("trivial execution: {trivial:?}; four adversaries ended after {took:?}, process CPU {used:?}");
    assert!(trivial < Duration::from_secs(2), "the trivial execution took {trivial:?}");
    assert!(took < Duration::from_secs(8), "the adversaries ran for {took:?}");
    // Four executions with a 5 s CPU limit each, plus the host's work for them.
    assert!(used < Duration::from_secs(20), "process CPU {used:?}");
}

/// Thousands of distinct lexical declarations and references in one scope: QuickJS resolves each
/// reference by a linear walk over the scope's declarations, so compiling this is quadratic.
fn slow_compile_program(n: usize) -> String {
    let mut code = String::new();
    for i in 0..n {
        code.push_str(&format!("let v{i}={i};"));
    }
    code.push_str("let s=0;");
    for i in (0..n).rev() {
        code.push_str(&format!("s+=v{i};"));
    }
    code.push_str("return s;");
    code
}

#[tokio::test]
#[ignore = "the shape compiles in well under a second on this QuickJS; a slow-compile shape is still to be found"]
async fn compiling_runs_under_the_execution_limits() {
    let sb = sandbox();
    let limits =
        Limits { wall_time: DurationSpec::secs(2), cpu_time: DurationSpec::secs(1), ..Limits::default() };
    let code = slow_compile_program(9000);
    assert!(code.len() < 256 * 1024, "{} bytes", code.len());
    let started = Instant::now();
    let o = sb.run(&code, &limits).await;
    let took = started.elapsed();
    println!("{} byte program: {took:?}, {:?} / {:?}", code.len(), o.status, o.metrics);
    assert!(["cpu_time", "wall_time", "memory"].contains(&limit_name(&o)), "{:?}", o.status);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // The same shape, small, compiles and runs.
    let o = sb.run(&slow_compile_program(100), &limits).await;
    assert_eq!(completed(&o), &json!((0..100).sum::<usize>()));
}

#[test]
fn a_long_member_chain_validates_in_linear_time() {
    use mcp_guard_sandbox::validator::{ValidateOptions, validate};
    let options = ValidateOptions { max_code_bytes: 4 << 20 };
    // Names of the global object, but rooted at a local: each level used to re-walk the chain below it.
    // Statements of 4,000 levels (the nesting estimate allows about that many per statement), 240 KB.
    let statements = 240 * 1024 / (4000 * ".globalThis".len());
    let program = |name: &str| {
        let mut code = String::from("const a = {};\n");
        for _ in 0..statements {
            code.push_str(&format!("void a{};\n", name.repeat(4000)));
        }
        code
    };
    let chain = program(".globalThis");
    let control = program(".globalThat");
    let time = |code: &str| {
        let started = Instant::now();
        let result = validate(code, &options);
        if let Err(e) = &result {
            println!("rejected: {e:?}");
        }
        (started.elapsed(), result.is_ok())
    };
    let (chain_time, chain_ok) = time(&chain);
    let (control_time, control_ok) = time(&control);
    println!(
        "chain {} bytes: {chain_time:?} ({chain_ok}); control: {control_time:?} ({control_ok})",
        chain.len()
    );
    assert!(
        chain_time < control_time * 5 + Duration::from_millis(200),
        "chain {chain_time:?} vs control {control_time:?}"
    );
}
