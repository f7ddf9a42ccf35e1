//! HTTP.sys `UrlPrefix` strings: `scheme://host:port/path/`.
//!
//! A URL prefix names the requests a URL group (and so a request queue) receives. The syntax and
//! rules follow the HTTP Server API's *UrlPrefix Strings* page and ASP.NET Core's
//! `UrlPrefix.Create`:
//!
//! - the scheme is `http` or `https` (any case; stored lowercase);
//! - the host is `+` (strong wildcard: every host), `*` (weak wildcard: whatever nothing else
//!   matched), an IPv4 literal, a bracketed IPv6 literal (`[::1]`), or a host name (letters,
//!   digits, `-`, `_`, and non-ASCII letters; stored lowercase, never converted to punycode);
//! - the port is optional when parsing (80 for http, 443 for https); port 0 means "pick a free
//!   port" and is only accepted with http;
//! - the path is optional (`/`), is canonicalised like a request path (see
//!   [`crate::canonical`]) and always ends with `/`;
//! - host and path compare case-insensitively: two prefixes that differ only in case are the same
//!   prefix.
//!
//! ```
//! use httpq_core::url_prefix::{Host, Scheme, UrlPrefix};
//!
//! let p: UrlPrefix = "HTTP://Example.COM/App".parse()?;
//! assert_eq!(p.scheme(), Scheme::Http);
//! assert_eq!(p.host(), &Host::Name("example.com".into()));
//! assert_eq!(p.port(), 80);
//! assert_eq!(p.path(), "/App/");
//! assert_eq!(p.to_string(), "http://example.com:80/App/");
//! assert_eq!(p, "http://example.com:80/app/".parse()?);
//! # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The scheme of a URL prefix (and of the connection a request arrived on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Plain-text HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port used when a prefix names none: 80 for http, 443 for https.
    ///
    /// ```
    /// use httpq_core::url_prefix::Scheme;
    /// assert_eq!(Scheme::Https.default_port(), 443);
    /// ```
    #[must_use]
    pub const fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The lowercase scheme name, `"http"` or `"https"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host part of a URL prefix.
///
/// Displayed as written in a prefix: `+`, `*`, `127.0.0.1`, `[::1]`, `example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// `+`: the strong wildcard. Matches every host, before any other kind of host is tried.
    Strong,
    /// `*`: the weak wildcard. Matches every host, but only when no other prefix matched.
    Weak,
    /// An IP literal: matches every request that arrived on this local address (whatever its
    /// `Host` header), after the strong wildcard and explicit host names. HTTP.sys warns not to
    /// rely on it to enforce security.
    Ip(IpAddr),
    /// An explicit host name, matched against the request's `Host` header. Stored lowercase;
    /// Unicode is kept as Unicode (no punycode conversion).
    Name(String),
}

