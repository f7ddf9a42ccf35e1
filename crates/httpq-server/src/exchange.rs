//! The one record every exchange leaves, for every protocol and in both modes, refused ones
//! included: what was asked, where it went, how it was answered, the bytes each way and the
//! time it took. Protocol handlers fill it in as the exchange goes; it is emitted once, when
//! the exchange ends ([`Exchange`]'s `Drop`), to the metrics and the W3C access log. When
//! neither is on, an [`Exchange`] is empty and every call on it returns at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Version, header};
use httpq_core::reason::Rejection;

use crate::access_log::AccessLog;
use crate::app::ConnectionInfo;
use crate::body::BodyTx;
use crate::metrics::Metrics;
use crate::timing::monotonic_nanos;

/// `sc-win32-status` when the client went away before the response was complete
/// (`ERROR_NETNAME_DELETED`).
pub(crate) const WIN32_CLIENT_GONE: u32 = 64;
/// `sc-win32-status` when the exchange was aborted: the app reset the stream or its body
/// failed (`ERROR_CONNECTION_ABORTED`).
pub(crate) const WIN32_ABORTED: u32 = 1236;

/// What the record says about one exchange.
#[derive(Debug)]
pub(crate) struct Record {
    /// When the exchange began (`CLOCK_MONOTONIC` ns): its head started to arrive.
    pub(crate) started: u64,
    /// When it ended.
    pub(crate) ended: u64,
    pub(crate) client: SocketAddr,
    pub(crate) server: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) version: Version,
    pub(crate) method: Option<Method>,
    /// The target as the client sent it.
    pub(crate) target: Bytes,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) referer: Option<HeaderValue>,
    pub(crate) cookie: Option<HeaderValue>,
    /// The request queue's name (`-` for an anonymous queue), once routed.
    pub(crate) queue: Option<Arc<str>>,
    /// The request id the app sees, once the request was built.
    pub(crate) request_id: Option<u64>,
    /// The final status sent; 0 when none was.
    pub(crate) status: u16,
    /// The HTTP.sys reason phrase when the listener refused the request itself.
    pub(crate) reason: Option<&'static str>,
    pub(crate) win32_status: u32,
    /// Request bytes: the head (for HTTP/2 and HTTP/3 its decoded size, RFC 9113 §6.5.2's
    /// measure) and the body.
    pub(crate) bytes_in: u64,
    /// Response bytes: on HTTP/1.1 exactly what was written (before TLS); on HTTP/2 and
    /// HTTP/3 the decoded head and the body.
    pub(crate) bytes_out: u64,
    /// The request waited for a free receive (every IPC credit was in use, or every
    /// embedded receive slot).
    pub(crate) waited: bool,
    /// The request body, counted into `bytes_in` at the end.
    pub(crate) body: Option<BodyTx>,
    /// The metrics series of the queue, when metrics are on and the request was routed.
    pub(crate) counters: Option<Arc<crate::metrics::QueueCounters>>,
}

impl Record {
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub(crate) fn version_str(&self) -> &'static str {
        match self.version {
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            Version::HTTP_09 => "HTTP/0.9",
            _ => "HTTP/1.1",
        }
    }

    /// The time taken, in milliseconds.
    pub(crate) fn millis(&self) -> u64 {
        self.ended.saturating_sub(self.started) / 1_000_000
    }
}

