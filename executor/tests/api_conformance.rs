//! `npx @modelcontextprotocol/conformance server --url ...` against the MCP front door, with the
//! expected-failures baseline `api_conformance_baseline.yml` (each entry justified there). The suite
//! cannot send credentials, so this server runs with `--insecure-no-auth`, which binds loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::{path::PathBuf, process::Command, time::Instant};

use api_support::{TempDir, conformance, node22, try_serve};

#[test]
fn the_front_door_passes_the_mcp_conformance_suite() {
    let s = try_serve("limits:\n  wallTime: 5s\n", &["--insecure-no-auth", "--grpc-listen", "off"], false)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let baseline = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api_conformance_baseline.yml");
    // The suite writes its results under the working directory.
    let work = TempDir::new("conformance");
    let started = Instant::now();
    let out = Command::new(node22())
        .arg(conformance())
        .args(["server", "--url", &s.mcp, "--expected-failures"])
        .arg(&baseline)
        .current_dir(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.rsplit("=== SUMMARY ===").next().unwrap_or_default();
    println!("conformance suite ({:?}):{summary}", started.elapsed());
    assert!(out.status.success(), "conformance suite failed ({:?}):\n{stdout}\n{stderr}", out.status);
    for passing in
        ["server-initialize", "ping", "tools-list", "logging-set-level", "dns-rebinding-protection"]
    {
        assert!(summary.contains(&format!("✓ {passing}")), "{passing} did not pass:\n{summary}");
    }
}
