//! Options with HTTP.sys's defaults (the `HttpSysOptions` equivalents) and their environment form.
//!
//! Every option can come from code or from the environment as `HTTPQ_` + its name in upper
//! snake case (`HTTPQ_MAX_REQUEST_BODY_SIZE`). Code wins over the environment. Parsing is done
//! here, sans-IO: [`OptionsPatch::from_lookup`] takes a lookup function so tests need no real
//! environment.

use std::fmt;
use std::time::Duration;

use crate::canonical::UrlLimits;
use crate::h1::ParserLimits;
use crate::queue::{Http503Verbosity, RequestQueueMode};

/// HTTP.sys's connection and request timers (`HTTP_TIMEOUT_LIMIT_INFO`), 120 s each by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest pause between body bytes while the app reads the request body.
    pub entity_body: Duration,
    /// Longest pause while the listener drains an unread body to keep the connection alive.
    pub drain_entity_body: Duration,
    /// Longest time a request may wait in the request queue.
    pub request_queue: Duration,
    /// Longest idle time of a keep-alive connection between requests.
    pub idle_connection: Duration,
    /// Longest time to receive a complete request head once a connection or request starts.
    pub header_wait: Duration,
    /// Slowest acceptable response read rate, bytes per second; 0 disables the check.
    pub min_send_bytes_per_second: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        let t = Duration::from_secs(120);
        Timeouts {
            entity_body: t,
            drain_entity_body: t,
            request_queue: t,
            idle_connection: t,
            header_wait: t,
            min_send_bytes_per_second: 150,
        }
    }
}

/// All engine options, with HTTP.sys's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// The request queue's name; `None` for an anonymous queue (daemon mode).
    pub request_queue_name: Option<String>,
    /// Create, attach to, or either, the named queue (daemon mode).
    pub request_queue_mode: RequestQueueMode,
    /// How long a named queue outlives its last process, holding its requests (beyond
    /// HTTP.sys; daemon mode). Zero: the queue goes with its last process.
    pub queue_retention: Duration,
    /// Who besides the creator (and root) may attach to the named queue (daemon mode;
    /// HTTP.sys: the queue's security descriptor). Empty: the creator's uid only.
    pub request_queue_acl: Vec<crate::queue::QueueAclEntry>,
    /// Most requests waiting in the queue before new ones are refused (HTTP.sys: 1000).
    pub request_queue_limit: u32,
    /// How a full queue answers (HTTP.sys: Basic, a connection reset).
    pub http503_verbosity: Http503Verbosity,
    /// Outstanding receives per process: in daemon mode, how many requests the listener may
    /// hand this process ahead of its answers (its request credits). Not a concurrency cap.
    /// Default: 5 × cores (HTTP.sys's number), at least [`MIN_DEFAULT_MAX_ACCEPTS`]
    /// (docs/decisions/0007-request-credits.md). 1 to 2³¹−1, the wire's bound on credits.
    pub max_accepts: u32,
    /// Add `Alt-Svc: h3=":PORT"` to responses over TLS that do not carry one, so browsers
    /// move to HTTP/3 (HTTP.sys's `EnableAltSvc`; off by default, as there: the app may add
    /// the header itself).
    pub alt_svc: bool,
    /// Most concurrent connections; `None` is unlimited.
    pub max_connections: Option<u64>,
    /// The addresses wildcard and host-name prefixes listen on (netsh `iplisten`); empty
    /// means every address.
    pub iplisten: Vec<std::net::IpAddr>,
    /// Largest request body; `None` is unlimited (HTTP.sys/IIS: 30,000,000 bytes).
    pub max_request_body_size: Option<u64>,
    /// The timers.
    pub timeouts: Timeouts,
    /// Request-head parser limits.
    pub parser: ParserLimits,
    /// URL canonicalisation limits.
    pub url: UrlLimits,
    /// Where HTTP.sys's error log (`httperrN.log`: every request or connection the listener
    /// refused or closed itself) is written; `None`: not written (the `httpq::httperr`
    /// tracing line is). httpqd writes it by default (`--error-log-dir`).
    pub error_log_dir: Option<std::path::PathBuf>,
    /// Size at which the error log starts its next file (HTTP.sys's
    /// `ErrorLogFileTruncateSize`: 1 MB, also the minimum).
    pub error_log_truncate_size: u64,
    /// The W3C access log of every exchange, refused ones included (HTTP.sys's centralized
    /// logging); `None`: not written.
    pub access_log: Option<crate::logging::AccessLogOptions>,
    /// Where Prometheus metrics are served (`GET /metrics`); `None`: no metrics. Use a
    /// loopback or private address: the endpoint has no authentication.
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// The smallest default `max_accepts`: fewer request credits than concurrent requests make
/// the daemon hop wait for credit round trips (decision 0007: over HTTP/1.1, 10 credits served
/// ~35k req/s where 32–128 served 50–60k; over HTTP/2 with 500 concurrent streams, 64 served
/// 38.7k and 128–512 served 45.6k–48.0k on the same machine).
pub const MIN_DEFAULT_MAX_ACCEPTS: u32 = 128;

