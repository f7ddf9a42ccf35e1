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

impl RequestTiming {
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
