//! Request-target canonicalisation, done (as HTTP.sys does it) before routing.
//!
//! [`canonicalize`] splits a request target into path, query and (for absolute-form) authority,
//! then canonicalises the path:
//!
//! 1. `%XX` escapes are decoded (hex in any case); a malformed or truncated escape is refused;
//! 2. the decoded bytes must be UTF-8;
//! 3. decoded control characters (U+0000–U+001F, U+007F, U+0080–U+009F) are refused unless
//!    [`UrlLimits::allow_restricted_chars`] is set (raw control bytes are always refused);
//! 4. `\` and `%5C` become `/`, and `%2F` is a separator like `/` (so `/base` and
//!    `//\/%2F%5Cbase` are the same path, as in HTTP.sys);
//! 5. runs of `/` collapse; `.` segments go; `..` removes the segment before it but never climbs
//!    above the root; a trailing `/` is kept;
//! 6. the result is checked against the segment limits ([`Reason::UrlLength`]).
//!
//! The query is returned as sent (still percent-encoded). Every refusal is a [`Rejection`] whose
//! detail says exactly what was wrong.
//!
//! ```
//! use httpq_core::canonical::{canonicalize, UrlLimits};
//!
//! let t = canonicalize(b"//a/./b/../%63%5Cd?x=%20", &UrlLimits::default())?;
//! assert_eq!(t.path, "/a/c/d");
//! assert_eq!(t.query.as_deref(), Some("x=%20"));
//! assert_eq!(t.authority, None);
//! # Ok::<(), httpq_core::Rejection>(())
//! ```

use crate::reason::{Reason, Rejection};
use std::borrow::Cow;

/// Limits applied to the canonical path (HTTP.sys `UrlSegmentMaxLength`, `UrlSegmentMaxCount`,
/// `AllowRestrictedChars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlLimits {
    /// Longest path segment, in characters (default 260; 0 = unlimited).
    pub segment_max_length: usize,
    /// Most path segments (default 255; 0 = unlimited).
    pub segment_max_count: usize,
    /// Accept percent-escapes that decode to control characters (default false).
    pub allow_restricted_chars: bool,
}

impl UrlLimits {
    /// No segment limits, restricted characters refused: what prefix paths are checked with.
    const PREFIX: UrlLimits = UrlLimits {
        segment_max_length: 0,
        segment_max_count: 0,
        allow_restricted_chars: false,
    };
}

impl Default for UrlLimits {
    /// HTTP.sys's defaults: 260 characters per segment, 255 segments, restricted chars refused.
    fn default() -> Self {
        UrlLimits {
            segment_max_length: 260,
            segment_max_count: 255,
            allow_restricted_chars: false,
        }
    }
}

/// A canonicalised request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalTarget<'a> {
    /// The canonical, decoded path: starts with `/` (or is `*` for asterisk-form), no `//`, no
    /// dot segments, no `\`. Borrowed from the target when it was already canonical.
    pub path: Cow<'a, str>,
    /// The query as sent, without the `?` and still percent-encoded; `None` when there was no `?`.
    pub query: Option<Cow<'a, str>>,
    /// The `host[:port]` of an absolute-form target (`http://host:port/p`); `None` otherwise.
    pub authority: Option<String>,
}

/// Canonicalises a request target: origin-form (`/p?q`), absolute-form (`http://host[:port]/p?q`,
/// also `https`) or asterisk-form (`*`).
///
/// ```
/// use httpq_core::canonical::{canonicalize, UrlLimits};
/// use httpq_core::Reason;
///
/// let limits = UrlLimits::default();
/// let t = canonicalize(b"HTTP://Example.com:8080?q", &limits)?;
/// assert_eq!((&*t.path, t.authority.as_deref()), ("/", Some("Example.com:8080")));
///
/// assert_eq!(canonicalize(b"/a%G1", &limits).unwrap_err().reason, Reason::Url);
/// # Ok::<(), httpq_core::Rejection>(())
/// ```
///
/// # Errors
///
/// [`Reason::Url`] for a target that cannot be parsed or decoded (bad form, raw control byte,
/// raw space, fragment, malformed escape, not UTF-8, restricted character),
/// [`Reason::Hostname`] for a malformed absolute-form authority, and [`Reason::UrlLength`] when
/// the canonical path breaks a segment limit.
pub fn canonicalize<'a>(
    target: &'a [u8],
    limits: &UrlLimits,
) -> Result<CanonicalTarget<'a>, Rejection> {
    match plain_origin_form(target, limits) {
        Some(fast) => Ok(fast),
        None => canonicalize_full(target, limits),
    }
}

