//! Every committed fuzz input (`fuzz/corpus/<target>/`, the seeds and what fuzzing kept) and every
//! crash reproducer (`fuzz/regressions/<target>/`) through its target's checks, on stable: what once
//! broke an invariant stays fixed, in `make test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                let data = std::fs::read(&path).unwrap();
                out.push((path, data));
            }
        }
    }
    out.sort();
    out
}

fn run(target: &str, check: fn(&[u8]), at_least: usize) {
    let inputs = inputs(target);
    assert!(inputs.len() >= at_least, "{target}: {} inputs, expected at least {at_least}", inputs.len());
    for (path, data) in inputs {
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target}: {} breaks an invariant (see above)", path.display());
    }
}

#[test]
fn validator_corpus() {
    run("validator", mcp_guard_fuzz::validator, 20);
}

#[test]
fn typescript_corpus() {
    run("typescript", mcp_guard_fuzz::typescript, 5);
}

#[test]
fn config_corpus() {
    run("config", mcp_guard_fuzz::config, 5);
}

#[test]
fn quantity_corpus() {
    run("quantity", mcp_guard_fuzz::quantity, 5);
}

#[test]
fn host_frames_corpus() {
    run("host_frames", mcp_guard_fuzz::host_frames, 2);
}

#[test]
fn proxy_messages_corpus() {
    run("proxy_messages", mcp_guard_fuzz::proxy_messages, 1);
}

/// The independent check finds what it must: it would catch the validator accepting these.
#[test]
fn the_independent_check_finds_the_forbidden_forms() {
    let found = |s: &str| mcp_guard_fuzz::forbidden_forms(s);
    assert_eq!(found("eval('1')"), ["call of eval"]);
    assert_eq!(found("new Function('x')"), ["call of Function"]);
    assert_eq!(found("(0, require)('fs'); (require)('x')").len(), 1, "a sequence is not a bare name");
    assert_eq!(found("(require)('x')"), ["call of require"]);
    assert_eq!(found("f.constructor('x')()"), ["constructor call of constructor"]);
    assert_eq!(found("import('x')"), ["dynamic import of import"]);
    assert!(found("const require = (x) => x; require('a')").is_empty(), "a local is not the global");
    assert!(found("x.eval(1); 'eval(1)'; // eval(2)").is_empty());
}
