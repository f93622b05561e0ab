// Compiles the protos with protox (a protobuf compiler written in Rust), so building needs nothing but
// cargo: no `protoc`. Each API gets its own encoded descriptor set; the gRPC reflection service serves
// the public one only.
use std::{error::Error, path::PathBuf};

use prost::Message;

const APIS: &[(&str, &str)] = &[
    ("mcpguard/v1/executor.proto", "mcpguard_v1_descriptor.bin"),
    ("mcpguard/internal/v1/binding.proto", "mcpguard_internal_v1_descriptor.bin"),
];

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for (file, descriptor) in APIS {
        let fds = protox::compile([file], ["."])?;
        std::fs::write(out.join(descriptor), fds.encode_to_vec())?;
        tonic_prost_build::configure().compile_fds(fds)?;
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
