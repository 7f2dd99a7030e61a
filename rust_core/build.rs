//! Compiles the public API and the worker protocol with prost.
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new("../proto");
    let files = [
        proto_root.join("mt5exec/v1/common.proto"),
        proto_root.join("mt5exec/v1/stream.proto"),
        proto_root.join("mt5exec/v1/order.proto"),
        proto_root.join("mt5exec/v1/instance.proto"),
        proto_root.join("mt5exec/v1/market.proto"),
        proto_root.join("mt5exec/terminal/v1/worker.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // The field numbers of every message, for the refusal of unknown fields (wire.rs).
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    config.file_descriptor_set_path(out_dir.join("descriptors.bin"));
    config.skip_source_info();
    config.compile_protos(
        &files,
        &[
            proto_root.to_path_buf(),
            protoc_bin_vendored::include_path()?,
        ],
    )?;
    Ok(())
}
