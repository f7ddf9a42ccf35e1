//! The URL-group table: which registered prefix (and so which owner) a request belongs to.
//!
//! Routing follows HTTP.sys exactly. Only prefixes with the connection's scheme and local port
//! are candidates. Their hosts are tried class by class — strong wildcard `+`, then explicit host
//! names (against the `Host` header), then IP-bound prefixes (against the local address the
//! request arrived on, whatever its `Host`), then the weak wildcard `*` — and within a class the
//! longest whole-segment, case-insensitive path match wins. The first class with a match wins;
//! later classes are not consulted.
//!
//! ```
//! use httpq_core::router::{Route, RouteRequest, Router};
//! use httpq_core::url_prefix::Scheme;
//!
//! let mut router = Router::new();
//! router.add("http://+:80/api/".parse()?, "api").expect("new prefix");
//! router.add("http://*:80/".parse()?, "site").expect("new prefix");
//!
//! let req = |path| RouteRequest {
//!     scheme: Scheme::Http,
//!     host: "example.com",
//!     local_ip: [127, 0, 0, 1].into(),
//!     local_port: 80,
//!     path,
//! };
//! assert!(matches!(router.route(&req("/API/v1")), Route::Matched { owner: &"api", .. }));
//! assert!(matches!(router.route(&req("/apis")), Route::Matched { owner: &"site", .. }));
//! # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
//! ```

use std::fmt;
use std::net::IpAddr;

use crate::reason::{Reason, Rejection};
use crate::url_prefix::{Host, HostClass, Scheme, UrlPrefix, eq_folded, strip_prefix_folded};

/// A table of URL prefixes and their owners (a URL group, a request queue, an app…), routed with
/// HTTP.sys precedence.
#[derive(Clone, Debug)]
pub struct Router<T> {
    /// One bucket per (scheme, port), each sorted in routing order.
    buckets: Vec<Bucket<T>>,
    len: usize,
}

#[derive(Clone, Debug)]
struct Bucket<T> {
    scheme: Scheme,
    port: u16,
    /// Sorted by class, then by folded path length, longest first; stable for equal keys.
    entries: Vec<Entry<T>>,
    /// Which entries a path can match, by its first segment (built for large buckets).
    index: Option<SegmentIndex>,
}

/// Buckets this large are routed through a [`SegmentIndex`]; smaller ones are scanned.
const INDEX_MIN: usize = 8;

/// The positions (in routing order) of a bucket's entries whose folded path starts with a
/// given ASCII first segment, and of those every path may match (`/`, or a first segment
/// that is not ASCII, which Unicode case folding could match from another spelling). A path
/// can only match entries in `by_segment[its first segment]` or `always`: routing scans
/// those, in order, instead of every entry, so 1,000 prefixes on a port cost what a few do.
#[derive(Clone, Debug, Default, PartialEq)]
struct SegmentIndex {
    by_segment: std::collections::HashMap<Box<str>, Vec<usize>>,
    always: Vec<usize>,
}

/// The first segment of a path (`a` of `/a/b`, `` of `/`).
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

/// The key an entry with this folded path is indexed under, or `None` for an entry every path
/// may match (`/`, or a first segment that is not ASCII).
fn index_key(folded_path: &str) -> Option<&str> {
    let seg = first_segment(folded_path);
    (!seg.is_empty() && seg.is_ascii()).then_some(seg)
}

impl SegmentIndex {
    fn build<T>(entries: &[Entry<T>]) -> SegmentIndex {
        let mut index = SegmentIndex::default();
        for (i, e) in entries.iter().enumerate() {
            index.list_for(e.prefix.folded_path()).push(i);
        }
        index
    }

    /// The entries `path` may match, in routing order; `None` when the path's first segment
    /// is not ASCII (every entry may match it then).
    fn candidates<'a>(&'a self, path: &str) -> Option<impl Iterator<Item = usize> + 'a> {
        let seg = first_segment(path);
        if !seg.is_ascii() {
            return None;
        }
        let named: &[usize] = if seg.is_empty() {
            &[]
        } else {
            let mut buf = [0u8; 64];
            let found = match buf.get_mut(..seg.len()) {
                Some(key) => {
                    key.copy_from_slice(seg.as_bytes());
                    key.make_ascii_lowercase();
                    std::str::from_utf8(key)
                        .ok()
                        .and_then(|k| self.by_segment.get(k))
                }
                None => self.by_segment.get(seg.to_ascii_lowercase().as_str()),
            };
            found.map_or(&[], Vec::as_slice)
        };
        // Merge two ascending lists.
        let (mut a, mut b) = (named.iter().peekable(), self.always.iter().peekable());
        Some(std::iter::from_fn(move || match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next().copied(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next().copied(),
            (Some(_), None) => a.next().copied(),
            (None, None) => None,
        }))
    }
}

