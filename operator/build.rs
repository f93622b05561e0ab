// A client of the executor's public API (`proto/mcpguard/v1/executor.proto`): the operator calls
// `ListTools` to report each McpServer's tools and handshake. Only the client is generated; the operator
// does not depend on the executor crate. Needs `protoc` (scripts/setup.sh installs protobuf-compiler).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["../proto/mcpguard/v1/executor.proto"], &["../proto"])?;
    println!("cargo:rerun-if-changed=../proto/mcpguard/v1/executor.proto");
    Ok(())
}