impl Options {
    /// HTTP.sys's defaults, with `max_accepts` computed from `cores`.
    #[must_use]
    pub fn with_cores(cores: usize) -> Self {
        Options {
            request_queue_name: None,
            request_queue_mode: RequestQueueMode::Create,
            queue_retention: Duration::ZERO,
            request_queue_acl: Vec::new(),
            request_queue_limit: 1000,
            http503_verbosity: Http503Verbosity::Basic,
            max_accepts: u32::try_from(cores.max(1) * 5)
                .unwrap_or(u32::MAX)
                .max(MIN_DEFAULT_MAX_ACCEPTS),
            alt_svc: false,
            max_connections: None,
            iplisten: Vec::new(),
            max_request_body_size: Some(30_000_000),
            timeouts: Timeouts::default(),
            parser: ParserLimits::default(),
            url: UrlLimits::default(),
            error_log_dir: None,
            error_log_truncate_size: 1 << 20,
            access_log: None,
            metrics_address: None,
        }
    }

    /// Checks the options against their valid ranges.
    ///
    /// # Errors
    /// Names the first option out of range and its valid range.
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.request_queue_limit == 0 || self.request_queue_limit > 0x7FFF_FFFF {
            return Err(OptionError::new(
                "request_queue_limit",
                self.request_queue_limit.to_string(),
                "must be between 1 and 2147483647",
            ));
        }
        if self.max_accepts == 0 || self.max_accepts > 0x7FFF_FFFF {
            return Err(OptionError::new(
                "max_accepts",
                self.max_accepts.to_string(),
                "must be between 1 and 2147483647 (the request credits a process may grant)",
            ));
        }
        if self.parser.max_request_bytes < 256 {
            return Err(OptionError::new(
                "max_request_bytes",
                self.parser.max_request_bytes.to_string(),
                "must be at least 256 (HTTP.sys range 256..16777216)",
            ));
        }
        if self.parser.max_field_length < 64 {
            return Err(OptionError::new(
                "max_field_length",
                self.parser.max_field_length.to_string(),
                "must be at least 64 (HTTP.sys range 64..65534)",
            ));
        }
        Ok(())
    }
}

/// An option value that is out of range or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// Where the value came from: the option name, or the environment variable.
    pub source: String,
    /// The value as given.
    pub value: String,
    /// What a valid value looks like.
    pub expected: String,
}

impl OptionError {
    fn new(
        source: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        OptionError {
            source: source.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?} for {}: {}",
            self.value, self.source, self.expected
        )
    }
}

impl std::error::Error for OptionError {}

