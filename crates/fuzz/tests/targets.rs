//! Every fuzz target on the committed seeds, on every past finding (`regressions/<target>/`, one
//! file per finding, named after what it found) and on mutations of the seeds, so CI keeps the
//! targets compiling and the findings fixed. `FUZZ_MUTATIONS` sets how many mutated inputs each
//! target gets (default 500).

use std::path::{Path, PathBuf};

use fuzz::mutate::{Rng, mutate};
use fuzz::{TARGETS, Target};

/// The files of `crates/fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target);
    let Ok(list) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = list.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Runs `target` on `input`, naming the file when a property fails.
fn run(target: Target, input: &[u8], what: &dyn std::fmt::Display) {
    let result = std::panic::catch_unwind(|| (target.run)(input));
    if let Err(panic) = result {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("");
        panic!(
            "{} on {what}: {message}\ninput: {:?}",
            target.name,
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn every_target_has_seeds() {
    for t in TARGETS {
        assert!(
            !inputs("seeds", t.name).is_empty(),
            "no seeds for {}",
            t.name
        );
    }
}

#[test]
fn seeds_and_regressions_keep_every_property() {
    for t in TARGETS {
        for file in inputs("seeds", t.name)
            .into_iter()
            .chain(inputs("regressions", t.name))
        {
            run(*t, &std::fs::read(&file).unwrap(), &file.display());
        }
    }
}

#[test]
fn mutated_seeds_keep_every_property() {
    let rounds: usize = std::env::var("FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    for t in TARGETS {
        let seeds: Vec<Vec<u8>> = inputs("seeds", t.name)
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        let mut rng = Rng::new(0x5be1_1f00d);
        for i in 0..rounds {
            let input = mutate(&seeds[i % seeds.len()], &mut rng);
            run(*t, &input, &format_args!("mutation {i}"));
        }
    }
}
