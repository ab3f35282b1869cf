//! `speil demo`: writes a small sample image (an index over two platforms) into a local OCI
//! directory, prints how to pull it, and runs a node serving that directory.

use std::path::Path;

use anyhow::Context as _;
use clap::ArgMatches;
use clap::parser::ValueSource;
use store::layout::{self, LayoutWriter};

use crate::cli::DemoArgs;

/// The sample image's name.
pub(crate) const SAMPLE: &str = "example.com/speil/hello:1.0";

/// Writes the sample image (or an empty layout), then runs the node and, once it has started,
/// prints how to pull the image. `given` tells which flags were given: the addresses left at
/// their defaults bind loopback only, since a demo is not meant for the network.
pub(crate) fn main(mut args: DemoArgs, given: &ArgMatches) -> anyhow::Result<()> {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let run = &mut args.run;
    for (id, addr) in [
        ("registry_addr", &mut run.registry_addr),
        ("metrics_addr", &mut run.metrics_addr),
        ("router_addr", &mut run.p2p.router_addr),
    ] {
        if given.value_source(id) == Some(ValueSource::DefaultValue) {
            addr.set_ip(loopback);
        }
    }
    let written = if args.no_sample {
        LayoutWriter::open(&args.dir)
            .map(|_| ())
            .map_err(anyhow::Error::from)
    } else {
        write_sample(&args.dir)
    };
    written.with_context(|| format!("writing the demo layout to {}", args.dir.display()))?;
    let addr = args.run.registry_addr;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let origin = if args.no_sample {
        "another node (this node's layout is empty)".to_owned()
    } else {
        args.dir.display().to_string()
    };
    let announce = format!(
        "Serving {SAMPLE} from {origin}. Pull it with:\n\
         \n  skopeo copy --src-tls-verify=false --all docker://{host}:{port}/{SAMPLE} oci:/tmp/hello\n\
         \nor look at it with:\n\
         \n  curl -s http://{host}:{port}/v2/speil/hello/manifests/1.0?ns=example.com\n",
        port = addr.port(),
    );
    args.run.oci_dir = Some(args.dir);
    super::run::main(args.run, Some(announce))
}

/// Writes a two-platform image of one small layer each into `dir`, named [`SAMPLE`].
fn write_sample(dir: &Path) -> anyhow::Result<()> {
    let mut w = LayoutWriter::open(dir)?;
    let mut platforms = Vec::new();
    for arch in ["amd64", "arm64"] {
        let text = format!("Hello from Speil, {arch}!\n");
        let layer = layout::gzip_layer(&[("hello.txt", text.as_bytes())])?;
        let config = layout::image_config("linux", arch, &[layer.diff_id]);
        let layer = w.blob(oci::media_type::OCI_LAYER_TAR_GZIP, &layer.compressed)?;
        let config = w.blob(oci::media_type::OCI_CONFIG, &config)?;
        let manifest = w.manifest(&config, &[layer])?;
        platforms.push((manifest, "linux", arch));
    }
    let index = w.image_index(&platforms)?;
    w.tag(&index, SAMPLE)?;
    Ok(())
}
