//! The AFL++ harness: `speil-fuzz-afl <target>` runs one target of `crates/fuzz` in AFL's
//! persistent mode, on the inputs afl-fuzz hands it. A panic (a failed property) is a crash.
//! `speil-fuzz-afl --list` prints the targets.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    if name == "--list" {
        fuzz::TARGETS.iter().for_each(|t| println!("{}", t.name));
        return;
    }
    let Some(target) = fuzz::target(&name) else {
        let names: Vec<&str> = fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: speil-fuzz-afl <target>; targets: {}",
            names.join(" ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| (target.run)(data));
}
