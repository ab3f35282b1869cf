//! The flags of `speil run` turned into the configurations of the router and the mirror,
//! checking what clap cannot check alone (flags that depend on each other).

use anyhow::bail;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::cli::{BootstrapKind, MirrorArgs, P2pArgs};

/// The router's configuration from its flags, checking what clap cannot.
pub(super) fn p2p_config(args: &P2pArgs) -> anyhow::Result<p2p::Config> {
    if args.provider_republish_interval >= args.provider_ttl {
        bail!(
            "--provider-republish-interval ({}) must be shorter than --provider-ttl ({}), or records expire before they are renewed",
            humantime::format_duration(args.provider_republish_interval),
            humantime::format_duration(args.provider_ttl)
        );
    }
    let missing = |flag: &str| {
        anyhow::anyhow!(
            "--bootstrap-kind {} needs {flag}",
            args.bootstrap_kind.as_str()
        )
    };
    let bootstrap = match args.bootstrap_kind {
        BootstrapKind::None => p2p::bootstrap::Source::None,
        BootstrapKind::Dns => p2p::bootstrap::Source::Dns(p2p::bootstrap::DnsSource {
            domain: args
                .dns_bootstrap_domain
                .clone()
                .ok_or_else(|| missing("--dns-bootstrap-domain"))?,
            nameserver: args.dns_bootstrap_nameserver,
        }),
        BootstrapKind::Http => p2p::bootstrap::Source::Http {
            url: args
                .http_bootstrap_url
                .clone()
                .ok_or_else(|| missing("--http-bootstrap-url"))?,
        },
        BootstrapKind::Static => {
            if args.static_bootstrap_peers.is_empty() {
                return Err(missing("--static-bootstrap-peers"));
            }
            p2p::bootstrap::Source::Static(args.static_bootstrap_peers.clone())
        }
    };
    let mut config = p2p::Config::new(args.router_addr);
    config.advertise.clone_from(&args.router_advertise_addr);
    config.data_dir.clone_from(&args.data_dir);
    config.provider_ttl = args.provider_ttl;
    config.provider_republish = args.provider_republish_interval;
    config.bootstrap = bootstrap;
    config.refresh_interval = args.bootstrap_refresh_interval;
    config.error_after = args.bootstrap_error_after;
    config.http_bootstrap_addr = args.http_bootstrap_addr;
    config.ping_interval = args.peer_ping_interval;
    config.ping_timeout = args.peer_ping_timeout;
    config.peer_cidrs.clone_from(&args.bounds.peer_cidrs);
    config.limits = args.bounds.limits();
    Ok(config)
}

/// The mirror's configuration; peers' registries listen on `--mirror-peer-port`, or on the
/// port this node's registry listens on (`registry_port`), as in a DaemonSet, and require
/// `basic_auth` as this node's does.
pub(super) fn mirror_config(
    args: &MirrorArgs,
    registry_port: u16,
    basic_auth: Option<oci::BasicAuth>,
) -> registry::mirror::Config {
    registry::mirror::Config {
        peer_port: args.mirror_peer_port.unwrap_or(registry_port),
        connect_timeout: args.mirror_connect_timeout,
        resolve_timeout: args.mirror_resolve_timeout,
        resolve_retries: usize::from(args.mirror_resolve_retries),
        quarantine: args.mirror_peer_quarantine,
        resolve_tags: args.resolve_tags,
        basic_auth,
        max_transfers: args.mirror_max_transfers as usize,
        in_flight: args.in_flight.config(),
    }
}

/// Raises the soft limit of open files to the hard limit, as Go does since 1.19: the registry's
/// connection limit, not a soft limit of 1024 set for programs that use `select`, is then what
/// a flood of connections meets. Logged at DEBUG; a failure changes nothing.
pub(super) fn raise_open_files_limit() {
    let raised = getrlimit(Resource::RLIMIT_NOFILE).and_then(|(soft, hard)| {
        if soft < hard {
            setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        }
        Ok(hard.max(soft))
    });
    match raised {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::debug!(error = %e, "could not raise the open files limit"),
    }
}