/// Every rule, for targets the one-pass check does not take.
fn canonicalize_full<'a>(
    target: &'a [u8],
    limits: &UrlLimits,
) -> Result<CanonicalTarget<'a>, Rejection> {
    let url = |detail: String| Rejection::new(Reason::Url, detail);
    if target.is_empty() {
        return Err(Rejection::new(Reason::Url, "the request target is empty"));
    }
    check_raw(target).map_err(url)?;
    if target == b"*" {
        return Ok(CanonicalTarget {
            path: Cow::Borrowed("*"),
            query: None,
            authority: None,
        });
    }
    let (authority, rest, rest_at) = match target[0] {
        b'/' => (None, target, 0),
        b'*' => {
            return Err(Rejection::new(
                Reason::Url,
                "an asterisk-form request target must be exactly \"*\"",
            ));
        }
        _ => {
            let (authority, at) = absolute_form(target)?;
            (Some(authority), &target[at..], at)
        }
    };
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let path = if path.is_empty() {
        Cow::Borrowed("/")
    } else {
        canonical_path(path, rest_at, limits).map_err(url)?
    };
    check_limits(&path, limits)?;
    let query = match query {
        None => None,
        Some(q) => Some(Cow::Borrowed(
            std::str::from_utf8(q)
                .map_err(|e| {
                    url(format!(
                        "the query is not valid UTF-8 (invalid byte at offset {} of the request target); percent-encode non-UTF-8 bytes",
                        rest_at + (rest.len() - q.len()) + e.valid_up_to()
                    ))
                })?,
        )),
    };
    Ok(CanonicalTarget {
        path,
        query,
        authority,
    })
}

/// The common case in one pass: an origin-form target of printable ASCII whose path has no
/// `%`, `\\`, empty segment or dot segment, within the segment limits. It is already canonical,
/// so the result borrows it. `None` sends anything else through the full rules.
fn plain_origin_form<'a>(target: &'a [u8], limits: &UrlLimits) -> Option<CanonicalTarget<'a>> {
    if target.first() != Some(&b'/') {
        return None;
    }
    let (max_len, max_count) = (limits.segment_max_length, limits.segment_max_count);
    let mut seg_start = 1;
    let mut count = 0usize;
    let mut path_end = target.len();
    let mut end_segment = |start: usize, end: usize| -> bool {
        let seg = &target[start..end];
        count += 1;
        !is_dot_segment(seg) && (max_len == 0 || seg.len() <= max_len)
    };
    for (i, &b) in target.iter().enumerate().skip(1) {
        match b {
            b'/' => {
                if i == seg_start || !end_segment(seg_start, i) {
                    return None;
                }
                seg_start = i + 1;
            }
            b'?' => {
                path_end = i;
                break;
            }
            b'%' | b'\\' | b'#' => return None,
            0x21..=0x7E => {}
            _ => return None,
        }
    }
    if seg_start < path_end && !end_segment(seg_start, path_end) {
        return None;
    }
    if max_count != 0 && count > max_count {
        return None;
    }
    let query = if path_end < target.len() {
        let q = &target[path_end + 1..];
        if !q.iter().all(|&b| (0x21..=0x7E).contains(&b) && b != b'#') {
            return None;
        }
        Some(Cow::Borrowed(std::str::from_utf8(q).ok()?))
    } else {
        None
    };
    Some(CanonicalTarget {
        path: Cow::Borrowed(std::str::from_utf8(&target[..path_end]).ok()?),
        query,
        authority: None,
    })
}

/// Canonicalises the path of a URL prefix (starts with `/`; `?` and `#` already refused). Raw
/// spaces and control bytes are refused; no segment limits apply. The error says what is wrong.
pub(crate) fn canonicalize_prefix_path(path: &str) -> Result<String, String> {
    check_raw(path.as_bytes())?;
    canonical_path(path.as_bytes(), 0, &UrlLimits::PREFIX).map(Cow::into_owned)
}

