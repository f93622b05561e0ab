//! `mcp-guard`: run untrusted code against MCP tools in a sandbox.

use std::{io::Read, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use mcp_guard_crds::GuardConfig;
use mcp_guard_executor::{
    host::{Catalog, testing::ScriptedHost},
    sandbox::Sandbox,
};

/// Exit codes besides the outcome's own (0 completed, 3 rejected, 4 threw, 5 limit exceeded).
const EXIT_USAGE: u8 = 2;
const EXIT_INTERNAL: u8 = 1;

#[derive(Parser)]
#[command(name = "mcp-guard", version, about = "Run untrusted TypeScript/JavaScript against MCP tools in a sandbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and run one file of code and print its outcome as JSON.
    ///
    /// Exit code: 0 completed, 3 rejected, 4 threw, 5 limit exceeded, 2 bad usage or config, 1 internal error.
    Exec {
        /// Configuration file (YAML); the embedded default applies when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The code to run: a .ts/.js file, or `-` for standard input.
        file: String,
    },
    /// Print the JSON schema of the outcome.
    OutcomeSchema,
    /// Print the embedded default configuration.
    DefaultConfig,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Exec { config, file } => exec(config, &file),
        Command::OutcomeSchema => print_json(&mcp_guard_executor::outcome::Outcome::json_schema()),
        Command::DefaultConfig => {
            print!("{}", mcp_guard_crds::config::DEFAULT_CONFIG_YAML);
            ExitCode::SUCCESS
        }
    }
}

fn print_json(value: &serde_json::Value) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

fn exec(config: Option<PathBuf>, file: &str) -> ExitCode {
    let config = match config {
        Some(path) => GuardConfig::from_file(&path),
        None => Ok(GuardConfig::embedded_default()),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match read_code(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-guard: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    // No MCP servers are bound yet in local mode: `mcp` is empty.
    let sandbox = Sandbox::new(Catalog::default(), Arc::new(ScriptedHost::new()));
    let outcome = runtime.block_on(sandbox.run(&code, &config.limits));
    match serde_json::to_string_pretty(&outcome) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("mcp-guard: cannot print the outcome: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    }
    ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(EXIT_INTERNAL))
}

/// Read the code from a file or stdin, as bytes first so invalid UTF-8 gets a clear error.
fn read_code(file: &str) -> Result<String, String> {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?
    };
    String::from_utf8(bytes).map_err(|e| {
        format!("{}: the code is not valid UTF-8 (first invalid byte at offset {})", if file == "-" { "stdin" } else { file }, e.utf8_error().valid_up_to())
    })
}
