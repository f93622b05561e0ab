// Compiles the protos under proto/: the internal executor ⇄ binding-proxy API, and the public
// `mcpguard.v1` Executor API with its own descriptor set, which the gRPC reflection service serves (only
// the public API is described there). Needs `protoc` (scripts/setup.sh installs protobuf-compiler).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("mcpguard_descriptor.bin"))
        .compile_protos(&["../proto/mcpguard/internal/v1/binding.proto"], &["../proto"])?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("mcpguard_v1_descriptor.bin"))
        .compile_protos(&["../proto/mcpguard/v1/executor.proto"], &["../proto"])?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