/// Options read from the environment; each `Some` overrides the default, and code overrides it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OptionsPatch {
    /// `HTTPQ_URLS`: prefixes separated by `;` (also `,` or whitespace).
    pub urls: Option<Vec<String>>,
    /// `HTTPQ_HTTP_PORTS`: ports for `http://*:PORT/`.
    pub http_ports: Option<Vec<u16>>,
    /// `HTTPQ_HTTPS_PORTS`: ports for `https://*:PORT/`.
    pub https_ports: Option<Vec<u16>>,
    /// `HTTPQ_REQUEST_QUEUE_NAME`.
    pub request_queue_name: Option<String>,
    /// `HTTPQ_REQUEST_QUEUE_MODE`: `create`, `attach` or `create_or_attach`.
    pub request_queue_mode: Option<RequestQueueMode>,
    /// `HTTPQ_QUEUE_RETENTION` (seconds).
    pub queue_retention: Option<Duration>,
    /// `HTTPQ_REQUEST_QUEUE_ACL`: `user:NAME` and `group:NAME` entries separated by `;`.
    pub request_queue_acl: Option<Vec<crate::queue::QueueAclEntry>>,
    /// `HTTPQ_REQUEST_QUEUE_LIMIT`.
    pub request_queue_limit: Option<u32>,
    /// `HTTPQ_HTTP503_VERBOSITY`: `basic`, `limited` or `full`.
    pub http503_verbosity: Option<Http503Verbosity>,
    /// `HTTPQ_MAX_ACCEPTS`.
    pub max_accepts: Option<u32>,
    /// `HTTPQ_ALT_SVC`: `true` or `false`.
    pub alt_svc: Option<bool>,
    /// `HTTPQ_MAX_CONNECTIONS`: a number, or `unlimited`.
    pub max_connections: Option<Option<u64>>,
    /// `HTTPQ_MAX_REQUEST_BODY_SIZE`: bytes, or `unlimited`.
    pub max_request_body_size: Option<Option<u64>>,
    /// `HTTPQ_ENTITY_BODY_TIMEOUT` (seconds).
    pub entity_body: Option<Duration>,
    /// `HTTPQ_DRAIN_ENTITY_BODY_TIMEOUT` (seconds).
    pub drain_entity_body: Option<Duration>,
    /// `HTTPQ_REQUEST_QUEUE_TIMEOUT` (seconds).
    pub request_queue: Option<Duration>,
    /// `HTTPQ_IDLE_CONNECTION_TIMEOUT` (seconds).
    pub idle_connection: Option<Duration>,
    /// `HTTPQ_HEADER_WAIT_TIMEOUT` (seconds).
    pub header_wait: Option<Duration>,
    /// `HTTPQ_MIN_SEND_BYTES_PER_SECOND` (0 disables).
    pub min_send_bytes_per_second: Option<u32>,
    /// `HTTPQ_MAX_FIELD_LENGTH`.
    pub max_field_length: Option<usize>,
    /// `HTTPQ_MAX_REQUEST_BYTES`.
    pub max_request_bytes: Option<usize>,
    /// `HTTPQ_MAX_HEADERS`.
    pub max_headers: Option<usize>,
    /// `HTTPQ_URL_SEGMENT_MAX_LENGTH`.
    pub url_segment_max_length: Option<usize>,
    /// `HTTPQ_URL_SEGMENT_MAX_COUNT`.
    pub url_segment_max_count: Option<usize>,
    /// `HTTPQ_ALLOW_RESTRICTED_CHARS`: `true`/`false`/`1`/`0`.
    pub allow_restricted_chars: Option<bool>,
    /// `HTTPQ_ERROR_LOG_DIR`: the directory of the `httperrN.log` files.
    pub error_log_dir: Option<std::path::PathBuf>,
    /// `HTTPQ_ACCESS_LOG_DIR`, with `HTTPQ_ACCESS_LOG_ROLLOVER` (hourly, daily, weekly,
    /// monthly, size:BYTES), `HTTPQ_ACCESS_LOG_FIELDS` (W3C names, comma-separated) and
    /// `HTTPQ_ACCESS_LOG_LOCAL_TIME` (true/false): the W3C access log.
    pub access_log: Option<crate::logging::AccessLogOptions>,
    /// `HTTPQ_METRICS_ADDRESS`: where Prometheus metrics are served (`127.0.0.1:9180`).
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// The environment variables [`OptionsPatch::from_lookup`] reads, for documentation and `--help`.
pub const ENV_VARS: &[&str] = &[
    "HTTPQ_URLS",
    "HTTPQ_ERROR_LOG_DIR",
    "HTTPQ_ACCESS_LOG_DIR",
    "HTTPQ_ACCESS_LOG_ROLLOVER",
    "HTTPQ_ACCESS_LOG_FIELDS",
    "HTTPQ_ACCESS_LOG_LOCAL_TIME",
    "HTTPQ_METRICS_ADDRESS",
    "HTTPQ_HTTP_PORTS",
    "HTTPQ_HTTPS_PORTS",
    "HTTPQ_REQUEST_QUEUE_NAME",
    "HTTPQ_REQUEST_QUEUE_MODE",
    "HTTPQ_QUEUE_RETENTION",
    "HTTPQ_REQUEST_QUEUE_LIMIT",
    "HTTPQ_HTTP503_VERBOSITY",
    "HTTPQ_MAX_ACCEPTS",
    "HTTPQ_MAX_CONNECTIONS",
    "HTTPQ_MAX_REQUEST_BODY_SIZE",
    "HTTPQ_ENTITY_BODY_TIMEOUT",
    "HTTPQ_DRAIN_ENTITY_BODY_TIMEOUT",
    "HTTPQ_REQUEST_QUEUE_TIMEOUT",
    "HTTPQ_IDLE_CONNECTION_TIMEOUT",
    "HTTPQ_HEADER_WAIT_TIMEOUT",
    "HTTPQ_MIN_SEND_BYTES_PER_SECOND",
    "HTTPQ_MAX_FIELD_LENGTH",
    "HTTPQ_MAX_REQUEST_BYTES",
    "HTTPQ_MAX_HEADERS",
    "HTTPQ_URL_SEGMENT_MAX_LENGTH",
    "HTTPQ_URL_SEGMENT_MAX_COUNT",
    "HTTPQ_ALLOW_RESTRICTED_CHARS",
];