/// Splits an absolute-form target: returns the authority and where the path starts.
fn absolute_form(target: &[u8]) -> Result<(String, usize), Rejection> {
    let starts = |scheme: &[u8]| {
        target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme)
    };
    let scheme_len = if starts(b"http://") {
        7
    } else if starts(b"https://") {
        8
    } else {
        return Err(Rejection::new(
            Reason::Url,
            "the request target must start with '/' (origin-form), be an absolute http:// or https:// URL, or be exactly \"*\"",
        ));
    };
    let after = &target[scheme_len..];
    let end = after
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after.len());
    let authority = &after[..end];
    if authority.is_empty() {
        return Err(Rejection::new(
            Reason::Url,
            "the absolute-form request target has no host after \"://\"",
        ));
    }
    let Ok(authority) = std::str::from_utf8(authority) else {
        return Err(Rejection::new(
            Reason::Hostname,
            "the host of the absolute-form request target is not valid UTF-8",
        ));
    };
    crate::router::split_host_port(authority)?;
    Ok((authority.to_owned(), scheme_len + end))
}

/// Refuses raw control bytes, raw spaces and `#` anywhere.
fn check_raw(bytes: &[u8]) -> Result<(), String> {
    let Some(at) = bytes
        .iter()
        .position(|&b| b <= b' ' || b == 0x7F || b == b'#')
    else {
        return Ok(());
    };
    Err(match bytes[at] {
        b'#' => format!(
            "a fragment ('#' at byte offset {at}) is not allowed in a request target; clients must strip everything from '#' on"
        ),
        b' ' => format!("a raw space at byte offset {at}; percent-encode it as %20"),
        b => format!(
            "a raw control byte 0x{b:02X} at byte offset {at}; control characters are never allowed unescaped"
        ),
    })
}

/// Canonicalises a path that starts with `/` and holds no raw control bytes. `base` is the
/// path's offset in the request target, for messages.
fn canonical_path<'a>(
    path: &'a [u8],
    base: usize,
    limits: &UrlLimits,
) -> Result<Cow<'a, str>, String> {
    if is_plain(path) {
        // Fast path: already canonical, so validate and borrow.
        let s = std::str::from_utf8(path).map_err(|e| not_utf8(e.valid_up_to()))?;
        if !limits.allow_restricted_chars && !s.is_ascii() {
            check_restricted(s)?;
        }
        return Ok(Cow::Borrowed(s));
    }
    let decoded = decode(path, base)?;
    let decoded = String::from_utf8(decoded).map_err(|e| not_utf8(e.utf8_error().valid_up_to()))?;
    if !limits.allow_restricted_chars {
        check_restricted(&decoded)?;
    }
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// Whether `path` (starting with `/`) is already canonical as far as structure goes: no `%`, no
/// `\`, no empty segment (`//`) and no `.` / `..` segment.
fn is_plain(path: &[u8]) -> bool {
    let mut seg_start = 1;
    for (i, &b) in path.iter().enumerate().skip(1) {
        match b {
            b'%' | b'\\' => return false,
            b'/' => {
                if i == seg_start || is_dot_segment(&path[seg_start..i]) {
                    return false;
                }
                seg_start = i + 1;
            }
            _ => {}
        }
    }
    !is_dot_segment(&path[seg_start.min(path.len())..])
}

