//! Generates the prost types for ONNX's protobuf schema into `graphs/src/onnx/onnx.rs`.
use std::path::PathBuf;

fn main() {
    let graphs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto_dir = graphs.join("proto");
    let out_dir = graphs.join("src").join("onnx");
    let descriptors = protox::compile([proto_dir.join("onnx.proto")], [&proto_dir])
        .expect("onnx.proto compiles");
    let tmp = std::env::temp_dir().join("vjx-onnx-codegen");
    std::fs::create_dir_all(&tmp).unwrap();
    prost_build::Config::new()
        .out_dir(&tmp)
        .compile_fds(descriptors)
        .expect("prost-build generates code");
    std::fs::copy(tmp.join("onnx.rs"), out_dir.join("onnx.rs")).expect("copy onnx.rs");
    println!("wrote {}", out_dir.join("onnx.rs").display());
}
