//! Writes generated content into an OCI image layout, for benchmarks and manual testing.
//!
//! ```text
//! gen-layout DIR image NAME SIZE...   # an image with one random layer per SIZE; prints its digest
//! gen-layout DIR index NAME SIZE...   # a two-platform index; prints its digest
//! gen-layout DIR blob SIZE            # one random blob not named in index.json; prints its digest
//! ```
//!
//! Sizes are bytes, or with a suffix: `512KiB`, `64MiB`, `1GiB`.

use std::path::PathBuf;
use std::process::ExitCode;

fn size(s: &str) -> Result<u64, String> {
    let (num, mult) = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        .iter()
        .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|e| format!("size {s:?}: {e}"))
}

fn run(args: &[String]) -> Result<String, String> {
    let usage = "usage: gen-layout DIR (image NAME SIZE... | index NAME SIZE... | blob SIZE)";
    let [dir, what, rest @ ..] = args else {
        return Err(usage.into());
    };
    let dir = PathBuf::from(dir);
    let seed = test_support::image::any_seed();
    let sizes = |s: &[String]| -> Result<Vec<usize>, String> {
        s.iter().map(|x| size(x).map(|n| n as usize)).collect()
    };
    let written = match (what.as_str(), rest) {
        ("image", [name, s @ ..]) if !s.is_empty() => {
            test_support::image::write_image(&dir, name, &sizes(s)?, seed).map(|w| w.top)
        }
        ("index", [name, s @ ..]) if !s.is_empty() => {
            test_support::image::write_index(&dir, name, &sizes(s)?, seed).map(|w| w.top)
        }
        ("blob", [s]) => test_support::image::write_random_blob(&dir, size(s)?, seed),
        _ => return Err(usage.into()),
    };
    written
        .map(|d| d.digest.to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(digest) => {
            println!("{digest}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-layout: {e}");
            ExitCode::from(2)
        }
    }
}