/// Where records go: the engine's observers. Cheap to check when nothing observes.
#[derive(Debug)]
pub(crate) struct Observers {
    /// Something observes: metrics, or an access log (changes at runtime).
    on: AtomicBool,
    /// The listener-wide (centralized) access log; it takes every record.
    central: RwLock<Option<Arc<AccessLog>>>,
    /// Access logs of single named queues, when there is no centralized one.
    per_queue: RwLock<std::collections::HashMap<String, Arc<AccessLog>>>,
    pub(crate) metrics: Option<Metrics>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Observers {
    pub(crate) fn new(metrics: Option<Metrics>) -> Observers {
        Observers {
            on: AtomicBool::new(metrics.is_some()),
            central: RwLock::new(None),
            per_queue: RwLock::new(std::collections::HashMap::new()),
            metrics,
        }
    }

    fn update_on(&self) {
        let on = self.metrics.is_some()
            || read(&self.central).is_some()
            || !read(&self.per_queue).is_empty();
        self.on.store(on, Ordering::Release);
    }

    /// Sets (or with `None` removes) the centralized access log, or the log of queue `queue`.
    pub(crate) fn set_access_log(&self, queue: Option<&str>, log: Option<Arc<AccessLog>>) {
        match (queue, log) {
            (None, log) => *write(&self.central) = log,
            (Some(q), Some(log)) => {
                write(&self.per_queue).insert(q.to_owned(), log);
            }
            (Some(q), None) => {
                write(&self.per_queue).remove(q);
            }
        }
        self.update_on();
    }

    /// Every access log there is (centralized first).
    pub(crate) fn access_logs(&self) -> Vec<(Option<String>, Arc<AccessLog>)> {
        let mut all: Vec<_> = read(&self.central)
            .iter()
            .map(|l| (None, l.clone()))
            .collect();
        all.extend(
            read(&self.per_queue)
                .iter()
                .map(|(q, l)| (Some(q.clone()), l.clone())),
        );
        all
    }

    fn finish(&self, record: Box<Record>) {
        if let Some(m) = &self.metrics {
            m.observe(&record);
        }
        let log = read(&self.central).clone().or_else(|| {
            let q = record.queue.as_deref()?;
            read(&self.per_queue).get(q).cloned()
        });
        if let Some(log) = log {
            log.log(record);
        }
    }
}

/// An exchange under way; emits its [`Record`] when dropped. Its queue and request id are
/// kept even when nothing observes (they are cheap), for the error log.
#[derive(Debug)]
pub(crate) struct Exchange {
    queue: Option<Arc<str>>,
    request_id: Option<u64>,
    rec: Option<(Arc<Observers>, Box<Record>)>,
}

impl Exchange {
    /// An exchange that began at `started` on `info`'s connection, or an empty one when
    /// nothing observes.
    pub(crate) fn start(
        observers: &Arc<Observers>,
        info: &ConnectionInfo,
        version: Version,
        started: u64,
    ) -> Exchange {
        if !observers.on.load(Ordering::Acquire) {
            return Exchange::none();
        }
        Exchange {
            queue: None,
            request_id: None,
            rec: Some((
                observers.clone(),
                Box::new(Record {
                    started: if started == 0 {
                        monotonic_nanos()
                    } else {
                        started
                    },
                    ended: 0,
                    client: info.remote_addr,
                    server: info.local_addr,
                    tls: info.tls().is_some(),
                    version,
                    method: None,
                    target: Bytes::new(),
                    host: None,
                    user_agent: None,
                    referer: None,
                    cookie: None,
                    queue: None,
                    request_id: None,
                    status: 0,
                    reason: None,
                    win32_status: 0,
                    bytes_in: 0,
                    bytes_out: 0,
                    waited: false,
                    body: None,
                    counters: None,
                }),
            )),
        }
    }

    fn rec(&mut self) -> Option<&mut Record> {
        self.rec.as_mut().map(|(_, r)| &mut **r)
    }

    /// The request's method, target and the headers the log keeps; `head_bytes`: the size
    /// of its head.
    pub(crate) fn request(
        &mut self,
        method: &Method,
        target: &Bytes,
        headers: &HeaderMap,
        head_bytes: u64,
    ) {
        if let Some(r) = self.rec() {
            r.method = Some(method.clone());
            r.target = target.clone();
            r.host = headers.get(header::HOST).cloned();
            r.user_agent = headers.get(header::USER_AGENT).cloned();
            r.referer = headers.get(header::REFERER).cloned();
            r.cookie = headers.get(header::COOKIE).cloned();
            r.bytes_in += head_bytes;
        }
    }

    /// The host the request was routed on, when it is not in a `Host` header (`:authority`,
    /// an absolute-form target).
    pub(crate) fn host(&mut self, host: &HeaderValue) {
        if let Some(r) = self.rec() {
            r.host = Some(host.clone());
        }
    }

