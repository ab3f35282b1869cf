//! The committed gRPC code in `crates/containerd-api/src/gen` is what the committed `.proto`
//! files give: a `.proto` edited without `cargo xtask codegen` (or generated code edited by
//! hand) fails here, with the files named and the command to run.

use std::process::Command;

#[test]
fn generated_code_matches_the_proto_files() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["codegen", "--check"])
        // The generator must never need protoc; make any attempt to run it fail.
        .env("PROTOC", "/bin/false")
        .output()
        .expect("running xtask");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}
