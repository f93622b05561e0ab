//! MCP Guard's wire types, generated from the `.proto` files beside this crate. Only the edges use them:
//! the API doors and the binding proxy's service and client convert to and from their own types.

/// The public API agents call: `mcpguard.v1.Executor` (`mcpguard/v1/executor.proto`).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mcpguard.v1");

    /// The encoded descriptor set of the public API, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mcpguard_v1_descriptor");
}

/// The internal API between an executor and its binding proxy (`mcpguard/internal/v1/binding.proto`).
pub mod internal {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mcpguard.internal.v1");

    /// Largest message either side accepts: arguments and results are budgeted far below this.
    pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
}

/// Conversions between the internal API's messages and the tool index's own types, in one place for
/// both ends (the binding proxy's service and the executor's client).
mod convert {
    use mcp_guard_tools::{FailureKind, ServerState, ServerTools, ToolSpec};

    use crate::internal::{BoundServer, BoundTool, tool_failure::Kind};

    impl From<FailureKind> for Kind {
        fn from(kind: FailureKind) -> Self {
            match kind {
                FailureKind::ToolError => Kind::ToolError,
                FailureKind::Denied => Kind::Denied,
                FailureKind::QuotaExceeded => Kind::QuotaExceeded,
                FailureKind::BudgetExceeded => Kind::BudgetExceeded,
                FailureKind::RateLimited => Kind::RateLimited,
                FailureKind::Timeout => Kind::Timeout,
                FailureKind::Unavailable => Kind::Unavailable,
                FailureKind::DefinitionChanged => Kind::DefinitionChanged,
                FailureKind::AddressRefused => Kind::AddressRefused,
                FailureKind::UnknownExecution => Kind::UnknownExecution,
                FailureKind::ApprovalRequired => Kind::ApprovalRequired,
                FailureKind::ApprovalDenied => Kind::ApprovalDenied,
                FailureKind::ReplayDiverged => Kind::ReplayDiverged,
            }
        }
    }

    impl From<Kind> for FailureKind {
        /// An unspecified kind (a newer or broken peer) reads as a tool error.
        fn from(kind: Kind) -> Self {
            match kind {
                Kind::Unspecified | Kind::ToolError => FailureKind::ToolError,
                Kind::Denied => FailureKind::Denied,
                Kind::QuotaExceeded => FailureKind::QuotaExceeded,
                Kind::BudgetExceeded => FailureKind::BudgetExceeded,
                Kind::RateLimited => FailureKind::RateLimited,
                Kind::Timeout => FailureKind::Timeout,
                Kind::Unavailable => FailureKind::Unavailable,
                Kind::DefinitionChanged => FailureKind::DefinitionChanged,
                Kind::AddressRefused => FailureKind::AddressRefused,
                Kind::UnknownExecution => FailureKind::UnknownExecution,
                Kind::ApprovalRequired => FailureKind::ApprovalRequired,
                Kind::ApprovalDenied => FailureKind::ApprovalDenied,
                Kind::ReplayDiverged => FailureKind::ReplayDiverged,
            }
        }
    }

    impl From<ServerTools> for BoundServer {
        fn from(ServerTools { state, tools }: ServerTools) -> Self {
            BoundServer {
                name: state.name,
                server_name: state.server_name,
                server_version: state.server_version,
                connected: state.connected,
                tools: tools.into_iter().map(BoundTool::from).collect(),
                error: state.error,
                protocol_version: state.protocol_version,
                missing_credentials: state.missing_credentials,
            }
        }
    }

    impl From<BoundServer> for ServerTools {
        fn from(s: BoundServer) -> Self {
            ServerTools {
                state: ServerState {
                    name: s.name,
                    connected: s.connected,
                    error: s.error,
                    server_name: s.server_name,
                    server_version: s.server_version,
                    protocol_version: s.protocol_version,
                    missing_credentials: s.missing_credentials,
                },
                tools: s.tools.into_iter().map(ToolSpec::from).collect(),
            }
        }
    }

    impl From<ToolSpec> for BoundTool {
        fn from(t: ToolSpec) -> Self {
            BoundTool {
                name: t.name,
                description: t.description,
                input_schema_json: t.input_schema_json,
                output_schema_json: t.output_schema_json,
                pinned_sha256: t.pinned_sha256,
            }
        }
    }

    impl From<BoundTool> for ToolSpec {
        fn from(t: BoundTool) -> Self {
            ToolSpec {
                name: t.name,
                description: t.description,
                input_schema_json: t.input_schema_json,
                output_schema_json: t.output_schema_json,
                pinned_sha256: t.pinned_sha256,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_failure_kind_survives_the_wire() {
            for kind in FailureKind::ALL {
                assert_eq!(FailureKind::from(Kind::from(kind)), kind, "{kind}");
            }
            assert_eq!(FailureKind::from(Kind::Unspecified), FailureKind::ToolError);
        }

        #[test]
        fn servers_survive_the_wire() {
            let server = ServerTools {
                state: ServerState {
                    name: "s".into(),
                    connected: true,
                    error: "e".into(),
                    server_name: "n".into(),
                    server_version: "1".into(),
                    protocol_version: "2025-06-18".into(),
                    missing_credentials: vec!["/var/run/secrets/mcp-guard/s/token".into(), "env:S".into()],
                },
                tools: vec![ToolSpec {
                    name: "t".into(),
                    description: "d".into(),
                    input_schema_json: "{}".into(),
                    output_schema_json: String::new(),
                    pinned_sha256: "ab".into(),
                }],
            };
            assert_eq!(ServerTools::from(BoundServer::from(server.clone())), server);
        }
    }
}
