//! `speil version`.

/// Prints the version.
pub(crate) fn main() {
    println!("speil {}", env!("CARGO_PKG_VERSION"));
}