impl Host {
    /// The routing class of this host, which decides its precedence.
    ///
    /// ```
    /// use httpq_core::url_prefix::{Host, HostClass};
    /// assert_eq!(Host::Strong.class(), HostClass::Strong);
    /// assert!(Host::Name("a.test".into()).class() < Host::Weak.class());
    /// ```
    #[must_use]
    pub fn class(&self) -> HostClass {
        match self {
            Host::Strong => HostClass::Strong,
            Host::Name(_) => HostClass::Explicit,
            Host::Ip(_) => HostClass::IpBound,
            Host::Weak => HostClass::Weak,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Strong => f.write_str("+"),
            Host::Weak => f.write_str("*"),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// The routing class of a prefix's host, in precedence order: `Strong < Explicit < IpBound <
/// Weak`, so the smallest class is tried first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostClass {
    /// `+`: all hosts, tried first.
    Strong,
    /// An explicit host name, matched against the `Host` header.
    Explicit,
    /// An IP literal: every host arriving on that local address.
    IpBound,
    /// `*`: the catch-all, tried last.
    Weak,
}

/// A parsed HTTP.sys URL prefix: `scheme://host:port/path/`.
///
/// Equality, ordering and hashing are case-insensitive over the whole prefix, so
/// `http://Example.com:80/A/` and `http://example.com:80/a/` are the same prefix. The path keeps
/// the case it was written with for display.
#[derive(Clone)]
pub struct UrlPrefix {
    scheme: Scheme,
    host: Host,
    port: u16,
    /// Canonical path as written (case preserved), always starting and ending with `/`.
    path: String,
    /// `scheme://host:port` followed by the case-folded path: the identity of the prefix.
    key: String,
    /// Where the folded path starts in `key`.
    path_at: usize,
}

impl UrlPrefix {
    /// Parses a URL prefix string.
    ///
    /// Accepts `http` / `https` in any case, the hosts `+`, `*`, IPv4, `[IPv6]` and host names,
    /// an optional port (default 80 / 443; 0 only with http) and an optional path, which gets a
    /// trailing `/` if it lacks one.
    ///
    /// ```
    /// use httpq_core::url_prefix::UrlPrefix;
    ///
    /// let p = UrlPrefix::parse("https://[::1]:8443/api")?;
    /// assert_eq!(p.to_string(), "https://[::1]:8443/api/");
    ///
    /// let err = UrlPrefix::parse("ftp://x:80/").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"url prefix "ftp://x:80/": scheme "ftp" is not supported; use http:// or https://"#
    /// );
    /// # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`UrlPrefixError`] naming the offending part and how to fix it.
    pub fn parse(input: &str) -> Result<UrlPrefix, UrlPrefixError> {
        if input.is_empty() {
            return Err(UrlPrefixError::Empty);
        }
        let Some(sep) = input.find("://") else {
            return Err(UrlPrefixError::MissingScheme {
                input: input.to_owned(),
            });
        };
        let scheme_str = &input[..sep];
        let scheme = if scheme_str.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme_str.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme_str.is_empty() {
            return Err(UrlPrefixError::MissingScheme {
                input: input.to_owned(),
            });
        } else {
            return Err(UrlPrefixError::UnsupportedScheme {
                input: input.to_owned(),
                scheme: scheme_str.to_owned(),
            });
        };

        let rest = &input[sep + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if path.contains(['?', '#']) {
            return Err(UrlPrefixError::QueryOrFragment {
                input: input.to_owned(),
            });
        }

        let (host_str, port_str) = split_authority(input, authority)?;
        let host = parse_host(input, host_str)?;
        let port = match port_str {
            None => scheme.default_port(),
            Some(p) => parse_port(input, p, scheme)?,
        };
        let path = canonical_prefix_path(input, path)?;
        Ok(UrlPrefix::assemble(scheme, host, port, path))
    }

    /// Builds a prefix from its parts, applying the same checks as [`UrlPrefix::parse`].
    ///
    /// A host name is validated and lowercased; an empty `path` means `/`.
    ///
    /// ```
    /// use httpq_core::url_prefix::{Host, Scheme, UrlPrefix};
    ///
    /// let p = UrlPrefix::from_parts(Scheme::Http, Host::Weak, 8080, "")?;
    /// assert_eq!(p.to_string(), "http://*:8080/");
    /// # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`UrlPrefixError::InvalidHost`] for a bad host name, [`UrlPrefixError::HttpsPortZero`],
    /// [`UrlPrefixError::PathNotAbsolute`], [`UrlPrefixError::QueryOrFragment`] or
    /// [`UrlPrefixError::InvalidPath`] for a bad path.
    pub fn from_parts(
        scheme: Scheme,
        host: Host,
        port: u16,
        path: &str,
    ) -> Result<UrlPrefix, UrlPrefixError> {
        let input = format!("{scheme}://{host}:{port}{path}");
        let host = match host {
            Host::Name(name) => match parse_host(&input, &name)? {
                named @ Host::Name(_) => named,
                _ => {
                    return Err(UrlPrefixError::InvalidHost {
                        input,
                        host: name,
                        why: "it is a wildcard or an IP address, not a host name; use Host::Strong, Host::Weak or Host::Ip".to_owned(),
                    });
                }
            },
            other => other,
        };
        if port == 0 && scheme == Scheme::Https {
            return Err(UrlPrefixError::HttpsPortZero { input });
        }
        if path.contains(['?', '#']) {
            return Err(UrlPrefixError::QueryOrFragment { input });
        }
        if !path.is_empty() && !path.starts_with('/') {
            return Err(UrlPrefixError::PathNotAbsolute {
                input,
                path: path.to_owned(),
            });
        }
        let path = canonical_prefix_path(&input, path)?;
        Ok(UrlPrefix::assemble(scheme, host, port, path))
    }

    fn assemble(scheme: Scheme, host: Host, port: u16, path: String) -> UrlPrefix {
        let folded = fold(&path);
        let mut key = format!("{scheme}://{host}:{port}");
        let path_at = key.len();
        key.push_str(&folded);
        UrlPrefix {
            scheme,
            host,
            port,
            path,
            key,
            path_at,
        }
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port; 0 means "pick a free port when binding" (http only).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, starting and ending with `/`, in the case it was written.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path case-folded (what routing compares against); starts and ends with `/`.
    pub(crate) fn folded_path(&self) -> &str {
        &self.key[self.path_at..]
    }

    /// The same prefix on another port: used once a port-0 prefix is bound to a real port.
    ///
    /// ```
    /// use httpq_core::url_prefix::UrlPrefix;
    ///
    /// let p = UrlPrefix::parse("http://localhost:0/")?;
    /// assert_eq!(p.with_port(5123).to_string(), "http://localhost:5123/");
    /// # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
    /// ```
    #[must_use]
    pub fn with_port(&self, port: u16) -> UrlPrefix {
        UrlPrefix::assemble(self.scheme, self.host.clone(), port, self.path.clone())
    }

    /// Whether this is a top-level wildcard (`http://+:80/`, `http://*:80/`): it takes every host
    /// name, which HTTP.sys documentation warns opens host-header attacks.
    ///
    /// ```
    /// use httpq_core::url_prefix::UrlPrefix;
    /// assert!(UrlPrefix::parse("http://*:80/")?.is_top_level_wildcard());
    /// assert!(!UrlPrefix::parse("http://*:80/app/")?.is_top_level_wildcard());
    /// # Ok::<(), httpq_core::url_prefix::UrlPrefixError>(())
    /// ```
    #[must_use]
    pub fn is_top_level_wildcard(&self) -> bool {
        matches!(self.host, Host::Strong | Host::Weak) && self.path == "/"
    }
}

impl fmt::Display for UrlPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

impl fmt::Debug for UrlPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UrlPrefix")
            .field(&format_args!("{self}"))
            .finish()
    }
}

impl PartialEq for UrlPrefix {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for UrlPrefix {}

impl Hash for UrlPrefix {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for UrlPrefix {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UrlPrefix {
    /// Orders by the case-folded full prefix (consistent with `Eq`).
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl FromStr for UrlPrefix {
    type Err = UrlPrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlPrefix::parse(s)
    }
}

/// Why a URL prefix string was refused. Every message quotes the input and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlPrefixError {
    /// The string is empty.
    #[error(r#"url prefix "" is empty; give one such as "http://localhost:5000/""#)]
    Empty,
    /// No `scheme://` at the start.
    #[error(
        r#"url prefix {input:?}: missing "scheme://"; start it with http:// or https://, e.g. "http://localhost:5000/""#
    )]
    MissingScheme {
        /// The whole prefix string.
        input: String,
    },
    /// A scheme other than `http` or `https`.
    #[error("url prefix {input:?}: scheme {scheme:?} is not supported; use http:// or https://")]
    UnsupportedScheme {
        /// The whole prefix string.
        input: String,
        /// The scheme as written.
        scheme: String,
    },
    /// Nothing between `://` and the port or path.
    #[error(
        r#"url prefix {input:?}: no host after "://"; use a host name, an IP address, "+" (every host) or "*" (any host nothing else matched)"#
    )]
    MissingHost {
        /// The whole prefix string.
        input: String,
    },
    /// The host is not `+`, `*`, an IP literal or a valid host name.
    #[error("url prefix {input:?}: host {host:?} is not valid: {why}")]
    InvalidHost {
        /// The whole prefix string.
        input: String,
        /// The host as written.
        host: String,
        /// What is wrong and how to fix it.
        why: String,
    },
    /// A bracketed host that is not an IPv6 address.
    #[error(
        "url prefix {input:?}: {host:?} is not a valid IPv6 literal; write the address in brackets without a zone id, e.g. [::1] or [2001:db8::1]"
    )]
    InvalidIpv6 {
        /// The whole prefix string.
        input: String,
        /// The host as written, brackets included.
        host: String,
    },
    /// A `:` followed by no port.
    #[error(
        "url prefix {input:?}: the port after ':' is empty; remove the ':' to use the default port (80 for http, 443 for https) or write one, e.g. :8080"
    )]
    EmptyPort {
        /// The whole prefix string.
        input: String,
    },
    /// The port is not a plain decimal number.
    #[error(
        "url prefix {input:?}: port {port:?} is not a decimal number; write digits only, e.g. :8080 (ports have no wildcards or signs)"
    )]
    InvalidPort {
        /// The whole prefix string.
        input: String,
        /// The port as written.
        port: String,
    },
    /// The port has a leading zero.
    #[error("url prefix {input:?}: port {port:?} has a leading zero; write it as {}", strip_leading_zeros(.port))]
    PortLeadingZero {
        /// The whole prefix string.
        input: String,
        /// The port as written.
        port: String,
    },
    /// The port is above 65535.
    #[error(
        "url prefix {input:?}: port {port:?} is out of range; use 1-65535, or 0 with http:// to pick a free port"
    )]
    PortOutOfRange {
        /// The whole prefix string.
        input: String,
        /// The port as written.
        port: String,
    },
    /// `https://…:0/`: picking a free port is only supported for http.
    #[error(
        "url prefix {input:?}: port 0 (pick a free port) only works with http://; give https:// an explicit port such as 443"
    )]
    HttpsPortZero {
        /// The whole prefix string.
        input: String,
    },
    /// The string contains `?` or `#`.
    #[error(
        "url prefix {input:?}: contains a query ('?') or fragment ('#'); a prefix is scheme, host, port and path only, so remove everything from the '?' or '#' on"
    )]
    QueryOrFragment {
        /// The whole prefix string.
        input: String,
    },
    /// A path that does not start with `/` (only possible with [`UrlPrefix::from_parts`]).
    #[error("url prefix {input:?}: path {path:?} does not start with '/'; write it as \"/{path}\"")]
    PathNotAbsolute {
        /// The whole prefix string.
        input: String,
        /// The path as given.
        path: String,
    },
    /// The path cannot be canonicalised (bad percent-escape, control character, raw space, not
    /// UTF-8).
    #[error("url prefix {input:?}: path {path:?} is not valid: {why}")]
    InvalidPath {
        /// The whole prefix string.
        input: String,
        /// The path as written.
        path: String,
        /// What is wrong and how to fix it.
        why: String,
    },
}