impl SegmentIndex {
    /// The list a folded path's position belongs in.
    fn list_for(&mut self, folded_path: &str) -> &mut Vec<usize> {
        match index_key(folded_path) {
            Some(seg) => self.by_segment.entry(seg.into()).or_default(),
            None => &mut self.always,
        }
    }

    /// Every position at or after `from` moves one up (an entry was inserted before it) or one
    /// down (removed).
    fn shift(&mut self, from: usize, up: bool) {
        for list in self.by_segment.values_mut().chain(Some(&mut self.always)) {
            for p in list.iter_mut().filter(|p| **p >= from) {
                *p = if up { *p + 1 } else { *p - 1 };
            }
        }
    }

    /// An entry with `folded_path` was inserted at `pos`: a walk over the positions, no
    /// allocation but the entry's own (where a rebuild allocated for every segment).
    fn inserted(&mut self, pos: usize, folded_path: &str) {
        self.shift(pos, true);
        let list = self.list_for(folded_path);
        let at = list.partition_point(|p| *p < pos);
        list.insert(at, pos);
    }

    /// The entry with `folded_path` at `pos` was removed.
    fn removed(&mut self, pos: usize, folded_path: &str) {
        match index_key(folded_path) {
            Some(seg) => {
                if let Some(list) = self.by_segment.get_mut(seg) {
                    list.retain(|p| *p != pos);
                    if list.is_empty() {
                        self.by_segment.remove(seg);
                    }
                }
            }
            None => self.always.retain(|p| *p != pos),
        }
        self.shift(pos + 1, false);
    }
}

impl<T> Bucket<T> {
    /// Keeps the index in step with an entry inserted at `pos`: built when the bucket reaches
    /// [`INDEX_MIN`], updated in place after that (registering n prefixes one by one then costs
    /// n² position moves, not n² allocations).
    fn index_inserted(&mut self, pos: usize) {
        match &mut self.index {
            Some(index) => index.inserted(pos, self.entries[pos].prefix.folded_path()),
            None if self.entries.len() >= INDEX_MIN => {
                self.index = Some(SegmentIndex::build(&self.entries));
            }
            None => {}
        }
    }

    /// Keeps the index in step with the entry that was at `pos` removed.
    fn index_removed(&mut self, pos: usize, folded_path: &str) {
        if self.entries.len() < INDEX_MIN {
            self.index = None;
        } else if let Some(index) = &mut self.index {
            index.removed(pos, folded_path);
        }
    }
}

#[derive(Clone, Debug)]
struct Entry<T> {
    prefix: UrlPrefix,
    owner: T,
    class: HostClass,
    /// For IP-bound prefixes: the address, IPv4-mapped IPv6 turned into IPv4.
    ip: Option<IpAddr>,
}

impl<T> Entry<T> {
    fn order_key(&self) -> (HostClass, std::cmp::Reverse<usize>) {
        (
            self.class,
            std::cmp::Reverse(self.prefix.folded_path().len()),
        )
    }
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router {
            buckets: Vec::new(),
            len: 0,
        }
    }
}

/// What [`Router::route`] needs to know about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRequest<'a> {
    /// The scheme of the connection the request arrived on.
    pub scheme: Scheme,
    /// The host part of the `Host` header (no port; `[v6]` keeps its brackets); `""` when absent.
    pub host: &'a str,
    /// The local address the connection was accepted on.
    pub local_ip: IpAddr,
    /// The local port the connection was accepted on.
    pub local_port: u16,
    /// The canonical absolute path (see [`crate::canonical`]), starting with `/`.
    pub path: &'a str,
}

/// The outcome of [`Router::route`].
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a, T> {
    /// The best prefix for the request, and its owner.
    Matched {
        /// The matching registered prefix (the request's path base).
        prefix: &'a UrlPrefix,
        /// Its owner.
        owner: &'a T,
    },
    /// No prefix on this scheme and port accepts the request's host (or local address): HTTP.sys
    /// logs `Hostname` and answers 400.
    UnknownHost,
    /// Some prefix accepts the host, but none matches the path: httpq answers 404
    /// ([`Reason::NotFound`]).
    NoPrefix,
}

impl<T> Clone for Route<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Route<'_, T> {}

