//! A small deterministic mutator, so that `cargo test` can run every target on inputs near its
//! seeds without AFL: a seed with bytes flipped, inserted, removed, duplicated or replaced by
//! tokens the parsers care about. It is no substitute for coverage guidance; it keeps the
//! targets honest between fuzzing runs.

/// Tokens that parsers split on or compare with, inserted whole.
const TOKENS: &[&[u8]] = &[
    b":",
    b"/",
    b"@",
    b"?",
    b"&",
    b"=",
    b"%2F",
    b"..",
    b"-",
    b",",
    b"\n",
    b"\r\n",
    b" ",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b"sha256:",
    b"sha512:",
    b"bytes=",
    b"/v2/",
    b"/manifests/",
    b"/blobs/",
    b"ns=",
    b"[host.\"",
    b"\"]",
    b"=",
    b"Basic ",
    b"/p2p/",
    b"/ip4/",
    b"/tcp/",
    b"99999999999999999999999",
    b"0",
    b"e3b0",
    b"\xff",
    b"\0",
];

/// A xorshift generator: the same seed gives the same inputs on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (any value; zero is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next value below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `seed` with one to four random edits.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, rng.below(256) as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            4 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ if at < out.len() => out[at] = b"0aA:/.-_ "[rng.below(9)],
            _ => out.push(rng.below(128) as u8),
        }
    }
    out
}