fn is_dot_segment(seg: &[u8]) -> bool {
    seg == b"." || seg == b".."
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `path`, turning `\` and `%5C` into `/`.
fn decode(path: &[u8], base: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let next = path[i..]
            .iter()
            .position(|&b| b == b'%' || b == b'\\')
            .map_or(path.len(), |p| i + p);
        out.extend_from_slice(&path[i..next]);
        i = next;
        match path.get(i) {
            None => break,
            Some(b'\\') => {
                out.push(b'/');
                i += 1;
            }
            Some(_) => {
                let hi = path.get(i + 1).copied().and_then(hex);
                let lo = path.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(bad_escape(path, i, base));
                };
                let byte = (hi << 4) | lo;
                out.push(if byte == b'\\' { b'/' } else { byte });
                i += 3;
            }
        }
    }
    Ok(out)
}

fn bad_escape(path: &[u8], at: usize, base: usize) -> String {
    let escape = &path[at..(at + 3).min(path.len())];
    let truncated = escape.len() < 3 && escape[1..].iter().all(|&b| hex(b).is_some());
    let what = if truncated { "truncated" } else { "malformed" };
    format!(
        "{what} percent-escape \"{}\" at byte offset {}; a '%' must be followed by two hex digits (write a literal '%' as %25)",
        escape.escape_ascii(),
        base + at
    )
}

fn not_utf8(at: usize) -> String {
    format!(
        "the path is not valid UTF-8 after percent-decoding (invalid byte at offset {at} of the decoded path); encode paths as UTF-8"
    )
}

fn is_restricted(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

/// Refuses control characters (C0, DEL, C1) in the decoded path.
fn check_restricted(s: &str) -> Result<(), String> {
    match s.char_indices().find(|&(_, c)| is_restricted(c)) {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "the decoded path contains the control character U+{:04X} at byte offset {at} of the decoded path; control characters are refused unless allow_restricted_chars is set",
            u32::from(c)
        )),
    }
}

/// Collapses `//`, removes `.` segments and resolves `..` (never above the root), keeping a
/// trailing `/`. `s` starts with `/`.
fn remove_dot_segments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    out.push('/');
    let mut trailing_slash = false;
    for seg in s[1..].split('/') {
        match seg {
            "" | "." => trailing_slash = true,
            ".." => {
                // `out` always ends with '/'; drop the last segment, if any.
                if out.len() > 1 {
                    out.pop();
                    let keep = out.rfind('/').map_or(1, |at| at + 1);
                    out.truncate(keep);
                }
                trailing_slash = true;
            }
            _ => {
                out.push_str(seg);
                out.push('/');
                trailing_slash = false;
            }
        }
    }
    if !trailing_slash && out.len() > 1 {
        out.pop();
    }
    out
}

