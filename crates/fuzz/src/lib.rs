//! Fuzz targets for every parser that Speil feeds with bytes from the network or from files.
//!
//! Each target is a plain `fn(&[u8])` that parses the bytes the way Speil does and then asserts
//! the properties the parser promises, by panicking when one fails: a digest that parses has
//! the right length and hex, a parsed value prints back to text that parses to the same value,
//! a range lies within the content, a merge of host files keeps every original entry, and so on.
//! A panic is a finding. The targets are driven two ways:
//! - coverage-guided by AFL++ (`fuzz/`, outside the workspace, run by `bench/fuzz.sh`), which
//!   needs `cargo afl`; and
//! - by this crate's own tests, which replay the committed seeds and every past finding
//!   (`seeds/<target>/`, `regressions/<target>/`) and a short run of mutated seeds
//!   ([`mutate`]), so that CI keeps the targets compiling and the findings fixed.
//!
//! See docs/fuzzing.md for what each target checks and how a finding becomes a test.

mod bootstrap;
mod containerd_config;
mod hosts;
mod http;
mod manifest;
pub mod mutate;
mod names;
mod toml_view;

/// One fuzz target: a name (the directory names under `seeds/` and `regressions/` and the
/// argument of the AFL binary) and the function that checks one input.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name, as `bench/fuzz.sh` and docs/fuzzing.md list it.
    pub name: &'static str,
    /// Parses one input and panics when a property does not hold.
    pub run: fn(&[u8]),
}

/// Every target, in the order `bench/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "digest",
        run: names::digest,
    },
    Target {
        name: "reference",
        run: names::reference,
    },
    Target {
        name: "distribution_path",
        run: names::distribution_path,
    },
    Target {
        name: "range",
        run: http::range,
    },
    Target {
        name: "authorization",
        run: http::authorization,
    },
    Target {
        name: "manifest",
        run: manifest::manifest,
    },
    Target {
        name: "hosts_merge",
        run: hosts::hosts_merge,
    },
    Target {
        name: "containerd_config",
        run: containerd_config::containerd_config,
    },
    Target {
        name: "bootstrap_http",
        run: bootstrap::http_document,
    },
    Target {
        name: "bootstrap_dns",
        run: bootstrap::dns_answer,
    },
    Target {
        name: "psk_file",
        run: bootstrap::psk_file,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// The input as text, the form every text parser receives (a header value, a file read with
/// `read_to_string`); `None` for bytes that are not UTF-8, which never reach those parsers.
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