impl UrlPrefixError {
    /// The prefix string that was refused (empty for [`UrlPrefixError::Empty`]).
    #[must_use]
    pub fn input(&self) -> &str {
        match self {
            UrlPrefixError::Empty => "",
            UrlPrefixError::MissingScheme { input }
            | UrlPrefixError::UnsupportedScheme { input, .. }
            | UrlPrefixError::MissingHost { input }
            | UrlPrefixError::InvalidHost { input, .. }
            | UrlPrefixError::InvalidIpv6 { input, .. }
            | UrlPrefixError::EmptyPort { input }
            | UrlPrefixError::InvalidPort { input, .. }
            | UrlPrefixError::PortLeadingZero { input, .. }
            | UrlPrefixError::PortOutOfRange { input, .. }
            | UrlPrefixError::HttpsPortZero { input }
            | UrlPrefixError::QueryOrFragment { input }
            | UrlPrefixError::PathNotAbsolute { input, .. }
            | UrlPrefixError::InvalidPath { input, .. } => input,
        }
    }
}

fn strip_leading_zeros(port: &str) -> &str {
    let trimmed = port.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_authority<'a>(
    input: &str,
    authority: &'a str,
) -> Result<(&'a str, Option<&'a str>), UrlPrefixError> {
    if authority.is_empty() {
        return Err(UrlPrefixError::MissingHost {
            input: input.to_owned(),
        });
    }
    if authority.starts_with('[') {
        let Some(close) = authority.find(']') else {
            return Err(UrlPrefixError::InvalidIpv6 {
                input: input.to_owned(),
                host: authority.to_owned(),
            });
        };
        let (host, after) = authority.split_at(close + 1);
        return match after.strip_prefix(':') {
            _ if after.is_empty() => Ok((host, None)),
            Some(port) => Ok((host, Some(port))),
            None => Err(UrlPrefixError::InvalidHost {
                input: input.to_owned(),
                host: authority.to_owned(),
                why: format!(
                    "unexpected {after:?} after the IPv6 literal; write [address] or [address]:port"
                ),
            }),
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.contains(':')) {
        return Err(UrlPrefixError::InvalidHost {
            input: input.to_owned(),
            host: authority.to_owned(),
            why: "an IPv6 address must be written in brackets, e.g. http://[::1]:8080/".to_owned(),
        });
    }
    if host.is_empty() {
        return Err(UrlPrefixError::MissingHost {
            input: input.to_owned(),
        });
    }
    Ok((host, port))
}

fn parse_host(input: &str, host: &str) -> Result<Host, UrlPrefixError> {
    let invalid = |why: String| UrlPrefixError::InvalidHost {
        input: input.to_owned(),
        host: host.to_owned(),
        why,
    };
    match host {
        "" => {
            return Err(UrlPrefixError::MissingHost {
                input: input.to_owned(),
            });
        }
        "+" => return Ok(Host::Strong),
        "*" => return Ok(Host::Weak),
        _ => {}
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(v6)) => Ok(Host::Ip(IpAddr::V6(v6))),
            _ => Err(UrlPrefixError::InvalidIpv6 {
                input: input.to_owned(),
                host: host.to_owned(),
            }),
        };
    }
    if host.contains(['*', '+']) {
        return Err(invalid(
            "a wildcard must be the whole host: \"+\" (every host) or \"*\" (any host nothing else matched); partial wildcards such as *.example.com do not exist".to_owned(),
        ));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(v4) => Ok(Host::Ip(IpAddr::V4(v4))),
            Err(_) => Err(invalid(
                "it looks like an IPv4 address but is not one; write four decimal numbers 0-255 without leading zeros, e.g. 127.0.0.1".to_owned(),
            )),
        };
    }
    validate_name(host).map_err(invalid)?;
    Ok(Host::Name(fold(host)))
}