impl<T> Route<'_, T> {
    /// The rejection to answer with when nothing matched; `None` for [`Route::Matched`].
    ///
    /// ```
    /// use httpq_core::router::Route;
    /// use httpq_core::Reason;
    ///
    /// let r: Route<'_, ()> = Route::UnknownHost;
    /// assert_eq!(r.rejection().map(|r| r.reason), Some(Reason::Hostname));
    /// ```
    #[must_use]
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Route::Matched { .. } => None,
            Route::UnknownHost => Some(Rejection::new(
                Reason::Hostname,
                "no url prefix registered on this scheme and port accepts the request's host",
            )),
            Route::NoPrefix => Some(Rejection::new(
                Reason::NotFound,
                "no url prefix registered for this host matches the request path",
            )),
        }
    }
}

/// [`Router::add`] found the same prefix (compared case-insensitively) already registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicatePrefix<T> {
    /// The prefix that was being added (handed back).
    pub prefix: UrlPrefix,
    /// The owner already registered for it.
    pub owner: T,
}

impl<T: fmt::Display> fmt::Display for DuplicatePrefix<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "url prefix \"{}\" is already registered by {}; remove it there first or pick another prefix",
            self.prefix, self.owner
        )
    }
}

impl<T: fmt::Debug + fmt::Display> std::error::Error for DuplicatePrefix<T> {}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4; everything else unchanged.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether the canonical request `path` lies under the prefix path `folded` (case-folded, ends
/// with `/`), on a whole-segment boundary: `/dir/sna/` takes `/dir/sna`, `/dir/sna/` and
/// `/dir/sna/x`, not `/dir/snapshot`.
pub(crate) fn path_matches(path: &str, folded: &str) -> bool {
    let stem = &folded[..folded.len() - 1];
    match strip_prefix_folded(path, stem) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl<T> Router<T> {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Router::default()
    }

    /// Registers `prefix` for `owner`.
    ///
    /// A prefix conflicts only with the same prefix (same scheme, host, port and path, compared
    /// case-insensitively): `http://+:80/a/` and `http://www.x:80/a/` coexist.
    ///
    /// ```
    /// use httpq_core::router::Router;
    ///
    /// let mut r = Router::new();
    /// r.add("http://+:80/a/".parse()?, "app1").expect("new");
    /// r.add("http://www.x:80/a/".parse()?, "app2").expect("other class");
    /// let dup = r.add("HTTP://+:80/A".parse()?, "app3").unwrap_err();
    /// assert_eq!(
    ///     dup.to_string(),
    ///     r#"url prefix "http://+:80/A/" is already registered by app1; remove it there first or pick another prefix"#
    /// );
    /// # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DuplicatePrefix`] with the prefix handed back and the existing owner.
    pub fn add(&mut self, prefix: UrlPrefix, owner: T) -> Result<(), DuplicatePrefix<T>>
    where
        T: Clone,
    {
        let (scheme, port) = (prefix.scheme(), prefix.port());
        let at = match self
            .buckets
            .iter()
            .position(|b| b.scheme == scheme && b.port == port)
        {
            Some(at) => at,
            None => {
                self.buckets.push(Bucket {
                    scheme,
                    port,
                    entries: Vec::new(),
                    index: None,
                });
                self.buckets.len() - 1
            }
        };
        let bucket = &mut self.buckets[at];
        if let Some(existing) = bucket.entries.iter().find(|e| e.prefix == prefix) {
            return Err(DuplicatePrefix {
                prefix,
                owner: existing.owner.clone(),
            });
        }
        let ip = match prefix.host() {
            Host::Ip(ip) => Some(canonical_ip(*ip)),
            _ => None,
        };
        let entry = Entry {
            class: prefix.host().class(),
            prefix,
            owner,
            ip,
        };
        let key = entry.order_key();
        let pos = bucket.entries.partition_point(|e| e.order_key() <= key);
        bucket.entries.insert(pos, entry);
        bucket.index_inserted(pos);
        self.len += 1;
        Ok(())
    }

    /// Unregisters `prefix` (compared case-insensitively), returning its owner.
    pub fn remove(&mut self, prefix: &UrlPrefix) -> Option<T> {
        let b = self
            .buckets
            .iter()
            .position(|b| b.scheme == prefix.scheme() && b.port == prefix.port())?;
        let bucket = &mut self.buckets[b];
        let e = bucket.entries.iter().position(|e| &e.prefix == prefix)?;
        let entry = bucket.entries.remove(e);
        if bucket.entries.is_empty() {
            self.buckets.remove(b);
        } else {
            bucket.index_removed(e, entry.prefix.folded_path());
        }
        self.len -= 1;
        Some(entry.owner)
    }

    /// The owner of `prefix` (compared case-insensitively), if registered.
    #[must_use]
    pub fn get(&self, prefix: &UrlPrefix) -> Option<&T> {
        self.iter()
            .find_map(|(p, owner)| (p == prefix).then_some(owner))
    }

    /// Every registered prefix and its owner, grouped by scheme and port, each group in routing
    /// order (class, then longest path first).
    pub fn iter(&self) -> impl Iterator<Item = (&UrlPrefix, &T)> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| (&e.prefix, &e.owner)))
    }

    /// Every registered prefix, in the order of [`Router::iter`].
    pub fn prefixes(&self) -> impl Iterator<Item = &UrlPrefix> {
        self.iter().map(|(p, _)| p)
    }

    /// The distinct (scheme, port) pairs with at least one prefix: the endpoints to listen on.
    /// Port 0 appears as registered (it is bound to a free port by the caller).
    pub fn endpoints(&self) -> impl Iterator<Item = (Scheme, u16)> + '_ {
        self.buckets.iter().map(|b| (b.scheme, b.port))
    }

    /// How many prefixes are registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no prefix is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finds the prefix a request belongs to, with HTTP.sys precedence. Does not allocate.
    ///
    /// A registered port 0 never matches. The path `*` (asterisk-form) matches no prefix.
    #[must_use]
    pub fn route(&self, req: &RouteRequest<'_>) -> Route<'_, T> {
        let Some(bucket) = self
            .buckets
            .iter()
            .find(|b| b.port != 0 && b.port == req.local_port && b.scheme == req.scheme)
        else {
            return Route::UnknownHost;
        };
        let local_ip = canonical_ip(req.local_ip);
        let host_ok = |e: &Entry<T>| match e.prefix.host() {
            Host::Strong | Host::Weak => true,
            Host::Name(name) => eq_folded(req.host, name),
            Host::Ip(_) => e.ip == Some(local_ip),
        };
        // Large buckets: only the entries the path's first segment allows, in the same order,
        // so the first match is the one the full scan finds. No match: the full scan below
        // tells a known host (404) from an unknown one (400).
        if let Some(candidates) = bucket.index.as_ref().and_then(|i| i.candidates(req.path)) {
            for i in candidates {
                let e = &bucket.entries[i];
                if host_ok(e) && path_matches(req.path, e.prefix.folded_path()) {
                    return Route::Matched {
                        prefix: &e.prefix,
                        owner: &e.owner,
                    };
                }
            }
        }
        let mut host_known = false;
        for e in &bucket.entries {
            if !host_ok(e) {
                continue;
            }
            host_known = true;
            if path_matches(req.path, e.prefix.folded_path()) {
                return Route::Matched {
                    prefix: &e.prefix,
                    owner: &e.owner,
                };
            }
        }
        if host_known {
            Route::NoPrefix
        } else {
            Route::UnknownHost
        }
    }
}

