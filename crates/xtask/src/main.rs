//! Speil's development tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! `codegen` writes the Rust code for the gRPC APIs Speil speaks (containerd's content, images,
//! events, version and introspection services, the Kubernetes CRI) into
//! `crates/containerd-api/src/gen`, from the `.proto` files vendored beside it. It compiles them
//! with protox, a protobuf compiler written in Rust, and generates with tonic's code generator,
//! so neither building Speil nor regenerating its code needs `protoc`. The output is committed:
//! building the workspace runs no code generator at all.
//!
//! `codegen --check` generates into a temporary directory and fails, naming the files, when the
//! committed code differs from what the committed `.proto` files give; the test in
//! `tests/codegen.rs` runs it, so a `.proto` edited without regenerating fails the suite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The files compiled, relative to the proto directory, with their imports. The well-known
/// `google/protobuf/*` types map to `prost-types` (protox carries those files itself).
const PROTOS: &[&str] = &[
    "github.com/containerd/containerd/api/services/content/v1/content.proto",
    "github.com/containerd/containerd/api/services/events/v1/events.proto",
    "github.com/containerd/containerd/api/services/images/v1/images.proto",
    "github.com/containerd/containerd/api/services/introspection/v1/introspection.proto",
    "github.com/containerd/containerd/api/services/version/v1/version.proto",
    "k8s.io/cri-api/pkg/apis/runtime/v1/api.proto",
];

const USAGE: &str = "usage: cargo xtask codegen [--check]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["codegen"] => write(),
        ["codegen", "--check"] => check(),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn api_crate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../containerd-api")
}

/// Generates every file into `out`, which must be empty.
fn generate(out: &Path) -> Result<(), String> {
    let proto_dir = api_crate().join("proto");
    let fds = protox::Compiler::new([&proto_dir])
        .map_err(|e| format!("{}: {e}", proto_dir.display()))?
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTOS)
        .map_err(|e| format!("compiling the .proto files: {e}"))?
        .file_descriptor_set();
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(out)
        .compile_fds(fds)
        .map_err(|e| format!("generating Rust code: {e}"))
}

/// Every `.rs` file in `dir` by name, with its contents.
fn read_rs(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|x| x == "rs") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            files.insert(name.into_owned(), text);
        }
    }
    Ok(files)
}

fn temp_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("speil-codegen")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))
}

/// Replaces the committed code with freshly generated code.
fn write() -> Result<(), String> {
    let tmp = temp_dir()?;
    generate(tmp.path())?;
    let fresh = read_rs(tmp.path())?;
    let gen_dir = api_crate().join("src/gen");
    std::fs::create_dir_all(&gen_dir).map_err(|e| format!("{}: {e}", gen_dir.display()))?;
    for name in read_rs(&gen_dir)?.keys() {
        if !fresh.contains_key(name) {
            let path = gen_dir.join(name);
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    for (name, text) in &fresh {
        let path = gen_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "wrote {} files into {}",
        fresh.len(),
        gen_dir
            .canonicalize()
            .unwrap_or_else(|_| gen_dir.clone())
            .display()
    );
    Ok(())
}

/// Fails when the committed code differs from what the committed `.proto` files give.
fn check() -> Result<(), String> {
    let tmp = temp_dir()?;
    generate(tmp.path())?;
    let fresh = read_rs(tmp.path())?;
    let committed = read_rs(&api_crate().join("src/gen"))?;
    let mut stale: Vec<&str> = fresh
        .iter()
        .filter(|(name, text)| committed.get(*name) != Some(*text))
        .map(|(name, _)| name.as_str())
        .collect();
    stale.extend(
        committed
            .keys()
            .filter(|name| !fresh.contains_key(*name))
            .map(String::as_str),
    );
    if stale.is_empty() {
        println!("the generated code is up to date ({} files)", fresh.len());
        return Ok(());
    }
    Err(format!(
        "crates/containerd-api/src/gen is stale against the .proto files ({}); \
         run `cargo xtask codegen` and commit the result",
        stale.join(", ")
    ))
}