/// Checks a host name: labels of letters, digits, `-`, `_` or non-ASCII letters; no empty labels;
/// at most 253 bytes.
fn validate_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!(
            "it is {} bytes long; a host name is at most 253 bytes",
            name.len()
        ));
    }
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.')
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control());
        if !ok {
            return Err(match c {
                '@' => "'@' is not allowed: user info (user@host) is not part of a url prefix; remove it".to_owned(),
                '%' => "'%' is not allowed: write the host name unescaped (Unicode is fine)".to_owned(),
                '\\' => "'\\' is not allowed: separate the path with '/'".to_owned(),
                c if c.is_whitespace() || c.is_control() => format!(
                    "it contains {c:?}; remove spaces and control characters from the host name"
                ),
                c => format!(
                    "{c:?} is not allowed in a host name; use letters, digits, '-' and '.'"
                ),
            });
        }
    }
    if name.ends_with('.') {
        return Err("a trailing '.' is not allowed; remove it".to_owned());
    }
    if name.split('.').any(str::is_empty) {
        return Err(
            "it has an empty label (a leading '.' or \"..\"); remove the extra '.'".to_owned(),
        );
    }
    Ok(())
}

fn parse_port(input: &str, port: &str, scheme: Scheme) -> Result<u16, UrlPrefixError> {
    if port.is_empty() {
        return Err(UrlPrefixError::EmptyPort {
            input: input.to_owned(),
        });
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlPrefixError::InvalidPort {
            input: input.to_owned(),
            port: port.to_owned(),
        });
    }
    if port.len() > 1 && port.starts_with('0') {
        return Err(UrlPrefixError::PortLeadingZero {
            input: input.to_owned(),
            port: port.to_owned(),
        });
    }
    let value = if port.len() > 5 {
        None
    } else {
        port.parse::<u16>().ok()
    };
    match value {
        None => Err(UrlPrefixError::PortOutOfRange {
            input: input.to_owned(),
            port: port.to_owned(),
        }),
        Some(0) if scheme == Scheme::Https => Err(UrlPrefixError::HttpsPortZero {
            input: input.to_owned(),
        }),
        Some(v) => Ok(v),
    }
}