/// A `Host` header value that is not `host` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostHeaderError {
    /// `host:` with nothing after the colon.
    #[error("Host {value:?} has an empty port after ':'; send the host alone or host:port")]
    EmptyPort {
        /// The header value.
        value: String,
    },
    /// A port that is not a decimal number from 0 to 65535.
    #[error("Host {value:?}: port {port:?} is not a decimal number from 0 to 65535")]
    InvalidPort {
        /// The header value.
        value: String,
        /// The port as sent.
        port: String,
    },
    /// A `[` without its `]`, a `]` without `[`, or text after `]` other than `:port`.
    #[error(
        "Host {value:?} has malformed brackets; an IPv6 host is written [address] or [address]:port"
    )]
    BadBrackets {
        /// The header value.
        value: String,
    },
    /// A bracketed host that is not an IPv6 address.
    #[error("Host {value:?}: {host:?} is not a valid IPv6 address")]
    InvalidIpv6 {
        /// The header value.
        value: String,
        /// The bracketed host.
        host: String,
    },
    /// A character that cannot appear in a host.
    #[error("Host {value:?} contains {ch:?}, which is not allowed in a host name")]
    InvalidChar {
        /// The header value.
        value: String,
        /// The offending character.
        ch: char,
    },
    /// `:port` with no host before it.
    #[error("Host {value:?} has no host before the port")]
    EmptyHost {
        /// The header value.
        value: String,
    },
    /// More than one `:` outside brackets.
    #[error(
        "Host {value:?} has more than one ':'; an IPv6 host must be in brackets, e.g. [::1]:8080"
    )]
    UnbracketedIpv6 {
        /// The header value.
        value: String,
    },
}

