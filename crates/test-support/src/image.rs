//! Generated test images: gzip layers of random, incompressible files of chosen sizes, as single-platform
//! images or two-platform indexes, written into OCI image-layout directories.

use std::io::{self, Read};
use std::path::Path;

use oci::manifest::Descriptor;
use oci::{Digest, media_type};
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use store::layout::{self, LayoutWriter};

/// What was written for one image.
#[derive(Debug, Clone)]
pub struct Written {
    /// The descriptor of the image's manifest or index (what the name points at).
    pub top: Descriptor,
    /// Every digest the image consists of, top first.
    pub digests: Vec<Digest>,
    /// The layers, per platform.
    pub layers: Vec<Descriptor>,
}

/// Writes a single-platform image named `name` whose layers are tars of one random file each,
/// of the given sizes.
pub fn write_image(
    dir: &Path,
    name: &str,
    layer_sizes: &[usize],
    seed: u64,
) -> io::Result<Written> {
    let mut w = LayoutWriter::open(dir)?;
    let (manifest, mut digests, layers) = platform(&mut w, "amd64", layer_sizes, seed)?;
    w.tag(&manifest, name)?;
    digests.insert(0, manifest.digest.clone());
    Ok(Written {
        top: manifest,
        digests,
        layers,
    })
}

/// Writes a two-platform (linux/amd64, linux/arm64) image index named `name`.
pub fn write_index(
    dir: &Path,
    name: &str,
    layer_sizes: &[usize],
    seed: u64,
) -> io::Result<Written> {
    let mut w = LayoutWriter::open(dir)?;
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    let mut all_layers = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let (m, d, layers) = platform(
            &mut w,
            arch,
            layer_sizes,
            seed.wrapping_add(i as u64 * 7919),
        )?;
        digests.push(m.digest.clone());
        digests.extend(d);
        all_layers.extend(layers);
        entries.push((m, "linux", arch));
    }
    let index = w.image_index(&entries)?;
    w.tag(&index, name)?;
    digests.insert(0, index.digest.clone());
    Ok(Written {
        top: index,
        digests,
        layers: all_layers,
    })
}

type Platform = (Descriptor, Vec<Digest>, Vec<Descriptor>);

fn platform(w: &mut LayoutWriter, arch: &str, sizes: &[usize], seed: u64) -> io::Result<Platform> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let mut data = vec![0u8; size];
        rng.fill_bytes(&mut data);
        let layer = layout::gzip_layer(&[(&format!("data-{i}.bin"), &data)])?;
        diff_ids.push(layer.diff_id);
        layers.push(w.blob(media_type::OCI_LAYER_TAR_GZIP, &layer.compressed)?);
    }
    let config = layout::image_config("linux", arch, &diff_ids);
    let config = w.blob(media_type::OCI_CONFIG, &config)?;
    let manifest = w.manifest(&config, &layers)?;
    let mut digests = vec![config.digest.clone()];
    digests.extend(layers.iter().map(|l| l.digest.clone()));
    Ok((manifest, digests, layers))
}

/// Writes a blob of `size` random bytes (streamed, never all in memory) into the layout at `dir`,
/// without naming it in `index.json`.
pub fn write_random_blob(dir: &Path, size: u64, seed: u64) -> io::Result<Descriptor> {
    let mut w = LayoutWriter::open(dir)?;
    let reader = RandomReader {
        rng: rand::rngs::StdRng::seed_from_u64(seed),
        left: size,
    };
    w.blob_from(media_type::OCI_LAYER_TAR, reader)
}

struct RandomReader {
    rng: rand::rngs::StdRng,
    left: u64,
}

impl Read for RandomReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.rng.fill_bytes(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A random seed for tests that do not need reproducible content.
pub fn any_seed() -> u64 {
    rand::rng().random()
}
