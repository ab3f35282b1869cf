//! `speil configure`: writes containerd's registry host files so containerd asks Speil first.

use anyhow::Context as _;

use crate::cli::ConfigureArgs;

/// Writes the host files and says which.
pub(crate) fn main(args: ConfigureArgs) -> anyhow::Result<()> {
    let basic_auth = crate::cli::basic_auth(args.basic_auth_file.as_deref())?;
    let config = containerd::hosts::Config {
        config_path: args.containerd_registry_config_path.clone(),
        registries: args
            .mirrored_registries
            .iter()
            .map(|(r, _)| r.clone())
            .collect(),
        plain_http: args
            .mirrored_registries
            .iter()
            .filter(|(_, plain)| *plain)
            .map(|(r, _)| r.clone())
            .collect(),
        mirror_targets: args.mirror_targets,
        resolve_tags: args.resolve_tags,
        prepend_existing: args.prepend_existing,
        basic_auth,
        dial_timeout: args.dial_timeout,
    };
    let report = containerd::hosts::configure(&config).with_context(|| {
        format!(
            "--containerd-registry-config-path {}",
            args.containerd_registry_config_path.display()
        )
    })?;
    for file in &report.written {
        println!("wrote {}", file.display());
    }
    Ok(())
}