    /// The queue the request was routed to.
    pub(crate) fn routed(&mut self, queue: &crate::Queue) {
        self.queue = Some(queue.label.clone());
        if let Some((observers, r)) = self.rec.as_mut() {
            if let Some(m) = &observers.metrics {
                r.counters = Some(
                    queue
                        .counters
                        .get_or_init(|| m.for_queue(&queue.label))
                        .clone(),
                );
            }
        }
    }

    /// The request waited for a free receive.
    pub(crate) fn waited(&mut self) {
        if let Some(r) = self.rec() {
            r.waited = true;
        }
    }

    /// The id the request was given.
    pub(crate) fn id(&mut self, id: u64) {
        self.request_id = Some(id);
    }

    /// The listener refused the request itself with `rejection`.
    pub(crate) fn refused(&mut self, rejection: &Rejection) {
        if let Some(r) = self.rec() {
            r.status = rejection.status();
            r.reason = Some(rejection.reason.phrase());
        }
    }

    /// Why the request failed on its way (the log's `s-reason`), while the status stays the
    /// answer's.
    pub(crate) fn reason(&mut self, rejection: &Rejection) {
        if let Some(r) = self.rec() {
            r.reason = Some(rejection.reason.phrase());
        }
    }

    /// The status of the final response sent.
    pub(crate) fn status(&mut self, status: u16) {
        if let Some(r) = self.rec() {
            r.status = status;
        }
    }

    /// `n` more bytes went to the client.
    pub(crate) fn sent(&mut self, n: u64) {
        if let Some(r) = self.rec() {
            r.bytes_out += n;
        }
    }

    /// The exchange did not complete: [`WIN32_CLIENT_GONE`] or [`WIN32_ABORTED`].
    pub(crate) fn failed(&mut self, win32_status: u32) {
        if let Some(r) = self.rec() {
            if r.win32_status == 0 {
                r.win32_status = win32_status;
            }
        }
    }

    /// The request body's channel: its bytes count as received when the exchange ends.
    pub(crate) fn body(&mut self, tx: &BodyTx) {
        if let Some((_, r)) = self.rec.as_mut() {
            r.body = Some(tx.clone());
        }
    }

    /// The queue's name, once routed.
    pub(crate) fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// The request id, once given.
    pub(crate) fn request_id(&self) -> Option<u64> {
        self.request_id
    }

    /// An exchange nothing sees (before a request begins).
    pub(crate) fn none() -> Exchange {
        Exchange {
            queue: None,
            request_id: None,
            rec: None,
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some((observers, mut record)) = self.rec.take() {
            record.queue = self.queue.take();
            record.request_id = self.request_id;
            record.ended = monotonic_nanos();
            if let Some(body) = record.body.take() {
                record.bytes_in += body.lock().received;
            }
            observers.finish(record);
        }
    }
}

/// The size of a header block as RFC 9113 §6.5.2 measures it (name + value + 32 each), plus
/// the pseudo-header line: the byte count HTTP/2 and HTTP/3 exchanges report.
pub(crate) fn head_size(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len() + 32) as u64)
        .sum::<u64>()
        + 32
}

/// A record for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn sample_record() -> Record {
    Record {
        started: 1_000_000,
        ended: 6_000_000,
        client: "127.0.0.1:5000".parse().unwrap(),
        server: "[::1]:8080".parse().unwrap(),
        tls: false,
        version: http::Version::HTTP_11,
        method: Some(http::Method::GET),
        target: bytes::Bytes::from_static(b"/a b/\x01?q=1"),
        host: Some(http::HeaderValue::from_static("example.com")),
        user_agent: Some(http::HeaderValue::from_static("Mozilla/5.0 (X11)")),
        referer: None,
        cookie: None,
        queue: Some("root/web".into()),
        request_id: Some(7),
        status: 404,
        reason: Some("NotFound"),
        win32_status: 0,
        bytes_in: 83,
        bytes_out: 162,
        waited: false,
        body: None,
        counters: None,
    }
}
