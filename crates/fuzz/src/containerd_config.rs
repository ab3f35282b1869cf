//! The target for containerd's own `config.toml`, which `speil configure` and the status read
//! from the node's file system to check that containerd will use Speil's host files.

use std::path::Path;

use containerd::checks::{self, Severity};

use crate::text;

/// `checks::check_str`. The first line is the containerd version (empty for unknown), the rest
/// the config file. Every finding names itself, says what is wrong and what to change; a file
/// that is not TOML is exactly one `config_malformed` error; checking twice finds the same.
pub(crate) fn containerd_config(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let (version, config) = s.split_once('\n').unwrap_or(("", s));
    let version = (!version.is_empty()).then_some(version);
    let hosts_dir = Path::new("/etc/containerd/certs.d");
    let findings = checks::check_str(config, hosts_dir, version);
    for f in &findings {
        assert!(
            !f.id.is_empty() && !f.message.is_empty() && !f.fix.is_empty(),
            "{f:?}"
        );
    }
    let mut ids: Vec<_> = findings.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), findings.len(), "{findings:?}");
    if config.parse::<toml_edit::DocumentMut>().is_err() {
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].id, "config_malformed");
        assert_eq!(findings[0].severity, Severity::Error);
    }
    assert_eq!(checks::check_str(config, hosts_dir, version), findings);
}
