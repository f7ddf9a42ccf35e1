//! Prometheus metrics (OpenMetrics text, with `prometheus-client`), opt-in: requests by
//! queue, protocol and status class; refusals by HTTP.sys reason; request duration; bytes each
//! way; requests that waited for a free receive (IPC credit); queue depth and active
//! requests; connections accepted and open; TLS handshakes. Labels are low-cardinality by
//! construction: queue names (bounded by the queue quota), three protocols, five status
//! classes, the fixed reason phrases.
//!
//! They are served at `GET /metrics` on the address the operator chose
//! (`metrics_address`, `HTTPQ_METRICS_ADDRESS`, `httpqd --metrics-address`), and nowhere by
//! default.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use httpq_core::h1::{self, Persistence, ResponseFraming};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Inner;
use crate::exchange::Record;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    queue: String,
    protocol: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Status classes, as labels: 1xx..5xx, and `none` when no status was sent.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
/// Protocols, as labels.
const PROTOCOLS: [&str; 3] = ["http1", "http2", "http3"];

/// One queue's series, looked up once and kept (a family lookup hashes and locks): each is
/// created on first use, so only series that happened are shown. They leave the families
/// when the queue goes, so queues created and closed under ever new names (a local user can)
/// never grow the metrics.
#[derive(Debug)]
pub(crate) struct QueueCounters {
    label: String,
    requests: [[OnceLock<Counter>; 6]; 3],
    waited: OnceLock<Counter>,
    /// The families to take the series out of (absent for the unrouted requests' series).
    families: Option<(Family<RequestLabels, Counter>, Family<QueueLabel, Counter>)>,
}

impl QueueCounters {
    fn new(
        label: &str,
        families: Option<(Family<RequestLabels, Counter>, Family<QueueLabel, Counter>)>,
    ) -> QueueCounters {
        QueueCounters {
            label: label.to_owned(),
            requests: Default::default(),
            waited: OnceLock::new(),
            families,
        }
    }
}

impl Drop for QueueCounters {
    fn drop(&mut self) {
        let Some((requests, waited)) = &self.families else {
            return;
        };
        for (p, classes) in self.requests.iter().enumerate() {
            for (c, slot) in classes.iter().enumerate() {
                if slot.get().is_some() {
                    requests.remove(&RequestLabels {
                        queue: self.label.clone(),
                        protocol: PROTOCOLS[p],
                        status: CLASSES[c],
                    });
                }
            }
        }
        if self.waited.get().is_some() {
            waited.remove(&QueueLabel {
                queue: self.label.clone(),
            });
        }
    }
}

/// One protocol's series, kept likewise.
#[derive(Debug, Default)]
struct ProtocolSeries {
    duration: OnceLock<Histogram>,
    bytes_in: OnceLock<Counter>,
    bytes_out: OnceLock<Counter>,
}

/// The engine's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    per_protocol: [ProtocolSeries; 3],
    /// Requests not routed to a queue.
    unrouted: QueueCounters,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    duration: Family<ProtocolLabel, Histogram>,
    bytes_in: Family<ProtocolLabel, Counter>,
    bytes_out: Family<ProtocolLabel, Counter>,
    waited: Family<QueueLabel, Counter>,
    depth: Family<QueueLabel, Gauge>,
    active: Family<QueueLabel, Gauge>,
    accepted: Family<TransportLabel, Counter>,
    open: Gauge,
    handshakes: Family<ResultLabel, Counter>,
}

