//! The checks of containerd as a node sees it: whether it answers, its configuration findings,
//! and whether Speil's host files send its pulls to this node.

use super::{Check, Doc, Level, bad, ok, plural, section};

pub(super) fn containerd(doc: &Doc) -> Vec<Check> {
    let Some(c) = &doc.containerd else {
        return vec![Check {
            name: "containerd".into(),
            level: Level::Skip,
            summary: format!(
                "not checked: this node serves {} {}",
                doc.store.kind, doc.store.location
            ),
            fix: None,
            doc: None,
        }];
    };
    let mut checks = vec![host_files(doc, c)];
    match &c.version {
        None => checks.push(bad(
            "containerd",
            Level::Fail,
            format!(
                "containerd does not answer at {}: what it pulls now is neither served nor advertised",
                doc.store.location
            ),
            "check that containerd runs and that --containerd-sock is its socket; the node reconnects on its own",
            section::CONTAINERD_DOWN,
        )),
        Some(version) if c.findings.is_empty() => checks.push(ok(
            "containerd",
            format!("{version}: no known misconfiguration in {}", c.config),
        )),
        Some(_) => {}
    }
    for f in &c.findings {
        let section = if f.id == "discard_unpacked_layers" {
            section::DISCARD
        } else {
            section::NOT_USED
        };
        let level = if f.severity == "error" {
            Level::Fail
        } else {
            Level::Warn
        };
        checks.push(bad(
            &format!("containerd:{}", f.id),
            level,
            f.message.clone(),
            &f.fix,
            section,
        ));
    }
    checks
}

fn host_files(doc: &Doc, c: &crate::status::Containerd) -> Check {
    let fix = format!(
        "run `speil configure --containerd-registry-config-path {} --mirror-targets http://<this node's IP>:{}` (the DaemonSet's init container does)",
        c.registry_config_path,
        doc.node.registry_addr.rsplit(':').next().unwrap_or("5000")
    );
    if c.host_files.is_empty() {
        return bad(
            "host_files",
            Level::Fail,
            format!(
                "no Speil host file in {}: containerd does not ask this node",
                c.registry_config_path
            ),
            &fix,
            section::NOT_USED,
        );
    }
    let registries: Vec<&str> = c.host_files.iter().map(|f| f.registry.as_str()).collect();
    let missing: Vec<&str> = c
        .host_files
        .iter()
        .filter(|f| !f.hosts.iter().any(|h| h.this_node))
        .map(|f| f.registry.as_str())
        .collect();
    if missing.is_empty() {
        let here: Vec<&str> = c
            .host_files
            .iter()
            .flat_map(|f| f.hosts.iter().filter(|h| h.this_node))
            .map(|h| h.url.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return ok(
            "host_files",
            format!(
                "{} ({}) point at this node: {}",
                plural(registries.len(), "registry", "registries"),
                registries.join(", "),
                here.join(", ")
            ),
        );
    }
    let why: Vec<String> = c
        .host_files
        .iter()
        .filter(|f| missing.contains(&f.registry.as_str()))
        .flat_map(|f| f.hosts.iter())
        .map(|h| {
            format!(
                "{} {}",
                h.url,
                h.probe.as_deref().unwrap_or("is not this node")
            )
        })
        .collect();
    bad(
        "host_files",
        Level::Fail,
        format!(
            "the host files of {} lead elsewhere: {}",
            missing.join(", "),
            why.join("; ")
        ),
        &fix,
        section::NOT_USED,
    )
}
