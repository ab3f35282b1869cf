//! Single byte ranges from a `Range` header: `bytes=a-b`, `bytes=a-`, `bytes=-n`.

/// A single byte range as the client wrote it, before the size of the content is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (both inclusive) or `bytes=a-` (`last` is `None`).
    FromTo {
        /// First byte offset.
        first: u64,
        /// Last byte offset, inclusive; `None` for "to the end".
        last: Option<u64>,
    },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// What a `Range` header turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeParse {
    /// One range Speil honours.
    Single(ByteRange),
    /// Malformed, multiple ranges, or another unit: serve the whole content, as RFC 9110 allows.
    Ignore,
}

/// A range that cannot be satisfied for content of the given size (answer 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable for content of {size} bytes")]
pub struct Unsatisfiable {
    /// The size of the content.
    pub size: u64,
}

impl ByteRange {
    /// Parses a `Range` header value.
    ///
    /// A last offset too large for `u64` means "to the end"; a first offset too large for `u64`
    /// can never be satisfied and becomes `u64::MAX`, which [`ByteRange::resolve`] rejects.
    pub fn parse(header: &str) -> RangeParse {
        let Some(spec) = header.trim().strip_prefix("bytes=") else {
            return RangeParse::Ignore;
        };
        let spec = spec.trim();
        if spec.contains(',') {
            return RangeParse::Ignore;
        }
        let Some((a, b)) = spec.split_once('-') else {
            return RangeParse::Ignore;
        };
        let (a, b) = (a.trim(), b.trim());
        let range = match (a.is_empty(), b.is_empty()) {
            (true, true) => return RangeParse::Ignore,
            (true, false) => match parse_saturating(b) {
                Some(n) => ByteRange::Suffix(n),
                None => return RangeParse::Ignore,
            },
            (false, _) => {
                let Some(first) = parse_saturating(a) else {
                    return RangeParse::Ignore;
                };
                let last = if b.is_empty() {
                    None
                } else {
                    match parse_saturating(b) {
                        Some(l) if l >= first => Some(l),
                        _ => return RangeParse::Ignore,
                    }
                };
                ByteRange::FromTo { first, last }
            }
        };
        RangeParse::Single(range)
    }

    /// The inclusive offsets `(first, last)` this range selects from content of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<(u64, u64), Unsatisfiable> {
        let unsatisfiable = Unsatisfiable { size };
        match self {
            ByteRange::FromTo { first, last } => {
                if first >= size {
                    return Err(unsatisfiable);
                }
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                Ok((first, last))
            }
            ByteRange::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(unsatisfiable);
                }
                Ok((size.saturating_sub(n), size - 1))
            }
        }
    }
}

/// Parses ASCII digits, saturating at `u64::MAX`; `None` for anything that is not all digits.
fn parse_saturating(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(h: &str) -> ByteRange {
        match ByteRange::parse(h) {
            RangeParse::Single(r) => r,
            RangeParse::Ignore => panic!("{h} ignored"),
        }
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(single("bytes=0-9").resolve(100), Ok((0, 9)));
        assert_eq!(single("bytes=90-").resolve(100), Ok((90, 99)));
        assert_eq!(single("bytes=-10").resolve(100), Ok((90, 99)));
        assert_eq!(single("bytes=-1000").resolve(100), Ok((0, 99)));
        assert_eq!(single("bytes=50-1000").resolve(100), Ok((50, 99)));
        assert_eq!(single(" bytes= 5 - 6 ").resolve(100), Ok((5, 6)));
    }

    #[test]
    fn unsatisfiable() {
        for h in ["bytes=100-", "bytes=100-200", "bytes=-0"] {
            assert_eq!(
                single(h).resolve(100),
                Err(Unsatisfiable { size: 100 }),
                "{h}"
            );
        }
        assert!(single("bytes=0-").resolve(0).is_err());
        assert!(single("bytes=-5").resolve(0).is_err());
    }

    #[test]
    fn huge_numbers_saturate() {
        let h = "bytes=0-99999999999999999999999999999999";
        assert_eq!(single(h).resolve(100), Ok((0, 99)));
        let h = "bytes=99999999999999999999999999999999-";
        assert!(single(h).resolve(u64::MAX).is_err());
        let h = "bytes=-99999999999999999999999999999999";
        assert_eq!(single(h).resolve(7), Ok((0, 6)));
    }

    #[test]
    fn malformed_and_multiple_ranges_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=0x10-",
        ] {
            assert_eq!(ByteRange::parse(h), RangeParse::Ignore, "{h}");
        }
    }
}