/// Canonicalises a prefix path (`""` or starting with `/`) and makes it end with `/`.
fn canonical_prefix_path(input: &str, path: &str) -> Result<String, UrlPrefixError> {
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    let mut canonical = crate::canonical::canonicalize_prefix_path(path).map_err(|why| {
        UrlPrefixError::InvalidPath {
            input: input.to_owned(),
            path: path.to_owned(),
            why,
        }
    })?;
    if !canonical.ends_with('/') {
        canonical.push('/');
    }
    Ok(canonical)
}

/// Case-folds a host name or path the way routing compares them: each char lowercased with
/// [`char::to_lowercase`] (no context-dependent rules, so it agrees with
/// [`strip_prefix_folded`]).
pub(crate) fn fold(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.chars().flat_map(char::to_lowercase).collect()
    }
}

/// If `hay`, case-folded, starts with `needle` (already folded by [`fold`]) ending on a char
/// boundary of `hay`, returns the rest of `hay`. Does not allocate.
pub(crate) fn strip_prefix_folded<'h>(hay: &'h str, needle: &str) -> Option<&'h str> {
    let hb = hay.as_bytes();
    let nb = needle.as_bytes();
    // ASCII fast path: byte-wise until either side has a non-ASCII byte.
    let mut i = 0;
    while i < nb.len() {
        let n = nb[i];
        let h = *hb.get(i)?;
        if n >= 0x80 || h >= 0x80 {
            break;
        }
        if h.to_ascii_lowercase() != n {
            return None;
        }
        i += 1;
    }
    // Every byte before `i` is ASCII on both sides, so `i` is a char boundary of both.
    let hay = &hay[i..];
    if i == nb.len() {
        return Some(hay);
    }
    let mut need = needle[i..].chars();
    let mut pending = need.next();
    for (at, hc) in hay.char_indices() {
        if pending.is_none() {
            return Some(&hay[at..]);
        }
        for lc in hc.to_lowercase() {
            match pending {
                Some(nc) if nc == lc => pending = need.next(),
                _ => return None,
            }
        }
    }
    if pending.is_none() { Some("") } else { None }
}

