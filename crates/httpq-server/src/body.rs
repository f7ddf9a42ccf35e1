//! Request and response bodies as the engine hands them to and takes them from the app.
//!
//! A request body is pumped by the connection task into a small shared buffer
//! ([`RequestBody`] reads it). The buffer holds at most [`BODY_BUFFER`] bytes, so a slow app
//! stops the socket reads (TCP backpressure) and a fast client never makes the engine buffer
//! without bound. Nothing is read from the socket until the app first polls the body, which is
//! also when `100 Continue` is sent and when the per-request size limit becomes fixed.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{Empty, Full};
use std::any::Any;

/// Most request-body bytes buffered between the socket and the app.
pub const BODY_BUFFER: usize = 64 * 1024;

/// A boxed error, as tower uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the request's `max_request_body_size`; the listener answers 413.
    #[error(
        "request body is larger than the limit of {limit} bytes (max_request_body_size); the listener answers 413"
    )]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The client sent no body bytes for longer than the `entity_body` timeout.
    #[error(
        "request body timed out: the client sent nothing for longer than the entity_body timeout"
    )]
    Timeout,
    /// The client closed the connection before the whole body arrived.
    #[error("the client closed the connection before the request body was complete")]
    Incomplete,
    /// The chunked framing was invalid.
    #[error("request body framing is invalid: {0}")]
    Framing(String),
}

#[derive(Debug)]
pub(crate) struct BodyShared {
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) buffered: usize,
    /// Body bytes received in all (for the exchange's record).
    pub(crate) received: u64,
    pub(crate) trailers: Option<HeaderMap>,
    pub(crate) end: bool,
    pub(crate) error: Option<BodyError>,
    /// The app has polled the body at least once.
    pub(crate) wanted: bool,
    pub(crate) limit: Option<u64>,
    pub(crate) rx_waker: Option<Waker>,
    pub(crate) tx_waker: Option<Waker>,
    pub(crate) rx_dropped: bool,
    /// Told how many bytes the app took each time it reads (0 on its first read), for
    /// transports that grant flow-control credit as the app consumes.
    pub(crate) on_read: Option<OnRead>,
}

/// A callback told of body bytes the app consumed.
#[derive(Clone)]
pub(crate) struct OnRead(Arc<dyn Fn(usize) + Send + Sync>);

impl fmt::Debug for OnRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnRead")
    }
}

/// The engine's side of a request body.
#[derive(Debug, Clone)]
pub(crate) struct BodyTx {
    shared: Arc<Mutex<BodyShared>>,
}