/// Checks the canonical path against the segment limits.
fn check_limits(path: &str, limits: &UrlLimits) -> Result<(), Rejection> {
    let (max_len, max_count) = (limits.segment_max_length, limits.segment_max_count);
    if (max_len == 0 && max_count == 0) || path == "*" {
        return Ok(());
    }
    let mut count = 0usize;
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        count += 1;
        // Characters never outnumber bytes: only count them when the bytes are over the limit.
        if max_len != 0 && seg.len() > max_len {
            let chars = seg.chars().count();
            if chars > max_len {
                return Err(Rejection::new(
                    Reason::UrlLength,
                    format!(
                        "path segment {count} is {chars} characters long; the limit (url_segment_max_length) is {max_len}"
                    ),
                ));
            }
        }
    }
    if max_count != 0 && count > max_count {
        return Err(Rejection::new(
            Reason::UrlLength,
            format!(
                "the path has {count} segments; the limit (url_segment_max_count) is {max_count}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(target: &str) -> String {
        canon(target).path.into_owned()
    }

    fn canon(target: &str) -> CanonicalTarget<'_> {
        canonicalize(target.as_bytes(), &UrlLimits::default())
            .unwrap_or_else(|e| panic!("{target:?}: {e}"))
    }

    fn reject(target: &[u8], limits: &UrlLimits) -> Rejection {
        match canonicalize(target, limits) {
            Ok(t) => panic!("{:?} accepted as {t:?}", target.escape_ascii().to_string()),
            Err(e) => e,
        }
    }

    fn reject_default(target: &str) -> Rejection {
        reject(target.as_bytes(), &UrlLimits::default())
    }

    #[test]
    fn defaults() {
        let l = UrlLimits::default();
        assert_eq!(
            (
                l.segment_max_length,
                l.segment_max_count,
                l.allow_restricted_chars
            ),
            (260, 255, false)
        );
    }

    #[test]
    fn origin_form() {
        let t = canon("/a/b?x=1&y=%41");
        assert_eq!(t.path, "/a/b");
        assert_eq!(t.query.as_deref(), Some("x=1&y=%41"));
        assert_eq!(t.authority, None);
        assert_eq!(canon("/").path, "/");
        assert_eq!(canon("/?").query.as_deref(), Some(""));
        assert_eq!(canon("/a").query, None);
        // The query is raw: nothing in it is decoded or checked beyond raw bytes.
        assert_eq!(canon("/a?%zz/../").query.as_deref(), Some("%zz/../"));
    }

    #[test]
    fn absolute_form() {
        let t = canon("http://Example.com:8080/A/b?q");
        assert_eq!(t.path, "/A/b");
        assert_eq!(t.query.as_deref(), Some("q"));
        assert_eq!(t.authority.as_deref(), Some("Example.com:8080"));
        let t = canon("HTTPS://[::1]");
        assert_eq!((&*t.path, t.authority.as_deref()), ("/", Some("[::1]")));
        let t = canon("http://h?q=/x");
        assert_eq!(t.path, "/");
        assert_eq!(t.query.as_deref(), Some("q=/x"));
        assert_eq!(canon("http://h//a/../b").path, "/b");
        assert_eq!(reject_default("http://").reason, Reason::Url);
        assert_eq!(reject_default("http:///a").reason, Reason::Url);
        assert_eq!(reject_default("http://u@h/").reason, Reason::Hostname);
        assert_eq!(reject_default("http://h:/").reason, Reason::Hostname);
        assert_eq!(reject_default("http://[::1/").reason, Reason::Hostname);
        assert_eq!(reject_default("ftp://h/").reason, Reason::Url);
        assert_eq!(reject_default("a/b").reason, Reason::Url);
        assert_eq!(
            reject(b"http://h\xff/", &UrlLimits::default()).reason,
            Reason::Hostname
        );
    }

    #[test]
    fn asterisk_form() {
        let t = canon("*");
        assert_eq!((&*t.path, t.query, t.authority), ("*", None, None));
        assert_eq!(reject_default("*?x").reason, Reason::Url);
        assert_eq!(reject_default("*/a").reason, Reason::Url);
    }

    #[test]
    fn raw_bytes() {
        assert_eq!(reject_default("").reason, Reason::Url);
        let e = reject(b"/a\x01b", &UrlLimits::default());
        assert_eq!(e.reason, Reason::Url);
        assert!(e.detail.contains("0x01 at byte offset 2"), "{e}");
        // Raw control bytes are refused even when escaped ones are allowed.
        let allow = UrlLimits {
            allow_restricted_chars: true,
            ..UrlLimits::default()
        };
        assert_eq!(reject(b"/a\x7f", &allow).reason, Reason::Url);
        assert_eq!(reject(b"/a?\n", &allow).reason, Reason::Url);
        let e = reject_default("/a b");
        assert!(e.detail.contains("%20"), "{e}");
        let e = reject_default("/a#f");
        assert!(e.detail.contains("fragment"), "{e}");
        assert_eq!(reject_default("/a?b#f").reason, Reason::Url);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(path("/%61%62%63"), "/abc");
        assert_eq!(path("/%7e%7E"), "/~~");
        assert_eq!(path("/a%20b"), "/a b");
        assert_eq!(path("/caf%C3%A9"), "/café");
        assert_eq!(path("/café"), "/café");
        assert_eq!(path("/100%25"), "/100%");
        assert_eq!(path("/a%3Fb"), "/a?b");
        let e = reject_default("/a%G1");
        assert_eq!(e.reason, Reason::Url);
        assert_eq!(
            e.detail,
            "malformed percent-escape \"%G1\" at byte offset 2; a '%' must be followed by two hex digits (write a literal '%' as %25)"
        );
        let e = reject_default("/a%4");
        assert!(
            e.detail.starts_with("truncated percent-escape \"%4\""),
            "{e}"
        );
        let e = reject_default("/a%");
        assert!(e.detail.starts_with("truncated"), "{e}");
        let e = reject_default("/a%4?x");
        assert!(e.detail.starts_with("truncated"), "{e}");
        assert!(reject_default("/%u0041").detail.starts_with("malformed"));
        assert!(reject_default("/a%%41").detail.starts_with("malformed"));
        // Offsets count from the start of the request target.
        assert!(reject_default("http://h/%x").detail.contains("offset 9"));
    }

    #[test]
    fn utf8_required() {
        let e = reject_default("/%FF");
        assert_eq!(e.reason, Reason::Url);
        assert!(e.detail.contains("not valid UTF-8"), "{e}");
        assert!(
            reject(b"/\xc3", &UrlLimits::default())
                .detail
                .contains("not valid UTF-8")
        );
        assert!(reject_default("/%C3%28").detail.contains("not valid UTF-8"));
        assert!(
            reject(b"/?\xff", &UrlLimits::default())
                .detail
                .contains("query")
        );
    }

    #[test]
    fn restricted_chars() {
        for t in ["/%00", "/a%1F", "/%7F", "/%C2%80", "/%C2%9F", "/\u{85}"] {
            let e = reject_default(t);
            assert_eq!(e.reason, Reason::Url, "{t}");
            assert!(e.detail.contains("allow_restricted_chars"), "{t}: {e}");
        }
        assert!(reject_default("/%0A").detail.contains("U+000A"));
        let allow = UrlLimits {
            allow_restricted_chars: true,
            ..UrlLimits::default()
        };
        assert_eq!(canonicalize(b"/a%00b", &allow).unwrap().path, "/a\0b");
        assert_eq!(
            canonicalize("/\u{85}".as_bytes(), &allow).unwrap().path,
            "/\u{85}"
        );
        assert_eq!(path("/%C2%A0"), "/\u{A0}");
    }

    #[test]
    fn separators() {
        assert_eq!(path("/a\\b"), "/a/b");
        assert_eq!(path("/a%5Cb"), "/a/b");
        assert_eq!(path("/a%5cb"), "/a/b");
        assert_eq!(path("/a%2Fb"), "/a/b");
        assert_eq!(path("/a%2f%2F/b"), "/a/b");
        assert_eq!(path("//\\/%2F%5Cbase"), "/base");
        assert_eq!(path("/base"), "/base");
        assert_eq!(path("///a///b///"), "/a/b/");
    }

    #[test]
    fn dot_segments() {
        assert_eq!(path("/a/./b"), "/a/b");
        assert_eq!(path("/a/b/../c"), "/a/c");
        assert_eq!(path("/../a"), "/a");
        assert_eq!(path("/../../.."), "/");
        assert_eq!(path("/a/.."), "/");
        assert_eq!(path("/a/b/."), "/a/b/");
        assert_eq!(path("/a/b/.."), "/a/");
        assert_eq!(path("/a/b/"), "/a/b/");
        assert_eq!(path("/."), "/");
        assert_eq!(path("/%2E%2e/etc/passwd"), "/etc/passwd");
        assert_eq!(path("/a/%2e/b"), "/a/b");
        assert_eq!(path("/a\\..\\..\\b"), "/b");
        assert_eq!(path("/a/...b/.../.x"), "/a/...b/.../.x");
        assert_eq!(path("/.well-known/x"), "/.well-known/x");
        assert_eq!(path("/a./b.."), "/a./b..");
    }

    #[test]
    fn fast_path_detection() {
        assert!(is_plain(b"/"));
        assert!(is_plain(b"/a/b/"));
        assert!(is_plain(b"/a/.b/c..d/..."));
        assert!(!is_plain(b"//"));
        assert!(!is_plain(b"/a//b"));
        assert!(!is_plain(b"/a/./b"));
        assert!(!is_plain(b"/a/.."));
        assert!(!is_plain(b"/."));
        assert!(!is_plain(b"/a%20"));
        assert!(!is_plain(b"/a\\b"));
    }

    #[test]
    fn segment_limits() {
        let limits = UrlLimits::default();
        let ok = format!("/a/{}", "x".repeat(260));
        assert!(canonicalize(ok.as_bytes(), &limits).is_ok());
        let long = format!("/a/b/{}/c", "x".repeat(300));
        let e = reject(long.as_bytes(), &limits);
        assert_eq!(e.reason, Reason::UrlLength);
        assert_eq!(
            e.detail,
            "path segment 3 is 300 characters long; the limit (url_segment_max_length) is 260"
        );
        // Characters, not bytes: 260 two-byte characters fit.
        let wide = format!("/{}", "é".repeat(260));
        assert!(canonicalize(wide.as_bytes(), &limits).is_ok());
        // Limits apply to the decoded path: 100 escaped chars are 100 chars.
        let escaped = format!("/{}", "%41".repeat(100));
        let tight = UrlLimits {
            segment_max_length: 100,
            ..limits
        };
        assert!(canonicalize(escaped.as_bytes(), &tight).is_ok());
        let many = "/a".repeat(256);
        let e = reject(many.as_bytes(), &limits);
        assert_eq!(e.reason, Reason::UrlLength);
        assert_eq!(
            e.detail,
            "the path has 256 segments; the limit (url_segment_max_count) is 255"
        );
        assert!(canonicalize("/a".repeat(255).as_bytes(), &limits).is_ok());
        // Trailing slash and dot segments do not count.
        assert!(canonicalize(format!("{}/./", "/a".repeat(255)).as_bytes(), &limits).is_ok());
        let unlimited = UrlLimits {
            segment_max_length: 0,
            segment_max_count: 0,
            allow_restricted_chars: false,
        };
        assert!(canonicalize(many.as_bytes(), &unlimited).is_ok());
        assert!(canonicalize(long.as_bytes(), &unlimited).is_ok());
    }

    #[test]
    fn prefix_paths() {
        assert_eq!(canonicalize_prefix_path("/a//b/./c").unwrap(), "/a/b/c");
        assert!(
            canonicalize_prefix_path("/a b")
                .unwrap_err()
                .contains("%20")
        );
        assert!(canonicalize_prefix_path("/%00").is_err());
        let long = format!("/{}", "x".repeat(1000));
        assert!(canonicalize_prefix_path(&long).is_ok());
    }

    /// Percent-encodes what would not survive a second pass as-is.
    fn encode(path: &str) -> String {
        let mut out = String::new();
        for c in path.chars() {
            if c == '%' || c == '?' || c == '#' || c == ' ' || c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn target_strategy() -> impl Strategy<Value = Vec<u8>> {
        let token = prop::sample::select(vec![
            "/", "/", "/", "a", "B", "é", ".", "..", "%2F", "%2f", "%5C", "\\", "%2E", "%25",
            "%20", "%00", "%C3%A9", "%FF", "%4", "%G", "?", "#", "x=y", "%3F", " ",
        ]);
        prop::collection::vec(token, 0..12)
            .prop_map(|parts| format!("/{}", parts.concat()).into_bytes())
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = canonicalize(&bytes, &UrlLimits::default());
            let _ = canonicalize(&bytes, &UrlLimits { allow_restricted_chars: true, segment_max_length: 1, segment_max_count: 1 });
        }

        #[test]
        fn never_panics_on_url_like_targets(target in target_strategy(), allow in any::<bool>(), absolute in any::<bool>()) {
            let limits = UrlLimits { allow_restricted_chars: allow, ..UrlLimits::default() };
            let target = if absolute { [b"http://h".as_slice(), &target].concat() } else { target };
            let _ = canonicalize(&target, &limits);
        }

        #[test]
        fn fast_path_agrees_with_slow_path(target in target_strategy()) {
            if is_plain(&target) {
                if let Ok(s) = std::str::from_utf8(&target) {
                    prop_assert_eq!(remove_dot_segments(s), s);
                }
            }
        }

        #[test]
        fn one_pass_check_agrees_with_the_full_rules(target in target_strategy(), with_query in any::<bool>()) {
            let mut target = target;
            if with_query {
                target.extend_from_slice(b"?a=1&b=%20");
            }
            let limits = UrlLimits { segment_max_length: 3, segment_max_count: 3, ..UrlLimits::default() };
            if let Some(fast) = plain_origin_form(&target, &limits) {
                let full = canonicalize_full(&target, &limits).map_err(|e| e.to_string());
                prop_assert_eq!(full.map(|t| (t.path.into_owned(), t.query.map(Cow::into_owned))), Ok((fast.path.into_owned(), fast.query.map(Cow::into_owned))));
            }
        }

        #[test]
        fn canonical_paths_are_fixed_points(target in target_strategy(), allow in any::<bool>()) {
            let limits = UrlLimits { allow_restricted_chars: allow, ..UrlLimits::default() };
            if let Ok(t) = canonicalize(&target, &limits) {
                let p = t.path.into_owned();
                prop_assert!(p.starts_with('/'));
                prop_assert!(!p.contains("//"), "{:?}", p);
                prop_assert!(!p.contains('\\'));
                prop_assert!(p.split('/').all(|s| s != "." && s != ".."), "{:?}", p);
                // Re-canonicalising the canonical path (escaped where needed) gives it back.
                let encoded = encode(&p);
                let again = canonicalize(encoded.as_bytes(), &limits);
                prop_assert_eq!(again.map(|t| t.path.into_owned()), Ok(p.clone()));
                // And where nothing needs escaping, the canonical path is its own canonical form.
                if encode(&p) == p {
                    prop_assert_eq!(canonicalize(p.as_bytes(), &limits).map(|t| t.path.into_owned()), Ok(p.clone()));
                }
            }
        }
    }
}
