//! Targets for the request headers the registry reads: `Range` (resolved against the size of the
//! content) and `Authorization` (checked against the credentials of a basic-auth file).

use base64::Engine as _;
use oci::{BasicAuth, ByteRange, RangeParse, Unsatisfiable};

use crate::text;

/// `ByteRange::parse` and `resolve`. The first 8 bytes are the content's size (little endian,
/// fewer bytes give a small size), the rest the header. A range that resolves lies within the
/// content and selects what the header asked for; one that does not is one the header made
/// impossible; a list of ranges is ignored; the canonical form parses to the same range.
pub(crate) fn range(data: &[u8]) {
    let (size, header) = split_size(data);
    let Some(header) = text(header) else { return };
    let RangeParse::Single(r) = ByteRange::parse(header) else {
        return;
    };
    assert!(!header.contains(','), "{header:?} is a list of ranges");
    let canonical = match r {
        ByteRange::FromTo { first, last } => {
            format!(
                "bytes={first}-{}",
                last.map(|l| l.to_string()).unwrap_or_default()
            )
        }
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    };
    assert_eq!(
        ByteRange::parse(&canonical),
        RangeParse::Single(r),
        "{canonical}"
    );
    match (r, r.resolve(size)) {
        (_, Ok((first, last))) => {
            assert!(
                first <= last && last < size,
                "{r:?} in {size}: {first}-{last}"
            );
            match r {
                ByteRange::FromTo { first: f, last: l } => {
                    assert_eq!(first, f);
                    assert_eq!(last, l.map_or(size - 1, |l| l.min(size - 1)));
                }
                ByteRange::Suffix(n) => {
                    assert_eq!(last, size - 1);
                    assert_eq!(last - first + 1, n.min(size));
                }
            }
        }
        (ByteRange::FromTo { first, last }, Err(Unsatisfiable { size: s })) => {
            assert_eq!(s, size);
            assert!(first >= size, "{first}-{last:?} refused for {size}");
            assert!(last.is_none_or(|l| l >= first));
        }
        (ByteRange::Suffix(n), Err(Unsatisfiable { size: s })) => {
            assert_eq!(s, size);
            assert!(n == 0 || size == 0, "-{n} refused for {size}");
        }
    }
}

/// The size in the first 8 bytes of `data` and the rest.
fn split_size(data: &[u8]) -> (u64, &[u8]) {
    let n = data.len().min(8);
    let mut size = [0u8; 8];
    size[..n].copy_from_slice(&data[..n]);
    (u64::from_le_bytes(size), &data[n..])
}

/// The credentials every request is checked against in the second half of the target.
const CREDENTIALS: &str = "speil:s3cr3t:pw";

/// `BasicAuth::parse` (a `--basic-auth-file`) and `BasicAuth::accepts` (an `Authorization`
/// header). An input starting with an even byte is a file: what parses makes a header that
/// carries exactly the trimmed file and is accepted, in any case of the scheme, and refused with
/// any byte of the token changed. An odd first byte makes the rest a header, checked against
/// fixed credentials: it is accepted only when it is the `Basic` scheme with their token.
pub(crate) fn authorization(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        basic_auth_file(rest);
    } else {
        let auth = BasicAuth::parse(CREDENTIALS).unwrap();
        if auth.accepts(rest) {
            let token = base64::engine::general_purpose::STANDARD.encode(CREDENTIALS);
            let space = rest.iter().position(|b| *b == b' ').unwrap();
            let (scheme, presented) = rest.split_at(space);
            assert!(scheme.eq_ignore_ascii_case(b"basic"));
            assert_eq!(presented.trim_ascii(), token.as_bytes());
        }
    }
}

fn basic_auth_file(data: &[u8]) {
    let Some(content) = text(data) else { return };
    let Ok(auth) = BasicAuth::parse(content) else {
        return;
    };
    let trimmed = content.trim();
    let (user, _) = trimmed.split_once(':').expect("user:password");
    assert!(!user.is_empty() && !trimmed.contains(['\r', '\n']));
    let header = auth.header_value();
    let token = header.strip_prefix("Basic ").expect("Basic scheme");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    assert_eq!(decoded, trimmed.as_bytes());
    assert!(auth.accepts(header.as_bytes()));
    assert!(auth.accepts(format!("bASIC {token}").as_bytes()));
    let mut wrong = header.as_bytes().to_vec();
    let last = wrong.len() - 1;
    wrong[last] ^= 1;
    assert!(!auth.accepts(&wrong));
}
