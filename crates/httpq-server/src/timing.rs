//! Request timing (HTTP.sys's `HttpSysRequestTimingType`, ASP.NET Core's
//! `IHttpSysRequestTimingFeature`): when each step of a request happened, on a clock the
//! listener and every app process on the host share (`CLOCK_MONOTONIC`, in nanoseconds), so
//! that times taken in the listener compare with the app's own in daemon mode too.

use std::time::Duration;

pub use httpq_wire::TimingKind;

/// The number of kinds HTTP.sys defines (0 `ConnectionStart` to 29 `Http3HeaderDecodeEnd`).
const KINDS: usize = 30;

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of every [`RequestTiming`] stamp.
#[must_use]
pub fn monotonic_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// When each step of a request happened, as `CLOCK_MONOTONIC` nanoseconds; a step that does
/// not apply (no TLS, HTTP/1.1's stream start) has no stamp. Found through
/// [`RequestContext::timing`](crate::RequestContext::timing), in both modes.
///
/// The stamps httpq records: `ConnectionStart` (accepted), `DataStart` (the first bytes of the
/// connection arrived: the ClientHello on TLS), `TlsHandshakeLeg1Start`/`End` (the TLS
/// handshake), `TlsCertificateLoadStart`/`End` (choosing the binding), `Http2StreamStart` /
/// `Http3StreamStart`, `RequestHeaderParseStart`/`End` (HTTP/1.1), `RequestRoutingStart`/`End`,
/// `RequestQueuedForIO` (waiting for a receiver) and `RequestDeliveredForIO` (handed to the app).
///
/// ```
/// use httpq_server::{RequestTiming, TimingKind};
/// let mut t = RequestTiming::default();
/// t.stamp_at(TimingKind::REQUEST_ROUTING_START, 1_000);
/// t.stamp_at(TimingKind::REQUEST_ROUTING_END, 4_000);
/// assert_eq!(t.try_get_timestamp(TimingKind::REQUEST_ROUTING_END), Some(4_000));
/// assert_eq!(
///     t.try_get_elapsed(TimingKind::REQUEST_ROUTING_START, TimingKind::REQUEST_ROUTING_END),
///     Some(std::time::Duration::from_nanos(3_000))
/// );
/// assert_eq!(t.try_get_timestamp(TimingKind::HTTP2_STREAM_START), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestTiming {
    stamps: [u64; KINDS],
}

impl Default for RequestTiming {
    fn default() -> Self {
        RequestTiming { stamps: [0; KINDS] }
    }
}

impl std::fmt::Debug for RequestTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.timestamps().map(|(k, n)| (k.0, n)))
            .finish()
    }
}

/// The connection-level stamps, kept with the connection: `ConnectionStart`, `DataStart`,
/// `TlsCertificateLoadStart`/`End`, `TlsHandshakeLeg1Start`/`End` (kinds 0 to 5).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct ConnStamps([u64; 6]);

impl ConnStamps {
    pub(crate) fn stamp(&mut self, kind: TimingKind) {
        self.stamp_at(kind, monotonic_nanos());
    }

    pub(crate) fn stamp_at(&mut self, kind: TimingKind, nanos: u64) {
        if let Some(s) = self.0.get_mut(usize::from(kind.0)) {
            *s = nanos;
        }
    }

    pub(crate) fn get(&self, kind: TimingKind) -> Option<u64> {
        self.0.get(usize::from(kind.0)).copied().filter(|n| *n != 0)
    }
}

/// The request-level stamps, kept with the request in a few words (copied with every
/// request, so kept small): the HTTP/2 or HTTP/3 stream start, the head parse, routing,
/// queueing (which starts when routing ends) and delivery.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct ReqStamps {
    slots: [u64; 6],
    /// Slot 0 is HTTP/3's stream start rather than HTTP/2's.
    http3: bool,
}

impl ReqStamps {
    /// The slot of a request-level kind.
    fn slot(&self, kind: TimingKind) -> Option<usize> {
        Some(match kind {
            TimingKind::HTTP2_STREAM_START if !self.http3 => 0,
            TimingKind::HTTP3_STREAM_START if self.http3 => 0,
            TimingKind::REQUEST_HEADER_PARSE_START => 1,
            TimingKind::REQUEST_HEADER_PARSE_END => 2,
            TimingKind::REQUEST_ROUTING_START => 3,
            TimingKind::REQUEST_ROUTING_END | TimingKind::REQUEST_QUEUED_FOR_IO => 4,
            TimingKind::REQUEST_DELIVERED_FOR_IO => 5,
            _ => return None,
        })
    }

