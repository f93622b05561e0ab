//! Streamable HTTP serving, with an optional bearer-token check in front of rmcp's service.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
};

use anyhow::{Context, bail};
use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use crate::tools::TestServer;

/// Where the expected bearer token comes from.
#[derive(Debug, Clone)]
pub enum BearerToken {
    /// A fixed token given on the command line.
    Fixed(String),
    /// A file holding the token, re-read on every request so tests can rotate it.
    File(PathBuf),
}

impl BearerToken {
    async fn current(&self) -> std::io::Result<String> {
        match self {
            Self::Fixed(token) => Ok(token.clone()),
            Self::File(path) => Ok(tokio::fs::read_to_string(path).await?.trim().to_owned()),
        }
    }
}

/// Binds `listen`, prints `listening on http://ADDR/PATH` to stdout, then serves until the process ends.
pub async fn serve(
    listen: SocketAddr,
    path: &str,
    bearer: Option<BearerToken>,
    mutated: Arc<AtomicBool>,
    list_delay: std::time::Duration,
) -> anyhow::Result<()> {
    if !path.starts_with('/') {
        bail!("--path must start with '/', got {path:?}");
    }
    let mut config = StreamableHttpServerConfig::default();
    if !listen.ip().is_loopback() {
        // The Host check guards loopback servers against DNS rebinding; in a cluster the server is
        // reached by its Service name, which the default loopback-only list would refuse.
        config = config.disable_allowed_hosts();
    }
    let service: StreamableHttpService<TestServer, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(TestServer::new(mutated.clone(), list_delay)),
        Default::default(),
        config,
    );
    let mut router = if path == "/" {
        Router::new().fallback_service(service)
    } else {
        Router::new().nest_service(path, service)
    };
    if let Some(bearer) = bearer {
        router = router.layer(middleware::from_fn_with_state(Arc::new(bearer), require_bearer));
    }

    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}{path}");
    tracing::info!("serving MCP over streamable HTTP on http://{addr}{path}");
    // Without TCP_NODELAY, small SSE responses wait for the client's delayed ACK (about 40 ms each).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}

/// Rejects, with 401, every request whose `Authorization` header is not `Bearer <token>`.
async fn require_bearer(State(bearer): State<Arc<BearerToken>>, request: Request, next: Next) -> Response {
    let expected = match bearer.current().await {
        Ok(token) => token,
        Err(error) => {
            tracing::error!("cannot read the bearer token file: {error}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the bearer token file\n")
                .into_response();
        }
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !expected.is_empty() && presented == Some(expected.as_str()) {
        return next.run(request).await;
    }
    tracing::warn!(presented = presented.is_some(), "rejected a request without the right bearer token");
    let mut response = (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