fn lock(m: &Mutex<BodyShared>) -> MutexGuard<'_, BodyShared> {
    // A panic while holding this lock cannot leave the state inconsistent (plain fields), so a
    // poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BodyTx {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BodyShared> {
        lock(&self.shared)
    }

    /// Waits until the app wants data and there is room for it; `false` if the app dropped the body.
    pub(crate) fn poll_want(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut s = self.lock();
        if s.rx_dropped {
            return Poll::Ready(false);
        }
        if s.wanted && s.buffered < BODY_BUFFER && s.error.is_none() && !s.end {
            return Poll::Ready(true);
        }
        s.tx_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn push(&self, data: Bytes) {
        let mut s = self.lock();
        s.buffered += data.len();
        s.received += data.len() as u64;
        s.chunks.push_back(data);
        if let Some(w) = s.rx_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn finish(&self, trailers: Option<HeaderMap>) {
        let mut s = self.lock();
        s.end = true;
        s.trailers = trailers.filter(|t| !t.is_empty());
        if let Some(w) = s.rx_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn fail(&self, error: BodyError) {
        let mut s = self.lock();
        if s.error.is_none() && !s.end {
            s.error = Some(error);
        }
        if let Some(w) = s.rx_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        self.lock().limit
    }

    /// The one body-limit check every protocol makes: when `received` bytes (or, before the
    /// first byte, the `declared` length) pass the limit in force, the body fails with
    /// [`BodyError::TooLarge`] for the app and the limit is returned (the listener answers 413).
    pub(crate) fn check_limit(&self, received: u64, declared: Option<u64>) -> Option<u64> {
        let limit = self.limit()?;
        let len = if received == 0 {
            declared.unwrap_or(0)
        } else {
            received
        };
        (len > limit).then(|| {
            self.fail(BodyError::TooLarge { limit });
            limit
        })
    }

    /// The limit, when the body failed for being larger than it.
    pub(crate) fn too_large(&self) -> Option<u64> {
        match self.lock().error {
            Some(BodyError::TooLarge { limit }) => Some(limit),
            _ => None,
        }
    }
}

/// The producing side of a [`RequestBody`], for transports that receive body bytes from
/// somewhere other than the engine's own socket (the daemon-mode app library receives them as
/// frames). Dropping it without [`BodySender::finish`] ends the body with
/// [`BodyError::Incomplete`].
#[derive(Debug)]
#[doc(hidden)] // Transport API (the daemon-mode app library), not for apps.
pub struct BodySender {
    tx: BodyTx,
    finished: bool,
}

impl BodySender {
    /// Appends body bytes.
    pub fn push(&self, data: Bytes) {
        self.tx.push(data);
    }

    /// The body's size-limit handle for the app, starting at `limit`, for transports whose
    /// limit is enforced elsewhere: `on_set` is told every limit the app sets (daemon mode
    /// sends it to the listener as `SET_LIMIT`).
    #[must_use]
    pub fn limit_handle(
        &self,
        limit: Option<u64>,
        on_set: impl Fn(Option<u64>) + Send + Sync + 'static,
    ) -> MaxRequestBodySize {
        self.tx.lock().limit = limit;
        MaxRequestBodySize {
            shared: self.tx.shared.clone(),
            on_set: Some(Arc::new(on_set)),
        }
    }

    /// Ends the body, with trailers if any.
    pub fn finish(mut self, trailers: Option<HeaderMap>) {
        self.finished = true;
        self.tx.finish(trailers);
    }

    /// Ends the body with an error.
    pub fn fail(mut self, error: BodyError) {
        self.finished = true;
        self.tx.fail(error);
    }

    /// Ends the body with [`BodyError::TooLarge`] at the limit in force (the listener refused
    /// the rest of it).
    pub fn fail_too_large(self) {
        let limit = self.tx.limit().unwrap_or(0);
        self.fail(BodyError::TooLarge { limit });
    }

    /// Calls `f` whenever the app reads: with the number of bytes it took, and with 0 on its
    /// first read (which is when it "starts reading the body"). The daemon transport grants
    /// the listener flow-control credit from it. `f` runs on the reading task, without locks
    /// held; it must not block.
    pub fn on_read(&self, f: impl Fn(usize) + Send + Sync + 'static) {
        self.tx.lock().on_read = Some(OnRead(Arc::new(f)));
    }

    /// Whether the reader has gone away (the app dropped the body).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.tx.lock().rx_dropped
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        if !self.finished {
            self.tx.fail(BodyError::Incomplete);
        }
    }
}

enum Kind {
    Empty,
    Stream {
        shared: Arc<Mutex<BodyShared>>,
        len: Option<u64>,
    },
}

/// The body of a request, as the app receives it: an [`http_body::Body`] of [`Bytes`].
///
/// Reading it pulls bytes from the client; not reading it costs nothing (the listener drains or
/// closes afterwards). Errors are [`BodyError`]s.
pub struct RequestBody {
    kind: Kind,
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("RequestBody::Empty"),
            Kind::Stream { len, .. } => write!(f, "RequestBody::Stream(len: {len:?})"),
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl RequestBody {
    /// A body with no bytes.
    #[must_use]
    pub fn empty() -> Self {
        RequestBody { kind: Kind::Empty }
    }

    /// A body fed by a [`BodySender`]; `len` is the declared length when known.
    #[doc(hidden)] // Transport API (the daemon-mode app library), not for apps.
    #[must_use]
    pub fn with_sender(len: Option<u64>) -> (BodySender, RequestBody) {
        let (tx, rx) = RequestBody::channel(len, None);
        (
            BodySender {
                tx,
                finished: false,
            },
            rx,
        )
    }

    pub(crate) fn channel(len: Option<u64>, limit: Option<u64>) -> (BodyTx, RequestBody) {
        let shared = Arc::new(Mutex::new(BodyShared {
            chunks: VecDeque::new(),
            buffered: 0,
            received: 0,
            trailers: None,
            end: false,
            error: None,
            wanted: false,
            limit,
            rx_waker: None,
            tx_waker: None,
            rx_dropped: false,
            on_read: None,
        }));
        (
            BodyTx {
                shared: shared.clone(),
            },
            RequestBody {
                kind: Kind::Stream { shared, len },
            },
        )
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Kind::Stream { shared, .. } = &self.kind {
            let mut s = lock(shared);
            s.rx_dropped = true;
            if let Some(w) = s.tx_waker.take() {
                w.wake();
            }
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Kind::Stream { shared, .. } = &self.kind else {
            return Poll::Ready(None);
        };
        let mut s = lock(shared);
        let first = !s.wanted;
        s.wanted = true;
        if let Some(data) = s.chunks.pop_front() {
            s.buffered -= data.len();
            if let Some(w) = s.tx_waker.take() {
                w.wake();
            }
            let on_read = s.on_read.clone();
            drop(s);
            if let Some(OnRead(f)) = on_read {
                if first {
                    f(0);
                }
                f(data.len());
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if first {
            if let Some(OnRead(f)) = s.on_read.clone() {
                drop(s);
                f(0);
                s = lock(shared);
                if !s.chunks.is_empty() {
                    // Bytes arrived while unlocked: take them on the next poll.
                    drop(s);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
        if let Some(e) = &s.error {
            return Poll::Ready(Some(Err(e.clone())));
        }
        if s.end {
            return Poll::Ready(s.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        s.rx_waker = Some(cx.waker().clone());
        if let Some(w) = s.tx_waker.take() {
            w.wake();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Stream { shared, .. } => {
                let s = lock(shared);
                s.end && s.chunks.is_empty() && s.trailers.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Stream { len: Some(n), .. } => SizeHint::with_exact(*n),
            Kind::Stream { len: None, .. } => SizeHint::default(),
        }
    }
}

/// Handle to the request's body-size limit (`IHttpMaxRequestBodySizeFeature`), found in the
/// extensions of every request that has a body (a request without one has nothing to limit).
/// The limit can change until the app first reads the body.
#[derive(Clone)]
pub struct MaxRequestBodySize {
    shared: Arc<Mutex<BodyShared>>,
    /// Told each new limit, where the limit is enforced elsewhere (daemon mode: the listener,
    /// told with `SET_LIMIT`).
    on_set: Option<Arc<dyn Fn(Option<u64>) + Send + Sync>>,
}

impl fmt::Debug for MaxRequestBodySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxRequestBodySize")
            .field("limit", &self.get())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

/// The body was already read, so its size limit can no longer change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body size limit cannot change after the body has started to be read")]
pub struct BodyAlreadyRead;

impl MaxRequestBodySize {
    pub(crate) fn new(tx: &BodyTx) -> Self {
        MaxRequestBodySize {
            shared: tx.shared.clone(),
            on_set: None,
        }
    }

    /// The limit in force, `None` for unlimited.
    #[must_use]
    pub fn get(&self) -> Option<u64> {
        lock(&self.shared).limit
    }

    /// Whether the limit can no longer change (the app has started reading the body).
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        lock(&self.shared).wanted
    }

    /// Sets the limit for this request; `None` removes it.
    ///
    /// # Errors
    /// [`BodyAlreadyRead`] once the app has polled the body.
    pub fn set(&self, limit: Option<u64>) -> Result<(), BodyAlreadyRead> {
        let mut s = lock(&self.shared);
        if s.wanted {
            return Err(BodyAlreadyRead);
        }
        s.limit = limit;
        // Told while the body is still locked, so a first read racing with this call either
        // comes after (and its CREDIT follows the SET_LIMIT on the wire) or made this fail.
        if let Some(f) = &self.on_set {
            f(limit);
        }
        drop(s);
        Ok(())
    }
}

/// The body of a response as the engine sends it.
pub enum ResponseBody {
    /// No bytes.
    Empty,
    /// All bytes at once (the fast path: sent with the head in one write).
    Full(Bytes),
    /// Any other body, polled frame by frame with backpressure.
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseBody::Empty => f.write_str("ResponseBody::Empty"),
            ResponseBody::Full(b) => write!(f, "ResponseBody::Full({} bytes)", b.len()),
            ResponseBody::Stream(_) => f.write_str("ResponseBody::Stream"),
        }
    }
}

impl ResponseBody {
    /// Converts any body whose data is [`Bytes`]. Bodies whose bytes are all known up front
    /// (`Full<Bytes>`, `Empty<Bytes>`, `String`, `Bytes`, `Vec<u8>`) become [`ResponseBody::Full`]
    /// or [`ResponseBody::Empty`] without boxing, so the engine writes them with the head in one
    /// syscall; anything else is boxed once (an already boxed `UnsyncBoxBody` is reused).
    pub fn stream<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        let any: &mut dyn Any = &mut slot;
        if let Some(full) = any.downcast_mut::<Option<Full<Bytes>>>() {
            let mut full = full.take();
            let waker = Waker::noop();
            let mut cx = Context::from_waker(waker);
            // Full yields its one frame on the first poll, without waiting.
            let frame = full.as_mut().map(|f| Pin::new(f).poll_frame(&mut cx));
            return match frame {
                Some(Poll::Ready(Some(Ok(frame)))) => match frame.into_data() {
                    Ok(data) => ResponseBody::Full(data),
                    Err(_) => ResponseBody::Empty,
                },
                _ => ResponseBody::Empty,
            };
        }
        if any.downcast_mut::<Option<Empty<Bytes>>>().is_some() {
            return ResponseBody::Empty;
        }
        if let Some(b) = any.downcast_mut::<Option<Bytes>>() {
            return ResponseBody::Full(b.take().unwrap_or_default());
        }
        if let Some(s) = any.downcast_mut::<Option<String>>() {
            return ResponseBody::Full(Bytes::from(s.take().unwrap_or_default()));
        }
        if let Some(v) = any.downcast_mut::<Option<Vec<u8>>>() {
            return ResponseBody::Full(Bytes::from(v.take().unwrap_or_default()));
        }
        if let Some(b) = any.downcast_mut::<Option<UnsyncBoxBody<Bytes, BoxError>>>() {
            if let Some(b) = b.take() {
                return ResponseBody::Stream(b);
            }
        }
        match slot {
            Some(body) => ResponseBody::Stream(UnsyncBoxBody::new(body.map_err(Into::into))),
            None => ResponseBody::Empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_feeds_the_body_and_dropping_it_ends_it_with_an_error() {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (tx, mut rx) = RequestBody::with_sender(Some(5));
        assert_eq!(rx.size_hint().exact(), Some(5));
        tx.push(Bytes::from_static(b"hello"));
        tx.finish(None);
        match Pin::new(&mut rx).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => {
                assert_eq!(f.into_data().ok(), Some(Bytes::from_static(b"hello")))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Pin::new(&mut rx).poll_frame(&mut cx),
            Poll::Ready(None)
        ));

        let (tx, mut rx) = RequestBody::with_sender(None);
        assert!(Pin::new(&mut rx).poll_frame(&mut cx).is_pending());
        drop(tx);
        assert!(matches!(
            Pin::new(&mut rx).poll_frame(&mut cx),
            Poll::Ready(Some(Err(BodyError::Incomplete)))
        ));
    }

    #[test]
    fn known_bodies_are_not_boxed() {
        let full = ResponseBody::stream(Full::new(Bytes::from_static(b"abc")));
        assert!(matches!(full, ResponseBody::Full(b) if b == "abc"));
        assert!(matches!(
            ResponseBody::stream(Empty::<Bytes>::new()),
            ResponseBody::Empty
        ));
        assert!(matches!(
            ResponseBody::stream(String::from("x")),
            ResponseBody::Full(b) if b == "x"
        ));
        let boxed: UnsyncBoxBody<Bytes, BoxError> =
            UnsyncBoxBody::new(Full::new(Bytes::new()).map_err(|e| match e {}));
        assert!(matches!(
            ResponseBody::stream(boxed),
            ResponseBody::Stream(_)
        ));
    }
}
