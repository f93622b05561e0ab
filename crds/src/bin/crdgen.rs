//! Writes the CRD YAML of every MCP Guard custom resource into `crds/yaml/` and the Helm chart's
//! `charts/mcp-guard/crds/` (or prints it with `--stdout`).
//! `cargo run -p mcp-guard-crds --bin crdgen` after changing the types; a test fails when the files drift.

use std::process::ExitCode;

fn main() -> ExitCode {
    let stdout = std::env::args().any(|a| a == "--stdout");
    let dirs = mcp_guard_crds::crd_yaml::output_dirs();
    for (file, yaml) in mcp_guard_crds::crd_yaml::all() {
        let yaml = match yaml {
            Ok(y) => y,
            Err(e) => {
                eprintln!("crdgen: {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if stdout {
            print!("---\n{yaml}");
            continue;
        }
        for dir in &dirs {
            let path = dir.join(file);
            if let Err(e) = std::fs::write(&path, &yaml) {
                eprintln!("crdgen: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!("crdgen: wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}