/// Whether `hay`, case-folded, equals `needle` (already folded by [`fold`]).
pub(crate) fn eq_folded(hay: &str, needle: &str) -> bool {
    strip_prefix_folded(hay, needle).is_some_and(str::is_empty)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn p(s: &str) -> UrlPrefix {
        UrlPrefix::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> UrlPrefixError {
        match UrlPrefix::parse(s) {
            Ok(v) => panic!("{s} parsed as {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_hosts() {
        assert_eq!(p("http://+:80/").host(), &Host::Strong);
        assert_eq!(p("http://*:80/").host(), &Host::Weak);
        assert_eq!(
            p("http://127.0.0.1:80/").host(),
            &Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            p("http://[::1]:80/").host(),
            &Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            p("http://WWW.Example.com:80/").host(),
            &Host::Name("www.example.com".into())
        );
        assert_eq!(
            p("http://BÜCHER.example/").host(),
            &Host::Name("bücher.example".into())
        );
        assert_eq!(
            p("http://xn--bcher-kva.example/").host(),
            &Host::Name("xn--bcher-kva.example".into())
        );
        assert_eq!(
            p("http://my_service:8080/").host(),
            &Host::Name("my_service".into())
        );
        assert_eq!(
            p("http://localhost/").host(),
            &Host::Name("localhost".into())
        );
    }

    #[test]
    fn scheme_and_default_ports() {
        let a = p("HTTP://x/");
        assert_eq!((a.scheme(), a.port()), (Scheme::Http, 80));
        let b = p("HttpS://x");
        assert_eq!((b.scheme(), b.port(), b.path()), (Scheme::Https, 443, "/"));
        assert_eq!(Scheme::Http.to_string(), "http");
        assert_eq!(Scheme::Https.as_str(), "https");
        assert_eq!(p("http://x:0/").port(), 0);
        assert_eq!(p("http://x:65535/").port(), 65535);
    }

    #[test]
    fn paths() {
        assert_eq!(p("http://x:80").path(), "/");
        assert_eq!(p("http://x:80/").path(), "/");
        assert_eq!(p("http://x:80/App").path(), "/App/");
        assert_eq!(p("http://x:80/App/Sub/").path(), "/App/Sub/");
        // Canonicalised like request paths, so a prefix can match what arrives.
        assert_eq!(p("http://x:80//a/./b/../c").path(), "/a/c/");
        assert_eq!(p("http://x:80/a%20b/").path(), "/a b/");
        assert_eq!(p("http://x:80/caf%C3%A9").path(), "/café/");
        assert_eq!(p("http://x:80/a\\b").path(), "/a/b/");
    }

    #[test]
    fn display_is_full_prefix() {
        assert_eq!(p("http://+/").to_string(), "http://+:80/");
        assert_eq!(
            p("HTTPS://Example.COM/Api").to_string(),
            "https://example.com:443/Api/"
        );
        assert_eq!(p("http://[0:0::1]:8/").to_string(), "http://[::1]:8/");
        assert_eq!(format!("{:?}", p("http://*:1/")), "UrlPrefix(http://*:1/)");
        assert_eq!(Host::Ip("::1".parse().unwrap()).to_string(), "[::1]");
    }

    #[test]
    fn equality_and_hash_are_case_insensitive() {
        let a = p("http://Example.com:80/App/");
        let b = p("HTTP://example.COM:80/app");
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        let set: HashSet<UrlPrefix> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(a, p("http://example.com:81/app/"));
        assert_ne!(a, p("https://example.com:80/app/"));
        assert_ne!(a, p("http://example.com:80/app/x/"));
        assert_ne!(p("http://+:80/a/"), p("http://*:80/a/"));
        assert_eq!(p("http://x/STRASSE/"), p("http://x/strasse/"));
        assert_eq!(p("http://x/ÄÖ/"), p("http://x/äö/"));
    }

    #[test]
    fn with_port_and_wildcards() {
        let a = p("http://+:0/x/");
        let b = a.with_port(5000);
        assert_eq!(b.port(), 5000);
        assert_eq!(b, p("http://+:5000/X/"));
        assert!(p("http://+:80/").is_top_level_wildcard());
        assert!(p("http://*:80").is_top_level_wildcard());
        assert!(!p("http://+:80/a/").is_top_level_wildcard());
        assert!(!p("http://x:80/").is_top_level_wildcard());
    }

    #[test]
    fn host_classes_are_ordered() {
        assert!(HostClass::Strong < HostClass::Explicit);
        assert!(HostClass::Explicit < HostClass::IpBound);
        assert!(HostClass::IpBound < HostClass::Weak);
        assert_eq!(Host::Weak.class(), HostClass::Weak);
        assert_eq!(
            Host::Ip("10.0.0.1".parse().unwrap()).class(),
            HostClass::IpBound
        );
        assert_eq!(Host::Name("a".into()).class(), HostClass::Explicit);
    }

    #[test]
    fn from_parts_validates() {
        let a =
            UrlPrefix::from_parts(Scheme::Https, Host::Name("A.Test".into()), 443, "/x").unwrap();
        assert_eq!(a, p("https://a.test/x/"));
        assert_eq!(a.host(), &Host::Name("a.test".into()));
        assert!(matches!(
            UrlPrefix::from_parts(Scheme::Http, Host::Strong, 80, "x/"),
            Err(UrlPrefixError::PathNotAbsolute { .. })
        ));
        assert!(matches!(
            UrlPrefix::from_parts(Scheme::Https, Host::Strong, 0, "/"),
            Err(UrlPrefixError::HttpsPortZero { .. })
        ));
        assert!(matches!(
            UrlPrefix::from_parts(Scheme::Http, Host::Name("a b".into()), 80, "/"),
            Err(UrlPrefixError::InvalidHost { .. })
        ));
        let e = UrlPrefix::from_parts(Scheme::Http, Host::Strong, 80, "a").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"url prefix "http://+:80a": path "a" does not start with '/'; write it as "/a""#
        );
    }

    #[test]
    fn error_variants() {
        assert_eq!(err(""), UrlPrefixError::Empty);
        assert!(matches!(
            err("localhost:5000"),
            UrlPrefixError::MissingScheme { .. }
        ));
        assert!(matches!(err("://x/"), UrlPrefixError::MissingScheme { .. }));
        assert!(matches!(
            err("http:/x/"),
            UrlPrefixError::MissingScheme { .. }
        ));
        assert!(
            matches!(err("ftp://x:80/"), UrlPrefixError::UnsupportedScheme { scheme, .. } if scheme == "ftp")
        );
        assert!(matches!(err("http://"), UrlPrefixError::MissingHost { .. }));
        assert!(matches!(
            err("http:///a/"),
            UrlPrefixError::MissingHost { .. }
        ));
        assert!(matches!(
            err("http://:80/"),
            UrlPrefixError::MissingHost { .. }
        ));
        for bad in [
            "http://a b/",
            "http://a@b/",
            "http://a%41/",
            "http://a..b/",
            "http://.a/",
            "http://a./",
            "http://*.example.com/",
            "http://a+/",
            "http://1.2.3/",
            "http://256.1.1.1/",
            "http://01.2.3.4/",
            "http://::1/",
            "http://[::1]x/",
            "http://a\\b/",
        ] {
            assert!(
                matches!(err(bad), UrlPrefixError::InvalidHost { .. }),
                "{bad}: {}",
                err(bad)
            );
        }
        let long = format!("http://{}/", "a".repeat(254));
        assert!(matches!(err(&long), UrlPrefixError::InvalidHost { .. }));
        assert!(p(&format!("http://{}/", "a".repeat(253))).port() == 80);
        for bad in [
            "http://[::1/",
            "http://[zz]/",
            "http://[fe80::1%eth0]/",
            "http://[1.2.3.4]/",
        ] {
            assert!(
                matches!(err(bad), UrlPrefixError::InvalidIpv6 { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            err("http://x:/"),
            UrlPrefixError::EmptyPort { .. }
        ));
        for bad in [
            "http://x:+80/",
            "http://x:-1/",
            "http://x:8a/",
            "http://x:*/",
            "http://x: 80/",
        ] {
            assert!(
                matches!(err(bad), UrlPrefixError::InvalidPort { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            err("http://x:080/"),
            UrlPrefixError::PortLeadingZero { .. }
        ));
        assert!(matches!(
            err("http://x:00/"),
            UrlPrefixError::PortLeadingZero { .. }
        ));
        assert!(matches!(
            err("http://x:65536/"),
            UrlPrefixError::PortOutOfRange { .. }
        ));
        assert!(matches!(
            err("http://x:9999999999999/"),
            UrlPrefixError::PortOutOfRange { .. }
        ));
        assert!(matches!(
            err("https://x:0/"),
            UrlPrefixError::HttpsPortZero { .. }
        ));
        for bad in ["http://x/a?b", "http://x/#f", "http://x?y", "http://x:80#"] {
            assert!(
                matches!(err(bad), UrlPrefixError::QueryOrFragment { .. }),
                "{bad}"
            );
        }
        for bad in [
            "http://x/a%G1/",
            "http://x/a%4",
            "http://x/a%00/",
            "http://x/a b/",
            "http://x/%FF/",
        ] {
            assert!(
                matches!(err(bad), UrlPrefixError::InvalidPath { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_messages_quote_input_and_say_how_to_fix() {
        assert_eq!(
            err("ftp://x:80/").to_string(),
            r#"url prefix "ftp://x:80/": scheme "ftp" is not supported; use http:// or https://"#
        );
        assert_eq!(
            err("http://x:0080/").to_string(),
            r#"url prefix "http://x:0080/": port "0080" has a leading zero; write it as 80"#
        );
        assert_eq!(
            err("https://+:0/").to_string(),
            r#"url prefix "https://+:0/": port 0 (pick a free port) only works with http://; give https:// an explicit port such as 443"#
        );
        assert_eq!(
            err("http://a@b/").to_string(),
            r#"url prefix "http://a@b/": host "a@b" is not valid: '@' is not allowed: user info (user@host) is not part of a url prefix; remove it"#
        );
        let e = err("http://x/a b/");
        assert_eq!(e.input(), "http://x/a b/");
        assert!(e.to_string().contains("%20"), "{e}");
        let samples = [
            "localhost:5000",
            "ftp://x/",
            "http:///",
            "http://a b/",
            "http://[x]/",
            "http://x:/",
            "http://x:y/",
            "http://x:01/",
            "http://x:70000/",
            "https://x:0/",
            "http://x/?",
            "http://x/%zz",
        ];
        for s in samples {
            let e = err(s);
            let msg = e.to_string();
            assert!(msg.contains(&format!("{s:?}")), "{msg}");
            assert_eq!(e.input(), s);
            assert!(
                ["use", "write", "remove", "give", "start"]
                    .iter()
                    .any(|w| msg.contains(w)),
                "no fix in {msg}"
            );
        }
    }

    #[test]
    fn folded_comparisons() {
        assert_eq!(strip_prefix_folded("/ABC/d", "/abc"), Some("/d"));
        assert_eq!(strip_prefix_folded("/ab", "/abc"), None);
        assert_eq!(strip_prefix_folded("/ÄB/x", "/äb"), Some("/x"));
        assert_eq!(strip_prefix_folded("/aÄb", "/aäb"), Some(""));
        assert_eq!(strip_prefix_folded("/a", "/aä"), None);
        // U+0130 folds to "i\u{307}": a needle ending half-way through it does not match.
        assert_eq!(strip_prefix_folded("/\u{130}x", "/i"), None);
        assert_eq!(
            strip_prefix_folded("/\u{130}x", &fold("/\u{130}")),
            Some("x")
        );
        assert!(eq_folded("Example.COM", "example.com"));
        assert!(!eq_folded("example.co", "example.com"));
        assert!(!eq_folded("example.comm", "example.com"));
        assert!(eq_folded("BÜCHER", "bücher"));
        assert!(eq_folded("", ""));
        assert_eq!(p("http://x/\u{130}/").folded_path(), "/i\u{307}/");
    }
}
