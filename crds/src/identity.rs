//! How a binding proxy proves to a server the operator deployed that it serves a policy binding it (the
//! server's gate checks, see `mcp-guard server-gate`): a projected service-account token of the
//! executor pod, issued for the server's own audience, sent in its own header.

/// The header that carries the token (never `Authorization`, which stays the server's own).
pub const SERVER_IDENTITY_HEADER: &str = "x-mcp-guard-identity";

/// The audience of the tokens the gate of McpServer `namespace/server` accepts.
pub fn server_audience(namespace: &str, server: &str) -> String {
    format!("mcpguard.io/server/{namespace}/{server}")
}
