//! The gRPC `mcpguard.v1.Executor` service.

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::Stream;
use tonic::{Request, Response, Status};

use mcp_guard_tools as tools;

use mcp_guard_proto::v1 as pb;

use crate::{ApiState, Door, LimitOverrides, Run, auth::Caller, convert, request_id};

pub use pb::executor_server::ExecutorServer;

/// The service; cheap to clone.
#[derive(Debug, Clone)]
pub struct ExecutorService {
    state: Arc<ApiState>,
}

impl ExecutorService {
    pub fn new(state: Arc<ApiState>) -> Self {
        ExecutorService { state }
    }

    /// The tonic server for this service, with the edge's message size limit.
    pub fn into_server(self) -> ExecutorServer<Self> {
        let max = self.state.edge().max_message_bytes;
        ExecutorServer::new(self).max_decoding_message_size(max).max_encoding_message_size(usize::MAX)
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let authorization = match request.metadata().get("authorization") {
            Some(v) => Some(v.to_str().map_err(|_| {
                Status::unauthenticated("malformed authorization: expected `Bearer <token>`")
            })?),
            None => None,
        };
        let cn =
            request.peer_certs().and_then(|certs| certs.first().and_then(|c| super::tls::common_name(c)));
        let peer = request.remote_addr().map(|a| a.ip());
        Ok(self.state.authenticate(authorization, cn, peer, Door::Grpc).await?)
    }
}

/// The `grpc-timeout` of a request (gRPC over HTTP/2: up to 8 digits and a unit).
pub fn grpc_timeout<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn overrides(limits: Option<&pb::LimitOverrides>) -> LimitOverrides {
    let Some(l) = limits else {
        return LimitOverrides::default();
    };
    LimitOverrides {
        wall_time: (l.wall_time_ms > 0).then(|| Duration::from_millis(l.wall_time_ms)),
        cpu_time: (l.cpu_time_ms > 0).then(|| Duration::from_millis(l.cpu_time_ms)),
        tool_calls: (l.tool_calls > 0).then_some(l.tool_calls),
    }
}

fn metadata_request_id<T>(request: &Request<T>) -> String {
    request_id(request.metadata().get("x-request-id").and_then(|v| v.to_str().ok()))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ExecuteEvent, Status>> + Send>>;

impl ExecutorService {
    /// The caller, request id and deadline of a unary execution request.
    async fn unary<T>(&self, request: &Request<T>) -> Result<(Caller, String, Option<Instant>), Status> {
        let started = Instant::now();
        let caller = self.caller(request).await?;
        let id = metadata_request_id(request);
        let deadline = grpc_timeout(request).map(|t| started + t);
        Ok((caller, id, deadline))
    }

    /// Runs `code` (or resumes `resume`) to its outcome, in its own task: a caller that goes away does
    /// not cut the execution short (its tool calls may have side effects that should finish, and be
    /// audited, as a whole).
    async fn run_unary(
        &self,
        caller: Caller,
        id: String,
        deadline: Option<Instant>,
        code: String,
        resume: Option<String>,
        limits: Option<pb::LimitOverrides>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let state = self.state.clone();
        let run = tokio::spawn(async move {
            let run = Run {
                caller: &caller,
                code: &code,
                resume: resume.as_deref(),
                overrides: overrides(limits.as_ref()),
                deadline,
                events: None,
                door: Door::Grpc,
                request_id: &id,
            };
            state.execute(run).await
        });
        let (execution, outcome) =
            run.await.map_err(|e| Status::internal(format!("the execution task failed: {e}")))??;
        Ok(Response::new(pb::ExecuteResponse { outcome: Some(convert::outcome(&execution, &outcome)) }))
    }
}

#[tonic::async_trait]
impl pb::executor_server::Executor for ExecutorService {
    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let (caller, id, deadline) = self.unary(&request).await?;
        let body = request.into_inner();
        self.run_unary(caller, id, deadline, body.code, None, body.limits).await
    }

    type ExecuteStreamStream = EventStream;

    async fn execute_stream(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStreamStream>, Status> {
        let started = Instant::now();
        let caller = self.caller(&request).await?;
        // Refused before the stream opens, so the caller sees the status at once.
        caller.may_execute()?;
        let id = metadata_request_id(&request);
        let deadline = grpc_timeout(&request).map(|t| started + t);
        let body = request.into_inner();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, out_rx) = tokio::sync::mpsc::channel::<Result<pb::ExecuteEvent, Status>>(64);
        let state = self.state.clone();
        let overrides = overrides(body.limits.as_ref());
        tokio::spawn(async move {
            let run = state.execute(Run {
                caller: &caller,
                code: &body.code,
                resume: None,
                overrides,
                deadline,
                events: Some(events_tx),
                door: Door::Grpc,
                request_id: &id,
            });
            tokio::pin!(run);
            let mut forward = true;
            let result = loop {
                tokio::select! {
                    biased;
                    Some(event) = events_rx.recv(), if forward => {
                        // A caller that went away does not stop the execution (its tool calls may have
                        // side effects that should finish on record); it just is not told any more.
                        if out_tx.send(Ok(convert::event(&event))).await.is_err() {
                            forward = false;
                        }
                    }
                    result = &mut run => break result,
                }
            };
            // Events sent just before the end.
            while forward && let Ok(event) = events_rx.try_recv() {
                if out_tx.send(Ok(convert::event(&event))).await.is_err() {
                    break;
                }
            }
            let last = match result {
                Ok((execution, outcome)) => Ok(pb::ExecuteEvent {
                    event: Some(pb::execute_event::Event::Outcome(convert::outcome(&execution, &outcome))),
                }),
                Err(e) => Err(e.to_status()),
            };
            let _ = out_tx.send(last).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out_rx)) as EventStream))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let (caller, id, deadline) = self.unary(&request).await?;
        let body = request.into_inner();
        self.run_unary(caller, id, deadline, String::new(), Some(body.approval_id), body.limits).await
    }

    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let approvals = self.state.list_approvals(&caller).await?;
        Ok(Response::new(pb::ListApprovalsResponse {
            approvals: approvals
                .into_iter()
                .map(|a| {
                    let (state, decided_by, reason) =
                        (a.state.clone(), a.decided_by.clone(), a.reason.clone());
                    pb::Approval {
                        request: Some(convert::approval_required(
                            &mcp_guard_binding_client::approval_from_pb(a),
                        )),
                        state,
                        decided_by,
                        reason,
                    }
                })
                .collect(),
        }))
    }

    async fn list_tools(
        &self,
        request: Request<pb::ListToolsRequest>,
    ) -> Result<Response<pb::ListToolsResponse>, Status> {
        self.caller(&request).await?;
        let index = self.state.tools();
        Ok(Response::new(pb::ListToolsResponse {
            tools: index.tools().iter().map(convert::tool).collect(),
            servers: index.servers().iter().map(|s| convert::server(s, index.tools())).collect(),
        }))
    }

    async fn describe_tools(
        &self,
        request: Request<pb::DescribeToolsRequest>,
    ) -> Result<Response<pb::DescribeToolsResponse>, Status> {
        self.caller(&request).await?;
        let query = request.into_inner().query;
        let index = self.state.tools();
        let matches = index.search(&query);
        let typescript = if query.trim().is_empty() {
            index.typescript().to_string()
        } else {
            tools::declarations(&matches)
        };
        Ok(Response::new(pb::DescribeToolsResponse {
            tools: matches.iter().map(|t| convert::tool_description(t)).collect(),
            typescript,
        }))
    }
}
