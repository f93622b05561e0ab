//! Serving both doors and the metrics endpoint, readiness, and graceful shutdown: when `shutdown`
//! resolves, the server reports NOT_SERVING, stops accepting connections and executions, lets the
//! executions in flight finish (at most `shutdown_grace`), closes MCP sessions and returns.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode},
    routing::get,
};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

use mcp_guard_proto::v1 as pb;

use crate::{ApiState, grpc::ExecutorService, mcp, tls::TlsMaterial};

/// What to serve where.
#[derive(Debug)]
pub struct ServeOptions {
    pub grpc: Option<TcpListener>,
    pub mcp: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
    pub tls: Option<TlsMaterial>,
    /// Longest wait for in-flight executions at shutdown.
    pub shutdown_grace: Duration,
    /// How often the binding proxy is asked for readiness and tool changes.
    pub refresh_interval: Duration,
}

const SERVICE_NAME: &str = "mcpguard.v1.Executor";

async fn set_health(reporter: &tonic_health::server::HealthReporter, ready: bool) {
    let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Serve until `shutdown` resolves, then drain and return.
pub async fn serve(
    state: Arc<ApiState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&reporter, state.ready()).await;

    // Readiness and tool changes, from the binding proxy.
    let refresher = {
        let state = state.clone();
        let reporter = reporter.clone();
        let interval = options.refresh_interval;
        let stop = stopped();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut last = state.ready();
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(interval) => {}
                }
                let ready = state.refresh().await;
                if ready != last {
                    tracing::info!(ready, "readiness changed");
                    set_health(&reporter, ready).await;
                    last = ready;
                }
            }
        })
    };

    let mut tasks: Vec<(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)> = Vec::new();

    if let Some(listener) = options.grpc {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            builder = builder.tls_config(tls.tonic())?;
        }
        let router = builder
            .layer(tower::layer::layer_fn(StatusRewrite))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(ExecutorService::new(state.clone()).into_server());
        let stop = stopped();
        tasks.push((
            "gRPC",
            tokio::spawn(async move {
                // No Nagle: a response is often written as a body and a separate small trailer frame,
                // which would otherwise wait for the client's delayed ACK (~40 ms).
                let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                router.serve_with_incoming_shutdown(incoming, stop).await?;
                Ok(())
            }),
        ));
    }

    let mut cancel_sessions: Option<mcp::CancelSessions> = None;
    if let Some(listener) = options.mcp {
        let loopback = listener.local_addr().map(|a| a.ip().is_loopback()).unwrap_or(false);
        let (router, cancel) = mcp::router(state.clone(), loopback);
        cancel_sessions = Some(cancel);
        let stop = stopped();
        let task = match &options.tls {
            Some(tls) => {
                let config = tls.rustls().map_err(anyhow::Error::msg)?;
                tokio::spawn(serve_tls(listener, router, config, stop))
            }
            None => tokio::spawn(async move {
                // The peer address reaches the door (per-address limits on failed authentication).
                let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                });
                axum::serve(listener, service).with_graceful_shutdown(stop).await?;
                Ok(())
            }),
        };
        tasks.push(("MCP", task));
    }

    let metrics_task = options.metrics.map(|listener| {
        let s = state.clone();
        let ready_state = state.clone();
        let router = Router::new()
            .route(
                "/metrics",
                get(move || {
                    let s = s.clone();
                    async move {
                        let mut headers = HeaderMap::new();
                        headers.insert(
                            axum::http::header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        (headers, s.metrics.render())
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(move || {
                    let s = ready_state.clone();
                    async move {
                        if s.ready() {
                            (StatusCode::OK, "ready\n")
                        } else {
                            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                        }
                    }
                }),
            );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        (tx, handle)
    });

    // Run until asked to stop, or until a door fails.
    let failed = if tasks.is_empty() {
        shutdown.await;
        None
    } else {
        let wait_doors = futures::future::select_all(tasks.iter_mut().map(|(_, t)| t));
        tokio::select! {
            _ = shutdown => None,
            (result, index, _) = wait_doors => Some((index, result)),
        }
    };
    if let Some((index, result)) = &failed {
        let name = tasks.get(*index).map_or("?", |t| t.0);
        tracing::error!(door = name, result = ?result.as_ref().map(|r| r.as_ref().map_err(|e| e.to_string())), "a door stopped");
    }

    // Drain.
    tracing::info!(in_flight = state.in_flight(), "shutting down: draining executions");
    state.start_draining();
    set_health(&reporter, false).await;
    let _ = stop_tx.send(true);
    let started = Instant::now();
    while state.in_flight() > 0 && started.elapsed() < options.shutdown_grace {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = state.in_flight();
    if left > 0 {
        tracing::warn!(left, "the shutdown grace period ended with executions still running");
    }
    if let Some(cancel) = cancel_sessions {
        cancel();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for (name, task) in tasks {
        if task.is_finished() || failed.is_none() {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(door = name, error = %e, "door ended with an error"),
                Ok(Err(e)) => tracing::warn!(door = name, error = %e, "door task failed"),
                Err(_) => tracing::warn!(door = name, "door did not close in time"),
            }
        } else {
            task.abort();
        }
    }
    refresher.abort();
    if let Some((tx, handle)) = metrics_task {
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), handle).await;
    }
    tracing::info!("stopped");
    match failed {
        Some((_, Ok(Err(e)))) => Err(e),
        Some((_, Err(e))) => Err(anyhow::anyhow!("a door task failed: {e}")),
        _ => Ok(()),
    }
}

/// Serve the MCP router over TLS; each request carries the verified client certificate's CN.
async fn serve_tls(
    listener: TcpListener,
    router: Router,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo},
        server::{conn::auto::Builder, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    use tower::ServiceExt;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let cn =
                tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(super::tls::common_name);
            let service =
                router.map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(mcp::ClientCn(cn.clone()));
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    request
                });
            let builder = Builder::new(TokioExecutor::new());
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// Maps statuses that tonic chooses itself to the ones the API documents: a request message over the
/// size limit (tonic: OUT_OF_RANGE) is RESOURCE_EXHAUSTED, a request that does not decode (tonic:
/// INTERNAL, e.g. a string field that is not UTF-8) is INVALID_ARGUMENT, and a caller deadline that
/// passes in the server (tonic: CANCELLED "Timeout expired") is DEADLINE_EXCEEDED.
#[derive(Debug, Clone)]
pub struct StatusRewrite<S>(pub S);

fn rewrite_status(headers: &mut HeaderMap) {
    let Some(status) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    let code = match status {
        "11" if message.starts_with("Error, decoded message length too large") => "8",
        "13" if message.starts_with("failed to decode Protobuf message") => "3",
        // tonic's own answer when the caller's grpc-timeout passes while the handler runs.
        "1" if message == "Timeout expired" => "4",
        _ => return,
    };
    headers.insert("grpc-status", HeaderValue::from_static(code));
    if code == "3" {
        let text = format!("malformed request: {message}");
        let encoded: String = text
            .bytes()
            .map(|b| {
                if (0x20..0x7f).contains(&b) && b != b'%' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            headers.insert("grpc-message", v);
        }
    }
}

impl<S, ReqBody, ResBody> tower::Service<axum::http::Request<ReqBody>> for StatusRewrite<S>
where
    S: tower::Service<axum::http::Request<ReqBody>, Response = axum::http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<ReqBody>) -> Self::Future {
        let future = self.0.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            rewrite_status(response.headers_mut());
            Ok(response)
        })
    }
}