impl From<HostHeaderError> for Rejection {
    /// A malformed `Host` is logged as HTTP.sys's `Hostname` reason (400).
    fn from(e: HostHeaderError) -> Self {
        Rejection::new(Reason::Hostname, e.to_string())
    }
}

/// Splits a `Host` header value (or absolute-form authority) into host and port.
///
/// Accepts `name`, `name:port`, `1.2.3.4:80`, `[::1]` and `[::1]:8080`; an empty value is
/// `("", None)` (HTTP/1.1 allows an empty `Host`). A bracketed IPv6 host keeps its brackets.
/// The host is returned as sent (not lowercased).
///
/// ```
/// use httpq_core::router::split_host_port;
///
/// assert_eq!(split_host_port("Example.com:8080"), Ok(("Example.com", Some(8080))));
/// assert_eq!(split_host_port("[::1]"), Ok(("[::1]", None)));
/// assert!(split_host_port("example.com:").is_err());
/// ```
///
/// # Errors
///
/// A [`HostHeaderError`] for an empty or non-numeric port, bad brackets, an invalid IPv6
/// literal, whitespace, control characters, `@`, `/`, `\`, `?`, `#`, `%` or `,`.
pub fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), HostHeaderError> {
    match split_plain(authority) {
        Some(plain) => Ok(plain),
        None => split_full(authority),
    }
}

/// Every rule, for authorities the one-pass check does not take.
fn split_full(authority: &str) -> Result<(&str, Option<u16>), HostHeaderError> {
    let value = || authority.to_owned();
    let (host, port) = if authority.starts_with('[') {
        let Some(close) = authority.find(']') else {
            return Err(HostHeaderError::BadBrackets { value: value() });
        };
        let (host, after) = authority.split_at(close + 1);
        if host[1..close].parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostHeaderError::InvalidIpv6 {
                value: value(),
                host: host.to_owned(),
            });
        }
        match after.strip_prefix(':') {
            _ if after.is_empty() => (host, None),
            Some(port) => (host, Some(port)),
            None => return Err(HostHeaderError::BadBrackets { value: value() }),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(HostHeaderError::UnbracketedIpv6 { value: value() });
        }
        let plain = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if let Some(ch) = (!plain)
            .then(|| {
                host.chars().find(|&c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '@' | '/' | '\\' | '?' | '#' | '%' | ',' | '[' | ']')
                })
            })
            .flatten()
        {
            return Err(HostHeaderError::InvalidChar { value: value(), ch });
        }
        if host.is_empty() && port.is_some() {
            return Err(HostHeaderError::EmptyHost { value: value() });
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some("") => return Err(HostHeaderError::EmptyPort { value: value() }),
        Some(p) => Some(parse_port(p).ok_or_else(|| HostHeaderError::InvalidPort {
            value: value(),
            port: p.to_owned(),
        })?),
    };
    Ok((host, port))
}

/// Decimal digits only (leading zeros allowed, as RFC 3986 does), at most 65535.
/// The common case in one pass: a DNS name or IPv4 literal of plain characters, then
/// optionally `:` and a valid port. `None` sends anything else through the full checks.
fn split_plain(authority: &str) -> Option<(&str, Option<u16>)> {
    let b = authority.as_bytes();
    let mut colon = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {}
            b':' if colon.is_none() && i > 0 => colon = Some(i),
            _ => return None,
        }
    }
    match colon {
        None if !b.is_empty() => Some((authority, None)),
        None => None,
        Some(i) => {
            let port = &authority[i + 1..];
            if port.is_empty() {
                return None;
            }
            Some((&authority[..i], Some(parse_port(port)?)))
        }
    }
}