impl OptionsPatch {
    /// Reads every `HTTPQ_*` option through `lookup` (pass `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    /// The first variable whose value does not parse, named with what it expects.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OptionError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let num = |name: &str, what: &str| -> Result<Option<u64>, OptionError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| OptionError::new(name, v, what))
                })
                .transpose()
        };
        let secs = |name: &str| -> Result<Option<Duration>, OptionError> {
            Ok(num(name, "expected a whole number of seconds, e.g. 120")?.map(Duration::from_secs))
        };
        let limit = |name: &str| -> Result<Option<Option<u64>>, OptionError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().eq_ignore_ascii_case("unlimited") => Ok(Some(None)),
                Some(v) => v.trim().parse::<u64>().map(|n| Some(Some(n))).map_err(|_| {
                    OptionError::new(name, v, "expected a number of bytes or \"unlimited\"")
                }),
            }
        };
        let usize_of = |name: &str| -> Result<Option<usize>, OptionError> {
            num(name, "expected a whole number")?
                .map(|n| {
                    usize::try_from(n)
                        .map_err(|_| OptionError::new(name, n.to_string(), "is too large"))
                })
                .transpose()
        };
        let u32_of = |name: &str, what: &str| -> Result<Option<u32>, OptionError> {
            num(name, what)?
                .map(|n| {
                    u32::try_from(n).map_err(|_| {
                        OptionError::new(name, n.to_string(), "must be at most 4294967295")
                    })
                })
                .transpose()
        };
        let flag = |name: &str| -> Result<Option<bool>, OptionError> {
            get(name)
                .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => Ok(true),
                    "0" | "false" | "no" => Ok(false),
                    _ => Err(OptionError::new(name, v, "expected true or false")),
                })
                .transpose()
        };
        let ports = |name: &str| -> Result<Option<Vec<u16>>, OptionError> {
            get(name)
                .map(|v| {
                    split_list(&v)
                        .map(|p| {
                            p.parse::<u16>().map_err(|_| {
                                OptionError::new(
                                    name,
                                    v.clone(),
                                    "expected port numbers 0-65535 separated by ';', e.g. 8080;8081",
                                )
                            })
                        })
                        .collect()
                })
                .transpose()
        };
        Ok(OptionsPatch {
            urls: get("HTTPQ_URLS").map(|v| split_list(&v).map(str::to_owned).collect()),
            http_ports: ports("HTTPQ_HTTP_PORTS")?,
            https_ports: ports("HTTPQ_HTTPS_PORTS")?,
            request_queue_name: get("HTTPQ_REQUEST_QUEUE_NAME")
                .map(|v| {
                    let name = v.trim().to_owned();
                    name.parse::<crate::queue::QueueName>()
                        .map(|_| name)
                        .map_err(|why| OptionError::new("HTTPQ_REQUEST_QUEUE_NAME", v, &why))
                })
                .transpose()?,
            request_queue_mode: get("HTTPQ_REQUEST_QUEUE_MODE")
                .map(|v| {
                    v.parse().map_err(|_| {
                        OptionError::new(
                            "HTTPQ_REQUEST_QUEUE_MODE",
                            v,
                            "expected create, attach or create_or_attach",
                        )
                    })
                })
                .transpose()?,
            queue_retention: secs("HTTPQ_QUEUE_RETENTION")?,
            request_queue_acl: get("HTTPQ_REQUEST_QUEUE_ACL")
                .map(|v| {
                    split_list(&v)
                        .map(|e| {
                            e.parse().map_err(|why: String| {
                                OptionError::new("HTTPQ_REQUEST_QUEUE_ACL", v.clone(), &why)
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?,
            request_queue_limit: u32_of(
                "HTTPQ_REQUEST_QUEUE_LIMIT",
                "expected a number 1-2147483647",
            )?,
            http503_verbosity: get("HTTPQ_HTTP503_VERBOSITY")
                .map(|v| {
                    v.parse().map_err(|_| {
                        OptionError::new(
                            "HTTPQ_HTTP503_VERBOSITY",
                            v,
                            "expected basic, limited or full",
                        )
                    })
                })
                .transpose()?,
            max_accepts: u32_of(
                "HTTPQ_MAX_ACCEPTS",
                "expected a number from 1 to 2147483647",
            )?,
            alt_svc: flag("HTTPQ_ALT_SVC")?,
            max_connections: limit("HTTPQ_MAX_CONNECTIONS")?,
            max_request_body_size: limit("HTTPQ_MAX_REQUEST_BODY_SIZE")?,
            entity_body: secs("HTTPQ_ENTITY_BODY_TIMEOUT")?,
            drain_entity_body: secs("HTTPQ_DRAIN_ENTITY_BODY_TIMEOUT")?,
            request_queue: secs("HTTPQ_REQUEST_QUEUE_TIMEOUT")?,
            idle_connection: secs("HTTPQ_IDLE_CONNECTION_TIMEOUT")?,
            header_wait: secs("HTTPQ_HEADER_WAIT_TIMEOUT")?,
            min_send_bytes_per_second: u32_of(
                "HTTPQ_MIN_SEND_BYTES_PER_SECOND",
                "expected bytes per second (0 disables)",
            )?,
            max_field_length: usize_of("HTTPQ_MAX_FIELD_LENGTH")?,
            max_request_bytes: usize_of("HTTPQ_MAX_REQUEST_BYTES")?,
            max_headers: usize_of("HTTPQ_MAX_HEADERS")?,
            url_segment_max_length: usize_of("HTTPQ_URL_SEGMENT_MAX_LENGTH")?,
            url_segment_max_count: usize_of("HTTPQ_URL_SEGMENT_MAX_COUNT")?,
            error_log_dir: get("HTTPQ_ERROR_LOG_DIR")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            allow_restricted_chars: flag("HTTPQ_ALLOW_RESTRICTED_CHARS")?,
            access_log: get("HTTPQ_ACCESS_LOG_DIR")
                .map(|dir| -> Result<_, OptionError> {
                    let mut log = crate::logging::AccessLogOptions::new(dir.trim());
                    if let Some(v) = get("HTTPQ_ACCESS_LOG_ROLLOVER") {
                        log.rollover =
                            v.trim()
                                .parse()
                                .map_err(|e: crate::logging::InvalidRollover| {
                                    OptionError::new(
                                        "HTTPQ_ACCESS_LOG_ROLLOVER",
                                        v.as_str(),
                                        e.to_string(),
                                    )
                                })?;
                    }
                    if let Some(v) = get("HTTPQ_ACCESS_LOG_FIELDS") {
                        log.fields = v.parse().map_err(|e: crate::logging::UnknownLogField| {
                            OptionError::new("HTTPQ_ACCESS_LOG_FIELDS", v.as_str(), e.to_string())
                        })?;
                    }
                    log.local_time = flag("HTTPQ_ACCESS_LOG_LOCAL_TIME")?.unwrap_or(false);
                    Ok(log)
                })
                .transpose()?,
            metrics_address: get("HTTPQ_METRICS_ADDRESS")
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        OptionError::new(
                            "HTTPQ_METRICS_ADDRESS",
                            v,
                            "expected an address and port, e.g. 127.0.0.1:9180",
                        )
                    })
                })
                .transpose()?,
        })
    }

    /// Applies every value this patch holds onto `options`.
    pub fn apply(&self, options: &mut Options) {
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        if let Some(name) = &self.request_queue_name {
            options.request_queue_name = Some(name.clone());
        }
        set(&mut options.request_queue_mode, &self.request_queue_mode);
        set(&mut options.queue_retention, &self.queue_retention);
        set(&mut options.request_queue_acl, &self.request_queue_acl);
        set(&mut options.request_queue_limit, &self.request_queue_limit);
        set(&mut options.http503_verbosity, &self.http503_verbosity);
        set(&mut options.max_accepts, &self.max_accepts);
        set(&mut options.alt_svc, &self.alt_svc);
        if let Some(dir) = &self.error_log_dir {
            options.error_log_dir = Some(dir.clone());
        }
        if let Some(log) = &self.access_log {
            options.access_log = Some(log.clone());
        }
        if let Some(addr) = self.metrics_address {
            options.metrics_address = Some(addr);
        }
        set(&mut options.max_connections, &self.max_connections);
        set(
            &mut options.max_request_body_size,
            &self.max_request_body_size,
        );
        let t = &mut options.timeouts;
        set(&mut t.entity_body, &self.entity_body);
        set(&mut t.drain_entity_body, &self.drain_entity_body);
        set(&mut t.request_queue, &self.request_queue);
        set(&mut t.idle_connection, &self.idle_connection);
        set(&mut t.header_wait, &self.header_wait);
        set(
            &mut t.min_send_bytes_per_second,
            &self.min_send_bytes_per_second,
        );
        set(&mut options.parser.max_field_length, &self.max_field_length);
        set(
            &mut options.parser.max_request_bytes,
            &self.max_request_bytes,
        );
        set(&mut options.parser.max_headers, &self.max_headers);
        set(
            &mut options.url.segment_max_length,
            &self.url_segment_max_length,
        );
        set(
            &mut options.url.segment_max_count,
            &self.url_segment_max_count,
        );
        set(
            &mut options.url.allow_restricted_chars,
            &self.allow_restricted_chars,
        );
    }
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn patch(vars: &[(&str, &str)]) -> Result<OptionsPatch, OptionError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OptionsPatch::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_httpsys() {
        let o = Options::with_cores(2);
        assert_eq!(o.request_queue_limit, 1000);
        // HTTP.sys's 5 × cores, but never fewer than the 128 the daemon hop needs.
        assert_eq!(o.max_accepts, 128);
        assert_eq!(Options::with_cores(32).max_accepts, 160);
        assert_eq!(Options::with_cores(26).max_accepts, 130);
        assert_eq!(o.max_request_body_size, Some(30_000_000));
        assert_eq!(o.timeouts.header_wait, Duration::from_secs(120));
        assert_eq!(o.timeouts.min_send_bytes_per_second, 150);
        assert_eq!(o.parser.max_field_length, 16384);
        assert_eq!(o.parser.max_request_bytes, 16384);
        assert_eq!(o.url.segment_max_length, 260);
        assert_eq!(o.url.segment_max_count, 255);
        assert_eq!(o.http503_verbosity, Http503Verbosity::Basic);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn env_values_apply() {
        let p = patch(&[
            ("HTTPQ_MAX_REQUEST_BODY_SIZE", "unlimited"),
            ("HTTPQ_REQUEST_QUEUE_LIMIT", "7"),
            ("HTTPQ_HTTP503_VERBOSITY", "Full"),
            ("HTTPQ_HEADER_WAIT_TIMEOUT", "3"),
            ("HTTPQ_URLS", "http://localhost:1/;http://+:2/a/"),
            ("HTTPQ_HTTP_PORTS", "8080,8081"),
        ])
        .expect("valid");
        let mut o = Options::with_cores(1);
        p.apply(&mut o);
        assert_eq!(o.max_request_body_size, None);
        assert_eq!(o.request_queue_limit, 7);
        assert_eq!(o.http503_verbosity, Http503Verbosity::Full);
        assert_eq!(o.timeouts.header_wait, Duration::from_secs(3));
        assert_eq!(p.urls.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(p.http_ports, Some(vec![8080, 8081]));
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err = patch(&[("HTTPQ_REQUEST_QUEUE_LIMIT", "lots")]).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("HTTPQ_REQUEST_QUEUE_LIMIT"), "{msg}");
        assert!(msg.contains("lots"), "{msg}");
        let err = patch(&[("HTTPQ_HTTP503_VERBOSITY", "loud")]).expect_err("must fail");
        assert!(err.to_string().contains("basic, limited or full"));
    }

    #[test]
    fn zero_queue_limit_is_rejected() {
        let mut o = Options::with_cores(1);
        o.request_queue_limit = 0;
        assert_eq!(
            o.validate().expect_err("0 is invalid").source,
            "request_queue_limit"
        );
    }

    #[test]
    fn max_accepts_stays_within_the_wire_credit_bound() {
        let mut o = Options::with_cores(1);
        o.max_accepts = 0x7FFF_FFFF;
        assert!(o.validate().is_ok());
        for bad in [0, 0x8000_0000, u32::MAX] {
            o.max_accepts = bad;
            let err = o.validate().expect_err("out of range");
            assert_eq!(err.source, "max_accepts");
            assert!(
                err.to_string().contains("between 1 and 2147483647"),
                "{err}"
            );
        }
    }
}
