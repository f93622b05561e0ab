//! `mcp-test-server`: a fault-injection MCP server for MCP Guard's tests (see `tools.rs` for the tools).
//!
//! `mcp-test-server stdio` speaks MCP on stdin/stdout; `mcp-test-server http --listen 127.0.0.1:0` serves
//! streamable HTTP and prints `listening on http://ADDR/PATH` once bound. Logs go to stderr only.

mod http;
mod tools;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
};

use clap::{Parser, Subcommand};
use rmcp::ServiceExt;

use crate::{http::BearerToken, tools::TestServer};

#[derive(Debug, Parser)]
#[command(name = "mcp-test-server", version, about = "Fault-injection MCP server for MCP Guard's tests")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Hold back every `tools/list` answer this many milliseconds (a slow server).
    #[arg(long, global = true, value_name = "MS", default_value_t = 0)]
    list_tools_delay_ms: u64,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Serve MCP over stdin/stdout.
    Stdio,
    /// Serve MCP over streamable HTTP.
    Http {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// URL path of the MCP endpoint.
        #[arg(long, default_value = "/mcp")]
        path: String,
        /// Require `Authorization: Bearer TOKEN` on every request.
        #[arg(long, value_name = "TOKEN", conflicts_with = "require_bearer_file")]
        require_bearer: Option<String>,
        /// Like --require-bearer, with the token read from this file on every request.
        #[arg(long, value_name = "PATH")]
        require_bearer_file: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let cli = Cli::parse();
    // Shared by every session, so `mutate-tools` changes the tool list for all of them.
    let mutated = Arc::new(AtomicBool::new(false));
    let list_delay = std::time::Duration::from_millis(cli.list_tools_delay_ms);
    match cli.mode {
        Mode::Stdio => {
            let service = TestServer::new(mutated, list_delay).serve(rmcp::transport::stdio()).await?;
            service.waiting().await?;
        }
        Mode::Http { listen, path, require_bearer, require_bearer_file } => {
            let bearer =
                require_bearer.map(BearerToken::Fixed).or(require_bearer_file.map(BearerToken::File));
            http::serve(listen, &path, bearer, mutated, list_delay).await?;
        }
    }
    Ok(())
}