fn parse_port(p: &str) -> Option<u16> {
    let mut v: u32 = 0;
    for b in p.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
        if v > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(v).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Large tables are routed through the first-segment index; it must give exactly what the
    /// full scan gives, Unicode case folding, roots and unknown hosts included.
    #[test]
    fn the_segment_index_routes_as_the_full_scan_does() {
        let hosts = ["+", "*", "www.x", "127.0.0.1"];
        let segs = ["a", "b", "ab", "p1", "p2", "\u{e9}", "k", "s", "AB"];
        let mut r = Router::new();
        for h in hosts {
            r.add(format!("http://{h}:80/").parse().expect("prefix"), "root")
                .ok();
            for s1 in segs {
                for s2 in ["", "x/"] {
                    let p: UrlPrefix = format!("http://{h}:80/{s1}/{s2}").parse().expect("prefix");
                    r.add(p, "p").ok();
                }
            }
        }
        // Only www.x, without the wildcard hosts: a host miss must still be told from a path miss.
        let mut named = Router::new();
        for s1 in segs {
            named
                .add(
                    format!("http://www.x:81/{s1}/").parse().expect("prefix"),
                    "n",
                )
                .ok();
        }
        for table in [&r, &named] {
            assert!(table.buckets.iter().all(|b| b.index.is_some()));
            let mut scan = table.clone();
            for b in &mut scan.buckets {
                b.index = None;
            }
            for path in [
                "/",
                "/a",
                "/A/",
                "/a/x/y",
                "/AB/x",
                "/ab",
                "/abc",
                "/\u{e9}/x",
                "/\u{c9}",
                "/K",
                "/\u{212a}",
                "/\u{17f}/",
                "/p1/x/",
                "/zz",
                "/P2",
            ] {
                for host in ["www.x", "WWW.X", "other", ""] {
                    for port in [80, 81] {
                        let req = RouteRequest {
                            scheme: Scheme::Http,
                            host,
                            local_ip: "127.0.0.1".parse().expect("ip"),
                            local_port: port,
                            path,
                        };
                        let show = |route: Route<'_, &str>| match route {
                            Route::Matched { prefix, owner } => format!("{prefix} {owner}"),
                            Route::NoPrefix => "404".to_owned(),
                            Route::UnknownHost => "400".to_owned(),
                        };
                        assert_eq!(
                            show(table.route(&req)),
                            show(scan.route(&req)),
                            "{host} {port} {path}"
                        );
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Registrations and removals in any order keep each bucket's index equal to one built
        /// from scratch (the index is updated in place, not rebuilt, on each change).
        #[test]
        fn an_index_kept_in_step_equals_one_rebuilt(
            ops in proptest::collection::vec((proptest::bool::weighted(0.7), 0usize..60), 1..200)
        ) {
            let pool: Vec<UrlPrefix> = (0..60)
                .map(|i| {
                    let host = ["+", "*", "www.x", "127.0.0.1"][i % 4];
                    let seg = ["", "a/", "A/b/", "ab/", "\u{e9}/", "k/", "p1/", "p1/x/"][(i / 4) % 8];
                    let port = 80 + (i / 32) as u16;
                    p(&format!("http://{host}:{port}/{seg}"))
                })
                .collect();
            let mut r = Router::new();
            for (add, i) in ops {
                if add {
                    r.add(pool[i].clone(), i).ok();
                } else {
                    r.remove(&pool[i]);
                }
                for b in &r.buckets {
                    let fresh = (b.entries.len() >= INDEX_MIN).then(|| SegmentIndex::build(&b.entries));
                    proptest::prop_assert_eq!(&b.index, &fresh);
                }
            }
        }
    }

    fn p(s: &str) -> UrlPrefix {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn router(entries: &[(&str, &'static str)]) -> Router<&'static str> {
        let mut r = Router::new();
        for (prefix, owner) in entries {
            r.add(p(prefix), *owner).unwrap();
        }
        r
    }

    fn req<'a>(host: &'a str, path: &'a str) -> RouteRequest<'a> {
        RouteRequest {
            scheme: Scheme::Http,
            host,
            local_ip: "127.0.0.1".parse().unwrap(),
            local_port: 80,
            path,
        }
    }

    fn owner<'a>(r: &'a Router<&'static str>, rq: &RouteRequest<'_>) -> Option<&'a str> {
        match r.route(rq) {
            Route::Matched { owner, .. } => Some(owner),
            _ => None,
        }
    }

    #[test]
    fn whole_segment_longest_match() {
        // The URLP documentation example.
        let r = router(&[("http://+:80/dir/", "dir"), ("http://+:80/dir/sna/", "sna")]);
        assert_eq!(owner(&r, &req("h", "/dir/app.htm")), Some("dir"));
        assert_eq!(owner(&r, &req("h", "/dir/sna")), Some("sna"));
        assert_eq!(owner(&r, &req("h", "/dir/sna/")), Some("sna"));
        assert_eq!(owner(&r, &req("h", "/dir/sna/x.htm")), Some("sna"));
        assert_eq!(owner(&r, &req("h", "/dir/snapshot")), Some("dir"));
        assert_eq!(owner(&r, &req("h", "/DIR/SNA/x")), Some("sna"));
        assert_eq!(owner(&r, &req("h", "/dir")), Some("dir"));
        assert_eq!(r.route(&req("h", "/di")), Route::NoPrefix);
        assert_eq!(r.route(&req("h", "/")), Route::NoPrefix);
        let root = router(&[("http://+:80/", "root")]);
        assert_eq!(owner(&root, &req("h", "/anything/at/all")), Some("root"));
        assert_eq!(owner(&root, &req("h", "/")), Some("root"));
        assert_eq!(root.route(&req("h", "*")), Route::NoPrefix);
    }

    #[test]
    fn class_precedence() {
        let r = router(&[
            ("http://*:80/", "weak"),
            ("http://127.0.0.1:80/", "ip"),
            ("http://a.test:80/", "explicit"),
            ("http://+:80/s/", "strong"),
        ]);
        // Strong beats explicit even with a shorter... or longer path.
        assert_eq!(owner(&r, &req("a.test", "/s/x")), Some("strong"));
        assert_eq!(owner(&r, &req("a.test", "/x")), Some("explicit"));
        assert_eq!(owner(&r, &req("A.TEST", "/x")), Some("explicit"));
        // IP-bound takes any host arriving on its address.
        assert_eq!(owner(&r, &req("b.test", "/x")), Some("ip"));
        assert_eq!(owner(&r, &req("", "/x")), Some("ip"));
        let mut other_ip = req("b.test", "/x");
        other_ip.local_ip = "10.0.0.1".parse().unwrap();
        assert_eq!(owner(&r, &other_ip), Some("weak"));
        let mut mapped = req("b.test", "/x");
        mapped.local_ip = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(owner(&r, &mapped), Some("ip"));
    }

    #[test]
    fn first_class_with_a_match_wins_even_with_a_shorter_path() {
        let r = router(&[
            ("http://a.test:80/", "explicit-root"),
            ("http://*:80/deep/path/", "weak-deep"),
            ("http://127.0.0.1:80/deep/", "ip-deep"),
        ]);
        assert_eq!(
            owner(&r, &req("a.test", "/deep/path/x")),
            Some("explicit-root")
        );
        assert_eq!(owner(&r, &req("b.test", "/deep/path/x")), Some("ip-deep"));
    }

    #[test]
    fn unknown_host_vs_no_prefix() {
        let r = router(&[("http://a.test:80/app/", "a")]);
        assert_eq!(r.route(&req("b.test", "/app/")), Route::UnknownHost);
        assert_eq!(r.route(&req("a.test", "/other")), Route::NoPrefix);
        assert_eq!(
            r.route(&req("a.test", "/other"))
                .rejection()
                .unwrap()
                .reason,
            Reason::NotFound
        );
        assert_eq!(
            r.route(&req("b.test", "/")).rejection().unwrap().reason,
            Reason::Hostname
        );
        // Another port or scheme: no candidates at all.
        let mut other_port = req("a.test", "/app/");
        other_port.local_port = 8080;
        assert_eq!(r.route(&other_port), Route::UnknownHost);
        let mut https = req("a.test", "/app/");
        https.scheme = Scheme::Https;
        assert_eq!(r.route(&https), Route::UnknownHost);
        assert!(r.route(&req("a.test", "/app")).rejection().is_none());
    }

    #[test]
    fn port_zero_never_matches() {
        let r = router(&[("http://+:0/", "free")]);
        let mut rq = req("h", "/");
        rq.local_port = 0;
        assert_eq!(r.route(&rq), Route::UnknownHost);
        assert_eq!(r.endpoints().collect::<Vec<_>>(), vec![(Scheme::Http, 0)]);
    }

    #[test]
    fn unicode_hosts_and_paths() {
        let r = router(&[("http://bücher.example:80/Straße/", "b")]);
        assert_eq!(owner(&r, &req("BÜCHER.example", "/STRAßE/x")), Some("b"));
        assert_eq!(owner(&r, &req("bücher.example", "/straße")), Some("b"));
        assert_eq!(
            r.route(&req("bucher.example", "/straße")),
            Route::UnknownHost
        );
        assert_eq!(r.route(&req("bücher.example", "/strasse")), Route::NoPrefix);
    }

    #[test]
    fn add_remove_and_duplicates() {
        let mut r = Router::new();
        r.add(p("http://+:80/a/"), 1).unwrap();
        r.add(p("http://www.x:80/a/"), 2).unwrap();
        r.add(p("http://*:80/a/"), 3).unwrap();
        r.add(p("https://+:443/a/"), 4).unwrap();
        let dup = r.add(p("HTTP://+:80/A"), 5).unwrap_err();
        assert_eq!(dup.owner, 1);
        assert_eq!(dup.prefix, p("http://+:80/a/"));
        assert_eq!(
            dup.to_string(),
            r#"url prefix "http://+:80/A/" is already registered by 1; remove it there first or pick another prefix"#
        );
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(&p("http://WWW.X/a")), Some(&2));
        assert_eq!(
            r.endpoints().collect::<Vec<_>>(),
            vec![(Scheme::Http, 80), (Scheme::Https, 443)]
        );
        assert_eq!(r.prefixes().count(), 4);
        assert_eq!(r.remove(&p("http://+:80/A/")), Some(1));
        assert_eq!(r.remove(&p("http://+:80/a/")), None);
        assert_eq!(r.remove(&p("https://+:443/a/")), Some(4));
        assert_eq!(r.endpoints().count(), 1);
        assert_eq!(r.len(), 2);
        assert!(!r.is_empty());
        r.add(p("http://+:80/a/"), 6).unwrap();
        assert_eq!(r.iter().map(|(_, o)| *o).collect::<Vec<_>>(), vec![6, 2, 3]);
        let empty: Router<u8> = Router::default();
        assert!(empty.is_empty());
        assert_eq!(empty.route(&req("h", "/")), Route::UnknownHost);
    }

    #[test]
    fn host_header_split() {
        assert_eq!(split_host_port(""), Ok(("", None)));
        assert_eq!(split_host_port("a.test"), Ok(("a.test", None)));
        assert_eq!(split_host_port("a.test:80"), Ok(("a.test", Some(80))));
        assert_eq!(split_host_port("1.2.3.4:80"), Ok(("1.2.3.4", Some(80))));
        assert_eq!(split_host_port("[::1]:8080"), Ok(("[::1]", Some(8080))));
        assert_eq!(split_host_port("[::1]"), Ok(("[::1]", None)));
        assert_eq!(split_host_port("h:0080"), Ok(("h", Some(80))));
        assert_eq!(split_host_port("h:65535"), Ok(("h", Some(65535))));
        assert_eq!(
            split_host_port("bücher.example"),
            Ok(("bücher.example", None))
        );
        let bad = |v: &str| split_host_port(v).unwrap_err();
        assert!(matches!(bad("h:"), HostHeaderError::EmptyPort { .. }));
        assert!(matches!(bad("h:8a"), HostHeaderError::InvalidPort { .. }));
        assert!(matches!(bad("h:+80"), HostHeaderError::InvalidPort { .. }));
        assert!(matches!(
            bad("h:65536"),
            HostHeaderError::InvalidPort { .. }
        ));
        assert!(matches!(
            bad("h:99999999999999999999"),
            HostHeaderError::InvalidPort { .. }
        ));
        assert!(matches!(bad("[::1"), HostHeaderError::BadBrackets { .. }));
        assert!(matches!(bad("[::1]x"), HostHeaderError::BadBrackets { .. }));
        assert!(matches!(bad("[::1]:"), HostHeaderError::EmptyPort { .. }));
        assert!(matches!(bad("[zz]"), HostHeaderError::InvalidIpv6 { .. }));
        assert!(matches!(
            bad("a]"),
            HostHeaderError::InvalidChar { ch: ']', .. }
        ));
        assert!(matches!(
            bad("::1"),
            HostHeaderError::UnbracketedIpv6 { .. }
        ));
        assert!(matches!(bad(":80"), HostHeaderError::EmptyHost { .. }));
        for (v, ch) in [
            ("a b", ' '),
            ("a\tb", '\t'),
            ("u@h", '@'),
            ("h/x", '/'),
            ("h\\x", '\\'),
            ("h?", '?'),
            ("h#", '#'),
            ("a,b", ','),
            ("h\r", '\r'),
        ] {
            assert_eq!(
                bad(v),
                HostHeaderError::InvalidChar {
                    value: v.to_owned(),
                    ch
                },
                "{v:?}"
            );
        }
        assert_eq!(
            bad("a b:1").to_string(),
            r#"Host "a b:1" contains ' ', which is not allowed in a host name"#
        );
        let rej: Rejection = bad("h:").into();
        assert_eq!(rej.reason, Reason::Hostname);
    }

    proptest::proptest! {
        #[test]
        fn one_pass_split_agrees_with_the_full_rules(s in "[a-zA-Z0-9._:\\[\\]@ -]{0,12}") {
            if let Some(fast) = split_plain(&s) {
                proptest::prop_assert_eq!(split_full(&s).ok(), Some(fast));
            }
        }
    }
}
