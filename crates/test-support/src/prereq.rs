//! Prerequisites of tests that run real programs.
//!
//! Outside CI a test whose program is missing says so loudly and returns early; under
//! `CI=true` it fails, so a CI run can never pass by skipping.

use std::path::PathBuf;

/// The path of `program` on `PATH`, or `None` after a loud message (a panic under `CI=true`).
pub fn require(program: &str, package: &str) -> Option<PathBuf> {
    if let Some(p) = which(program) {
        return Some(p);
    }
    missing(&format!(
        "`{program}` (Debian package `{package}`); \
         run ./scripts/test.sh as root to install the test prerequisites"
    ))
}

/// `None` after a loud message that `what` is missing (a panic under `CI=true`), for
/// prerequisites that are not Debian packages.
pub fn missing<T>(what: &str) -> Option<T> {
    let msg = format!("prerequisite missing: {what}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n!!!!! SKIPPED: {msg}\n");
    None
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
