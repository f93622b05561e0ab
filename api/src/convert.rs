//! The outcome and execution events as messages of the public API.

use mcp_guard_proto::v1 as pb;
use mcp_guard_sandbox::{
    engine::ExecutionEvent,
    host::ExecutionInfo,
    outcome::{ConsoleLevel, ConsoleLine, Outcome, Status, ToolCallRecord, ToolCallStatus},
};
use mcp_guard_tools::{ServerState, ToolEntry};

pub fn console_level(level: ConsoleLevel) -> &'static str {
    match level {
        ConsoleLevel::Debug => "debug",
        ConsoleLevel::Log => "log",
        ConsoleLevel::Info => "info",
        ConsoleLevel::Warn => "warn",
        ConsoleLevel::Error => "error",
    }
}

fn console_line(line: &ConsoleLine) -> pb::ConsoleLine {
    pb::ConsoleLine { level: console_level(line.level).to_string(), message: line.message.clone() }
}

fn tool_call(call: &ToolCallRecord) -> pb::ToolCall {
    pb::ToolCall {
        server: call.server.clone(),
        tool: call.tool.clone(),
        duration_ms: call.duration_ms,
        status: match call.status {
            ToolCallStatus::Ok => "ok",
            ToolCallStatus::Error => "error",
            ToolCallStatus::Cancelled => "cancelled",
        }
        .to_string(),
        error: call.error.clone().unwrap_or_default(),
        error_code: call.error_code.clone().unwrap_or_default(),
    }
}

/// The outcome as the proto's `Outcome`.
pub fn outcome(execution: &ExecutionInfo, outcome: &Outcome) -> pb::Outcome {
    use pb::outcome::Status as S;
    let status = match &outcome.status {
        Status::Rejected { rejection } => S::Rejected(pb::Rejection {
            rule: rejection.rule.to_string(),
            line: rejection.line,
            column: rejection.column,
            message: rejection.message.clone(),
        }),
        Status::Completed { result } => S::CompletedJson(result.to_string()),
        Status::Threw { error } => S::Threw(pb::ThrownError {
            name: error.name.clone(),
            message: error.message.clone(),
            stack: error.stack.clone(),
        }),
        Status::LimitExceeded { limit, message } => S::LimitExceeded(pb::LimitExceeded {
            limit: limit.as_str().to_string(),
            message: message.clone(),
        }),
        Status::ApprovalRequired { approval } => S::ApprovalRequired(approval_required(approval)),
    };
    pb::Outcome {
        status: Some(status),
        console: outcome.console.iter().map(console_line).collect(),
        tool_calls: outcome.tool_calls.iter().map(tool_call).collect(),
        metrics: Some(pb::Metrics {
            cpu_ms: outcome.metrics.cpu_ms,
            wall_ms: outcome.metrics.wall_ms,
            peak_heap_bytes: outcome.metrics.peak_heap_bytes,
        }),
        execution_id: execution.id.clone(),
    }
}

/// One streamed event.
pub fn event(event: &ExecutionEvent) -> pb::ExecuteEvent {
    use pb::execute_event::Event as E;
    let e = match event {
        ExecutionEvent::Console(line) => E::Console(console_line(line)),
        ExecutionEvent::ToolCallStarted { server, tool } => {
            E::ToolCallStarted(pb::ToolCallStarted { server: server.clone(), tool: tool.clone() })
        }
        ExecutionEvent::ToolCallFinished(call) => E::ToolCallFinished(tool_call(call)),
    };
    pb::ExecuteEvent { event: Some(e) }
}

pub fn tool(t: &ToolEntry) -> pb::Tool {
    pb::Tool {
        server: t.server.clone(),
        name: t.name.clone(),
        binding: t.binding.clone(),
        description: t.description.clone(),
    }
}

pub fn tool_description(t: &ToolEntry) -> pb::ToolDescription {
    pb::ToolDescription {
        tool: Some(tool(t)),
        input_schema_json: t.input_schema_json.clone(),
        output_schema_json: t.output_schema_json.clone(),
        typescript: t.typescript.clone(),
    }
}

/// The outcome as JSON (the `mcp-guard exec` format) with the execution id added.
pub fn outcome_json(execution: &ExecutionInfo, outcome: &Outcome) -> serde_json::Value {
    let mut value = serde_json::to_value(outcome).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("executionId".into(), serde_json::Value::String(execution.id.clone()));
    }
    value
}

/// One bound server as the proto's `Server`; `tools` are all bound tools (those of this server are
/// counted).
pub fn server(state: &ServerState, tools: &[ToolEntry]) -> pb::Server {
    let count = tools.iter().filter(|t| t.server == state.name).count();
    pb::Server {
        name: state.name.clone(),
        connected: state.connected,
        server_name: state.server_name.clone(),
        server_version: state.server_version.clone(),
        tool_count: u32::try_from(count).unwrap_or(u32::MAX),
        error: state.error.clone(),
        protocol_version: state.protocol_version.clone(),
        missing_credentials: state.missing_credentials.clone(),
    }
}

/// A pending approval as the proto's `ApprovalRequired`.
pub fn approval_required(a: &mcp_guard_sandbox::outcome::ApprovalRequest) -> pb::ApprovalRequired {
    pb::ApprovalRequired {
        id: a.id.clone(),
        policy: a.policy.clone(),
        requester: a.requester.clone(),
        created_at: a.created_at.clone(),
        expires_at: a.expires_at.clone(),
        calls: a
            .calls
            .iter()
            .map(|c| pb::ApprovalCall {
                server: c.server.clone(),
                tool: c.tool.clone(),
                arguments_json: c.arguments.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use mcp_guard_tools::{ServerState, ServerTools, ToolIndex, ToolSpec};

    use super::*;

    #[test]
    fn servers_carry_their_handshake_and_tool_count() {
        let mut response = vec![
            ServerTools {
                state: ServerState {
                    name: "up".into(),
                    server_name: "upstream".into(),
                    server_version: "1.2.3".into(),
                    protocol_version: "2025-06-18".into(),
                    connected: true,
                    ..Default::default()
                },
                tools: vec![
                    ToolSpec { name: "a".into(), ..Default::default() },
                    ToolSpec { name: "b".into(), ..Default::default() },
                ],
            },
            ServerTools {
                state: ServerState { name: "down".into(), error: "refused".into(), ..Default::default() },
                tools: Vec::new(),
            },
        ];
        let i = ToolIndex::new(response.clone());
        let servers: Vec<_> = i.servers().iter().map(|s| server(s, i.tools())).collect();
        assert_eq!(servers[0].server_name, "upstream");
        assert_eq!(servers[0].server_version, "1.2.3");
        assert_eq!(servers[0].protocol_version, "2025-06-18");
        assert_eq!(servers[0].tool_count, 2);
        assert!(servers[0].connected);
        assert_eq!((servers[1].tool_count, servers[1].connected), (0, false));
        assert_eq!(servers[1].error, "refused");
        // A change of connection state alone is a different server list (ListTools reports it).
        response[1].state.connected = true;
        assert_ne!(ToolIndex::new(response.clone()).servers(), i.servers());
        assert_eq!(ToolIndex::new(response.clone()).fingerprint(), i.fingerprint());
    }
}
