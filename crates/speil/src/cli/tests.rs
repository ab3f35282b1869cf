//! The command line's own tests: its shape, the env rule, and the refusals of bad values.

use super::*;
use clap::CommandFactory as _;

#[test]
fn cli_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn bad_values_name_their_flag() {
    for (flag, value) in [
        ("--registry-addr", "nowhere"),
        ("--metrics-addr", "1.2.3.4"),
        ("--log-format", "xml"),
        ("--store-poll-interval", "soon"),
        ("--log-level", "info,=x=y"),
        ("--router-addr", "5001"),
        ("--static-bootstrap-peers", "10.0.0.1:5001"),
        ("--http-bootstrap-url", "speil:5002/id"),
        ("--bootstrap-kind", "mdns"),
        ("--bootstrap-error-after", "later"),
        ("--mirrored-registries", "https://exa mple.com"),
        ("--mirror-resolve-retries", "0"),
        ("--resolve-tags", "maybe"),
        ("--mirror-resolve-timeout", "fast"),
        ("--peer-cidrs", "10.0.0.0/33"),
        ("--peer-cidrs", "nodes"),
        ("--p2p-max-connections", "0"),
        ("--p2p-max-lookups", "many"),
    ] {
        let err = Cli::try_parse_from(["speil", "run", flag, value]).unwrap_err();
        assert!(err.to_string().contains(flag), "{flag}: {err}");
    }
}

#[test]
fn router_bounds_reach_the_router() {
    let cli = Cli::try_parse_from([
        "speil",
        "run",
        "--peer-cidrs",
        "10.0.0.0/16, fd00::/8",
        "--p2p-max-dials-per-lookup",
        "0",
        "--p2p-max-connections",
        "64",
    ])
    .unwrap();
    let Command::Run(run) = cli.command else {
        panic!("not run")
    };
    let bounds = &run.p2p.bounds;
    let cidrs: Vec<String> = bounds.peer_cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(cidrs, ["10.0.0.0/16", "fd00::/8"]);
    let limits = bounds.limits();
    assert_eq!(limits.max_dials_per_lookup, 0);
    assert_eq!(limits.max_connections, 64);
    assert_eq!(limits.max_lookups, p2p::Limits::default().max_lookups);
}

/// One rule for every flag of every subcommand: `--some-flag` reads `SPEIL_SOME_FLAG`, and
/// `--help` shows the name (clap prints `[env: …]` beside each flag).
#[test]
fn every_flag_reads_speil_and_its_name() {
    let cli = Cli::command();
    let mut checked = 0;
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let want = format!("SPEIL_{}", long.to_uppercase().replace('-', "_"));
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert_eq!(
                env.as_deref(),
                Some(want.as_str()),
                "speil {} --{long}",
                sub.get_name()
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} flags seen");
}

#[test]
fn a_mistyped_log_level_is_refused() {
    for bad in [
        "debgu",
        "inf",
        "info,registry=verbose",
        "registry",
        "info,libp2p",
    ] {
        let err = Cli::try_parse_from(["speil", "run", "--log-level", bad]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--log-level") && text.contains("not a log level"),
            "{bad}: {text}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    for good in [
        "debug",
        "WARN",
        "info,registry=debug",
        "warn,libp2p_kad=trace,p2p=debug",
    ] {
        Cli::try_parse_from(["speil", "run", "--log-level", good]).unwrap();
    }
}

#[test]
fn addresses_say_what_form_is_expected() {
    let err =
        Cli::try_parse_from(["speil", "run", "--registry-addr", "localhost:5000"]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("--registry-addr") && text.contains("IP:PORT") && text.contains("host name"),
        "{text}"
    );
    let err = Cli::try_parse_from(["speil", "status", "--addr", "http://127.0.0.1:9090/status"])
        .unwrap_err();
    assert!(err.to_string().contains("leave out '/status'"), "{err}");
}

#[test]
fn oci_dir_must_be_a_layout() {
    let missing = Cli::try_parse_from(["speil", "run", "--oci-dir", "/nonexistent"]).unwrap_err();
    let text = missing.to_string();
    assert!(
        text.contains("--oci-dir") && text.contains("no such directory"),
        "{text}"
    );
    assert_eq!(text.matches("/nonexistent").count(), 1, "{text}");
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let err = Cli::try_parse_from(["speil", "run", "--oci-dir", dir]).unwrap_err();
    assert!(err.to_string().contains("no oci-layout file"), "{err}");
}

#[test]
fn status_wants_the_metrics_address_as_a_url() {
    for bad in [
        "127.0.0.1:9090",
        "https://node:9090",
        "http://node:9090/status",
        "nowhere",
    ] {
        let err = Cli::try_parse_from(["speil", "status", "--addr", bad]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--addr") && text.contains("http://127.0.0.1:9090"),
            "{bad}: {text}"
        );
    }
    let ok = Cli::try_parse_from(["speil", "status", "--addr", "http://10.0.0.5:9090/"]).unwrap();
    let Command::Status(args) = ok.command else {
        panic!("not status")
    };
    assert_eq!(args.addr, "http://10.0.0.5:9090");
}

#[test]
fn a_bootstrap_kind_requires_its_source() {
    for (kind, flag) in [
        ("dns", "--dns-bootstrap-domain"),
        ("http", "--http-bootstrap-url"),
        ("static", "--static-bootstrap-peers"),
    ] {
        let err = Cli::try_parse_from(["speil", "run", "--bootstrap-kind", kind]).unwrap_err();
        assert!(err.to_string().contains(flag), "{kind}: {err}");
    }
}

#[test]
fn a_malformed_psk_file_is_refused_naming_the_flag_and_file_not_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swarm.key");
    let secret = "/key/swarm/psk/1.0.0/\n/base16/\nsecretsecretsecret\n";
    std::fs::write(&file, secret).unwrap();
    let err = p2p_psk(Some(&file)).unwrap_err();
    let text = format!("{err:#}");
    assert!(err.downcast_ref::<BadValue>().is_some(), "exit 2: {text}");
    assert!(
        text.contains("--p2p-psk-file") && text.contains(&*file.to_string_lossy()),
        "{text}"
    );
    assert!(
        text.contains("64 hex digits") && !text.contains("secretsecret"),
        "{text}"
    );
    let missing = p2p_psk(Some(&dir.path().join("absent"))).unwrap_err();
    assert!(
        format!("{missing:#}").contains("--p2p-psk-file"),
        "{missing:#}"
    );
    let good = format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "ab".repeat(32));
    std::fs::write(&file, good).unwrap();
    assert!(p2p_psk(Some(&file)).unwrap().is_some());
    assert!(p2p_psk(None).unwrap().is_none());
}