    pub(crate) fn stamp(&mut self, kind: TimingKind) {
        self.stamp_at(kind, monotonic_nanos());
    }

    pub(crate) fn stamp_at(&mut self, kind: TimingKind, nanos: u64) {
        if kind == TimingKind::HTTP3_STREAM_START {
            self.http3 = true;
        }
        if let Some(i) = self.slot(kind) {
            self.slots[i] = nanos;
        }
    }

    pub(crate) fn get(&self, kind: TimingKind) -> Option<u64> {
        self.slot(kind).map(|i| self.slots[i]).filter(|n| *n != 0)
    }
}

/// A request's stamps as they cross to a daemon-mode app, in kind order.
pub(crate) fn to_wire(conn: &ConnStamps, req: &ReqStamps) -> Vec<httpq_wire::Timing> {
    // Sized once: a request records about a dozen stamps.
    let mut out = Vec::with_capacity(16);
    for (i, &nanos) in conn.0.iter().enumerate() {
        if nanos != 0 {
            if let Ok(kind) = u8::try_from(i) {
                out.push(httpq_wire::Timing {
                    kind: TimingKind(kind),
                    nanos,
                });
            }
        }
    }
    for kind in REQUEST_KINDS {
        if let Some(nanos) = req.get(kind) {
            out.push(httpq_wire::Timing { kind, nanos });
        }
    }
    out
}

/// The connection's and the request's stamps from those that crossed from the listener.
pub(crate) fn from_wire(timings: &[httpq_wire::Timing]) -> (ConnStamps, ReqStamps) {
    let mut conn = ConnStamps::default();
    let mut req = ReqStamps::default();
    for t in timings {
        if usize::from(t.kind.0) < conn.0.len() {
            conn.stamp_at(t.kind, t.nanos);
        } else {
            req.stamp_at(t.kind, t.nanos);
        }
    }
    (conn, req)
}

/// The kinds a request's own stamps may hold, in kind order.
const REQUEST_KINDS: [TimingKind; 8] = [
    TimingKind::HTTP2_STREAM_START,
    TimingKind::HTTP3_STREAM_START,
    TimingKind::REQUEST_HEADER_PARSE_START,
    TimingKind::REQUEST_HEADER_PARSE_END,
    TimingKind::REQUEST_ROUTING_START,
    TimingKind::REQUEST_ROUTING_END,
    TimingKind::REQUEST_QUEUED_FOR_IO,
    TimingKind::REQUEST_DELIVERED_FOR_IO,
];

impl RequestTiming {
    /// The whole timeline from a connection's and a request's stamps.
    pub(crate) fn from_parts(conn: &ConnStamps, req: &ReqStamps) -> RequestTiming {
        let mut t = RequestTiming::default();
        t.stamps[..6].copy_from_slice(&conn.0);
        for kind in REQUEST_KINDS {
            if let Some(n) = req.get(kind) {
                t.stamp_at(kind, n);
            }
        }
        t
    }

    /// Records `kind` as happening now.
    pub fn stamp(&mut self, kind: TimingKind) {
        self.stamp_at(kind, monotonic_nanos());
    }

    /// Records `kind` at `nanos` (`CLOCK_MONOTONIC`); kinds this version does not know are
    /// ignored.
    pub fn stamp_at(&mut self, kind: TimingKind, nanos: u64) {
        if let Some(s) = self.stamps.get_mut(usize::from(kind.0)) {
            *s = nanos;
        }
    }

    /// When `kind` happened, if it applies to this request (HTTP.sys `TryGetTimestamp`).
    #[must_use]
    pub fn try_get_timestamp(&self, kind: TimingKind) -> Option<u64> {
        self.stamps
            .get(usize::from(kind.0))
            .copied()
            .filter(|n| *n != 0)
    }

    /// The time from `start` to `end`, if both apply and `end` is not earlier (HTTP.sys
    /// `TryGetElapsedTime`).
    #[must_use]
    pub fn try_get_elapsed(&self, start: TimingKind, end: TimingKind) -> Option<Duration> {
        let (s, e) = (self.try_get_timestamp(start)?, self.try_get_timestamp(end)?);
        e.checked_sub(s).map(Duration::from_nanos)
    }

    /// Every recorded stamp, in kind order.
    pub fn timestamps(&self) -> impl Iterator<Item = (TimingKind, u64)> + '_ {
        self.stamps
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != 0)
            .map(|(i, n)| (TimingKind(u8::try_from(i).unwrap_or(u8::MAX)), *n))
    }
}