fn protocol(v: http::Version) -> usize {
    match v {
        http::Version::HTTP_2 => 1,
        http::Version::HTTP_3 => 2,
        _ => 0,
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("httpq");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests ended, by request queue, protocol and status class (none: no status was sent)",
            requests.clone(),
        );
        let refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "refusals",
            "Requests the listener refused itself, by HTTP.sys reason phrase",
            refusals.clone(),
        );
        let duration = Family::<ProtocolLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_25, 0.0005, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Time from the first byte of a request to the end of its response",
            duration.clone(),
        );
        let bytes_in = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "received_bytes",
            "Request bytes received (heads and bodies)",
            bytes_in.clone(),
        );
        let bytes_out = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "sent_bytes",
            "Response bytes sent (heads and bodies)",
            bytes_out.clone(),
        );
        let waited = Family::<QueueLabel, Counter>::default();
        registry.register(
            "queue_waits",
            "Requests that waited for a free receive: every request credit (daemon mode) or receive slot was in use",
            waited.clone(),
        );
        let depth = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "queue_depth",
            "Requests waiting in a request queue for a receive",
            depth.clone(),
        );
        let active = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "active_requests",
            "Requests handed to the app and not yet answered",
            active.clone(),
        );
        let accepted = Family::<TransportLabel, Counter>::default();
        registry.register(
            "connections_accepted",
            "Connections accepted, by transport (tcp, quic)",
            accepted.clone(),
        );
        let open = Gauge::default();
        registry.register("connections_open", "TCP connections open", open.clone());
        let handshakes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on TCP, by result (ok, failed)",
            handshakes.clone(),
        );
        Metrics {
            per_protocol: Default::default(),
            unrouted: QueueCounters::new("-", None),
            registry,
            requests,
            refusals,
            duration,
            bytes_in,
            bytes_out,
            waited,
            depth,
            active,
            accepted,
            open,
            handshakes,
        }
    }

    /// The series of the queue named `label`, for the queue to keep (they go with it).
    pub(crate) fn for_queue(&self, label: &str) -> Arc<QueueCounters> {
        Arc::new(QueueCounters::new(
            label,
            Some((self.requests.clone(), self.waited.clone())),
        ))
    }

    pub(crate) fn observe(&self, r: &Record) {
        let p = protocol(r.version);
        let class = match r.status {
            100..=599 => usize::from(r.status / 100 - 1),
            _ => 5,
        };
        let queue = r.counters.as_deref().unwrap_or(&self.unrouted);
        let series = |slot: &OnceLock<Counter>, status: &'static str| {
            slot.get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels {
                        queue: queue.label.clone(),
                        protocol: PROTOCOLS[p],
                        status,
                    })
                    .clone()
            })
            .inc();
        };
        series(&queue.requests[p][class], CLASSES[class]);
        if r.waited {
            queue
                .waited
                .get_or_init(|| {
                    self.waited
                        .get_or_create(&QueueLabel {
                            queue: queue.label.clone(),
                        })
                        .clone()
                })
                .inc();
        }
        if let Some(reason) = r.reason {
            self.refusals.get_or_create(&ReasonLabel { reason }).inc();
        }
        let label = ProtocolLabel {
            protocol: PROTOCOLS[p],
        };
        let by = &self.per_protocol[p];
        #[allow(clippy::cast_precision_loss)]
        by.duration
            .get_or_init(|| self.duration.get_or_create(&label).clone())
            .observe(r.ended.saturating_sub(r.started) as f64 / 1e9);
        by.bytes_in
            .get_or_init(|| self.bytes_in.get_or_create(&label).clone())
            .inc_by(r.bytes_in);
        by.bytes_out
            .get_or_init(|| self.bytes_out.get_or_create(&label).clone())
            .inc_by(r.bytes_out);
    }

    /// A connection was accepted on `transport` (`tcp`, `quic`).
    pub(crate) fn accepted(&self, transport: &'static str) {
        self.accepted
            .get_or_create(&TransportLabel { transport })
            .inc();
    }

    /// A TLS handshake on TCP ended.
    pub(crate) fn handshake(&self, ok: bool) {
        self.handshakes
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// The metrics now, as OpenMetrics text.
    fn render(&self, inner: &Inner) -> String {
        // Gauges of state are read when scraped: the queues that have prefixes now.
        self.depth.clear();
        self.active.clear();
        #[allow(clippy::cast_possible_wrap)]
        self.open
            .set(inner.conns.load(std::sync::atomic::Ordering::Relaxed) as i64);
        for (name, depth, active) in inner.queue_gauges() {
            self.depth
                .get_or_create(&QueueLabel {
                    queue: name.clone(),
                })
                .set(i64::from(depth));
            self.active
                .get_or_create(&QueueLabel { queue: name })
                .set(i64::from(active));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Scrapes served at once; more connections wait in the listen backlog.
const MAX_SCRAPES: usize = 8;

/// Serves `GET /metrics` on `listener` until the engine goes.
async fn serve(inner: Weak<Inner>, listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let limits = strong.options.parser;
        drop(strong);
        let inner = inner.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // One request per connection, read within 10 s and 16 KiB.
            let mut buf = BytesMut::with_capacity(1024);
            let head = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match h1::parse_request_head(&mut buf, &limits) {
                        Ok(Some(head)) => return Some(head),
                        Ok(None) if buf.len() < 16 * 1024 => {}
                        _ => return None,
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(n) if n > 0 => {}
                        _ => return None,
                    }
                }
            })
            .await
            .ok()
            .flatten();
            let (status, body, kind) = match &head {
                Some(h) if h.method == Method::GET && &h.target[..] == b"/metrics" => {
                    let Some(inner) = inner.upgrade() else { return };
                    let Some(m) = inner.observers.metrics.as_ref() else {
                        return;
                    };
                    let text = m.render(&inner);
                    // OpenMetrics for scrapers that ask for it, else Prometheus text 0.0.4.
                    let open_metrics = h.headers.get_all(header::ACCEPT).iter().any(|v| {
                        v.to_str()
                            .is_ok_and(|v| v.contains("application/openmetrics-text"))
                    });
                    if open_metrics {
                        (
                            StatusCode::OK,
                            text,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                    } else {
                        (
                            StatusCode::OK,
                            prometheus_text(&text),
                            "text/plain; version=0.0.4; charset=utf-8",
                        )
                    }
                }
                Some(_) => (
                    StatusCode::NOT_FOUND,
                    "404 Not Found: metrics are at GET /metrics\n".to_owned(),
                    "text/plain; charset=utf-8",
                ),
                None => (
                    StatusCode::BAD_REQUEST,
                    "400 Bad Request\n".to_owned(),
                    "text/plain; charset=utf-8",
                ),
            };
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            let mut out = BytesMut::with_capacity(body.len() + 256);
            crate::date::with_date(|d| {
                h1::encode_response_head(
                    &mut out,
                    status,
                    &headers,
                    ResponseFraming::Length(body.len() as u64),
                    None,
                    Persistence::Close,
                    d,
                );
            });
            out.extend_from_slice(body.as_bytes());
            let _ = tokio::time::timeout(Duration::from_secs(10), stream.write_all(&out)).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// The Prometheus text format (0.0.4) of OpenMetrics text: a counter family's `# HELP` and
/// `# TYPE` name its samples (`x_total`, where OpenMetrics says `x`), and there is no `# EOF`.
fn prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Binds the metrics address (inside a tokio runtime).
///
/// # Errors
/// The address cannot be bound.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(64)
}

/// Serves the metrics on `listener`; the task holds the engine only weakly and ends with it.
pub(crate) fn start(inner: &Arc<Inner>, listener: TcpListener) {
    tokio::spawn(serve(Arc::downgrade(inner), listener));
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queues_series_go_with_it() {
        let m = super::Metrics::new();
        let text = |m: &super::Metrics| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap_or_default();
            out
        };
        let mut r = crate::exchange::sample_record();
        r.waited = true;
        r.counters = Some(m.for_queue("alice/q1"));
        m.observe(&r);
        let before = text(&m);
        assert!(
            before.contains("httpq_requests_total{queue=\"alice/q1\""),
            "{before}"
        );
        assert!(
            before.contains("httpq_queue_waits_total{queue=\"alice/q1\"}"),
            "{before}"
        );
        // The record and the queue drop their handles: the series leave the output.
        drop(r);
        let after = text(&m);
        assert!(!after.contains("alice/q1"), "{after}");
    }

    #[test]
    fn counters_are_named_by_their_samples_in_prometheus_text() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"b\"} 1\n# HELP x_open Open.\n# TYPE x_open gauge\nx_open 2\n# EOF\n";
        assert_eq!(
            super::prometheus_text(om),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{a=\"b\"} 1\n# HELP x_open Open.\n# TYPE x_open gauge\nx_open 2\n"
        );
    }
}
