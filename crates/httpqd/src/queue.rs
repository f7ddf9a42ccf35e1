//! A request queue whose receivers are app processes connected over IPC.
//!
//! The engine sees an [`AppQueue`]: `poll_ready` is ready when an attached process has a
//! request credit (the pull model: each process grants `max_accepts` credits and one more per
//! answered request), `call` sends REQUEST_HEAD (and the body as REQUEST_BODY frames) to that
//! process and resolves on its RESPONSE_HEAD. While no process has a credit the request waits
//! in the engine's queue, under the queue limit and the request-queue timer.

// Stream ids are the listener's own, not a peer's: a fast hash is safe.
use rustc_hash::FxHashMap as HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::Response;
use http_body::Body as _;
use http_body_util::BodyExt;
use httpq_server::ipc::{FrameWriter, StreamWindow};
use httpq_server::{
    AppFuture, AppHandle, AppQueue, AppRequest, BoxError, RequestBody, RequestContext, ResponseBody,
};
use httpq_wire::{
    Credit, Data, Direction, ErrorCode, Frame, INITIAL_WINDOW, ProtocolError, RequestBodyKind,
    RequestHeadRef, Reset, StreamId, StreamState, Trailers,
};
use tokio::sync::{mpsc, oneshot};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The app process went away before answering: the request may be delivered again.
#[derive(Debug)]
struct AppGone;

impl std::fmt::Display for AppGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the app process went away before answering")
    }
}

impl std::error::Error for AppGone {}

/// Request ids (wire stream ids), unique in this listener.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

type HeadTx = oneshot::Sender<Result<Response<ResponseBody>, BoxError>>;
type BodyTx = mpsc::UnboundedSender<Result<http_body::Frame<Bytes>, BoxError>>;

struct InFlight {
    head: Option<HeadTx>,
    body: Option<BodyTx>,
    /// A head whose body has a known length, held until its first body frame so that a
    /// complete small response reaches the client in one piece, without a channel.
    pending: Option<Response<ResponseBody>>,
    /// The stream's rules (wire spec §6, §8): every frame either side sends on it is checked
    /// against them, the to-listener window included.
    state: StreamState,
    /// The stream's reset handle (HTTP/2 and later), for a RESET the app sends.
    reset: Option<httpq_server::ResetStream>,
    /// The request body's size limit, for a SET_LIMIT the app sends.
    limit: Option<httpq_server::MaxRequestBodySize>,
}

/// One connected app process.
pub(crate) struct AppConn {
    pub(crate) id: u64,
    pub(crate) writer: FrameWriter,
    pub(crate) max_frame_size: u32,
    credits: AtomicU32,
    inflight: Mutex<HashMap<u64, InFlight>>,
    /// To-app windows of request bodies being forwarded.
    windows: Mutex<HashMap<u64, Arc<StreamWindow>>>,
}

impl AppConn {
    pub(crate) fn new(id: u64, writer: FrameWriter, max_frame_size: u32) -> Arc<Self> {
        Arc::new(AppConn {
            id,
            writer,
            max_frame_size,
            credits: AtomicU32::new(0),
            inflight: Mutex::new(HashMap::default()),
            windows: Mutex::new(HashMap::default()),
        })
    }

    pub(crate) fn add_credits(&self, n: u32) {
        // Saturating: a hostile app cannot wrap its own count around.
        let _ = self
            .credits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_add(n))
            });
    }

    fn take_credit(&self) -> bool {
        self.credits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
            .is_ok()
    }

    /// RESPONSE_HEAD from the app.
    pub(crate) fn on_response_head(self: &Arc<Self>, head: httpq_wire::ResponseHead) {
        let mut map = lock(&self.inflight);
        let Some(entry) = map.get_mut(&head.stream.0) else {
            return;
        };
        if entry.head.is_none() {
            return;
        }
        let (stream, end_stream, body_length) = (head.stream, head.end_stream, head.body_length);
        let mut response = Response::from_parts(head.into_http(), ResponseBody::Empty);
        if end_stream {
            let head_tx = entry.head.take();
            map.remove(&stream.0);
            drop(map);
            self.end_window(stream);
            if let Some(tx) = head_tx {
                let _ = tx.send(Ok(response));
            }
        } else if body_length.is_some() {
            entry.pending = Some(response);
        } else {
            let head_tx = entry.head.take();
            self.open_body(entry, &mut response, stream, None);
            drop(map);
            if let Some(tx) = head_tx {
                let _ = tx.send(Ok(response));
            }
        }
    }

    /// Gives `response` a body fed by later RESPONSE_BODY frames.
    fn open_body(
        self: &Arc<Self>,
        entry: &mut InFlight,
        response: &mut Response<ResponseBody>,
        stream: StreamId,
        len: Option<u64>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        entry.body = Some(tx);
        *response.body_mut() = ResponseBody::stream(ChannelBody {
            rx,
            len,
            cancel: CancelOnDrop {
                app: self.clone(),
                stream,
                armed: true,
            },
        });
    }

    /// CREDIT on a request stream from the app: it reads the request body.
    pub(crate) fn on_credit(&self, stream: StreamId, increment: u32) {
        let window = lock(&self.windows).get(&stream.0).cloned();
        if let Some(w) = window {
            if !w.grant(increment) {
                self.reset(stream, "the app's CREDIT took the window above 2^31-1");
            }
        }
    }

    /// RESPONSE_BODY or RESPONSE_TRAILERS from the app. Never waits: the app sends at most
    /// one window of body bytes ahead of the client (wire spec §8), so the listener holds at
    /// most that much per request, and a slow client never stalls the other requests on
    /// this app's connection.
    pub(crate) fn on_response_data(
        self: &Arc<Self>,
        stream: StreamId,
        frame: http_body::Frame<Bytes>,
        end: bool,
    ) {
        let mut map = lock(&self.inflight);
        let Some(entry) = map.get_mut(&stream.0) else {
            return;
        };
        if let Some(mut response) = entry.pending.take() {
            // The first body frame of a known-length body.
            let head_tx = entry.head.take();
            let mut frame = Some(frame);
            if end && frame.as_ref().is_some_and(http_body::Frame::is_data) {
                let data = frame
                    .take()
                    .and_then(|f| f.into_data().ok())
                    .unwrap_or_default();
                *response.body_mut() = ResponseBody::Full(data);
                map.remove(&stream.0);
            } else {
                self.open_body(entry, &mut response, stream, None);
                if let (Some(tx), Some(f)) = (&entry.body, frame.take()) {
                    let _ = tx.send(Ok(f));
                }
                if end {
                    map.remove(&stream.0);
                }
            }
            drop(map);
            if end {
                self.end_window(stream);
            }
            if let Some(tx) = head_tx {
                let _ = tx.send(Ok(response));
            }
            return;
        }
        if let Some(tx) = &entry.body {
            let _ = tx.send(Ok(frame));
        }
        if end {
            map.remove(&stream.0);
            drop(map);
            self.end_window(stream);
        }
    }

    /// `n` response body bytes went to the client: the app may send as many more.
    fn grant_response(&self, stream: StreamId, n: u32) {
        if !lock(&self.inflight).contains_key(&stream.0) {
            // The whole body has arrived already: nothing more to grant.
            return;
        }
        self.send(Frame::Credit(Credit {
            stream,
            increment: n,
        }));
    }

    /// Sends a frame of a request stream, recording it in the stream's state (so the
    /// windows and the order the app's frames are checked against include it). `false`:
    /// the app's connection is gone.
    pub(crate) fn send(&self, frame: Frame) -> bool {
        let mut map = lock(&self.inflight);
        if let Some(entry) = map.get_mut(&frame.stream().0) {
            if let Err(e) = entry.state.on_frame(Direction::ListenerToApp, &frame) {
                // The listener's own bug: say so, and send anyway (the app checks too).
                tracing::error!(stream = frame.stream().0, error = %e, "the listener broke the wire protocol's stream rules");
            }
        }
        // Sent under the lock: the recorded order is the order on the wire.
        self.writer.send(frame)
    }

    /// Checks a frame the app sent on a request stream against the stream's rules (wire spec
    /// §6, §8). A frame for a stream that is over (or never was) passes: it crossed the
    /// stream's end on the wire and is ignored.
    ///
    /// # Errors
    /// The rule it broke; the caller resets the stream with [`AppConn::broke_rule`].
    pub(crate) fn check(&self, frame: &Frame) -> Result<(), ProtocolError> {
        match lock(&self.inflight).get_mut(&frame.stream().0) {
            Some(entry) => entry.state.on_frame(Direction::AppToListener, frame),
            None => Ok(()),
        }
    }

    /// The app broke a stream rule: the stream is reset with the rule's code and text (the
    /// app learns what it did wrong) and its request fails (the client gets 500, or a cut
    /// response).
    pub(crate) fn broke_rule(&self, stream: StreamId, error: &ProtocolError) {
        tracing::warn!(stream = stream.0, error = %error, "the app broke the wire protocol; resetting the request");
        self.send(Frame::Reset(Reset::new(
            stream,
            error.code(),
            error.to_string(),
        )));
        self.fail(stream, &error.to_string());
    }

    /// Fails the stream with a flow-control error on both sides.
    fn reset(&self, stream: StreamId, why: &str) {
        tracing::warn!(stream = stream.0, "{why}; resetting the request");
        self.send(Frame::Reset(Reset::new(
            stream,
            ErrorCode::FLOW_CONTROL_ERROR,
            why,
        )));
        self.fail(stream, why);
    }

    /// The request stream is over: a body still being forwarded stops.
    fn end_window(&self, stream: StreamId) {
        if let Some(w) = lock(&self.windows).remove(&stream.0) {
            w.close();
        }
    }

    /// SET_LIMIT from the app (wire spec §5.16): the request's `max_request_body_size`
    /// becomes `limit` (`u64::MAX`: none), as `MaxRequestBodySize::set` does in embedded
    /// mode. Too late once the app has started reading the body (its first CREDIT): ignored
    /// then, as the limit is fixed.
    pub(crate) fn on_set_limit(&self, stream: StreamId, limit: u64) {
        let handle = lock(&self.inflight)
            .get(&stream.0)
            .and_then(|e| e.limit.clone());
        if let Some(h) = handle {
            let limit = (limit != u64::MAX).then_some(limit);
            if h.set(limit).is_err() {
                tracing::debug!(
                    stream = stream.0,
                    "SET_LIMIT after the app started reading the body; the limit stays"
                );
            }
        }
    }

    /// RESET from the app: an HTTP/2 stream is reset with the app's code; on HTTP/1.1 the
    /// request fails (the connection is aborted).
    pub(crate) fn on_reset(&self, stream: StreamId, code: u32, why: &str) {
        let handle = lock(&self.inflight)
            .get(&stream.0)
            .and_then(|e| e.reset.clone());
        if let Some(h) = handle {
            h.reset(code);
        }
        self.fail(stream, why);
    }

    /// The app went away, or a stream failed.
    pub(crate) fn fail(&self, stream: StreamId, why: &str) {
        let entry = lock(&self.inflight).remove(&stream.0);
        if let Some(mut e) = entry {
            if let Some(h) = e.head.take() {
                let _ = h.send(Err(why.into()));
            }
            if let Some(b) = e.body.take() {
                let _ = b.send(Err(why.into()));
            }
        }
        self.end_window(stream);
    }

    /// The app process went away: requests it had not started answering learn so (and may
    /// be delivered again); responses it was streaming end with an error.
    pub(crate) fn fail_all(&self) {
        let entries: Vec<InFlight> = lock(&self.inflight).drain().map(|(_, e)| e).collect();
        for mut e in entries {
            if let Some(h) = e.head.take() {
                let _ = h.send(Err(Box::new(AppGone)));
            }
            if let Some(b) = e.body.take() {
                let _ = b.send(Err("the app process went away mid-response".into()));
            }
        }
        let windows: Vec<_> = lock(&self.windows).drain().map(|(_, w)| w).collect();
        for w in windows {
            w.close();
        }
    }
}

/// Sends CANCEL for a request whose client went away before the app finished.
struct CancelOnDrop {
    app: Arc<AppConn>,
    stream: StreamId,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.app.send(Frame::Cancel(httpq_wire::Cancel {
                stream: self.stream,
                reason: httpq_wire::CancelReason::ClientDisconnected,
            }));
            self.app.fail(self.stream, "client disconnected");
        }
    }
}

/// A response body fed by RESPONSE_BODY frames.
struct ChannelBody {
    rx: mpsc::UnboundedReceiver<Result<http_body::Frame<Bytes>, BoxError>>,
    len: Option<u64>,
    cancel: CancelOnDrop,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = self.rx.poll_recv(cx);
        match &polled {
            Poll::Ready(None) => self.cancel.armed = false,
            // The bytes go to the client now: the app may send as many more.
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(n) = frame
                    .data_ref()
                    .and_then(|d| u32::try_from(d.len()).ok())
                    .filter(|n| *n > 0)
                {
                    self.cancel.app.grant_response(self.cancel.stream, n);
                }
            }
            _ => {}
        }
        polled
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.len.map_or_else(
            http_body::SizeHint::default,
            http_body::SizeHint::with_exact,
        )
    }
}

struct QueueState {
    receivers: Vec<Arc<AppConn>>,
    next: usize,
    /// Requests waiting for a request credit, by waiter id, so oldest first (ids only grow;
    /// one put back keeps its id, so its place); each operation is O(log n), not a scan of up
    /// to the queue limit's waiters. Each credit wakes one of them (not all: with hundreds
    /// waiting, waking every one per credit cost more than the requests themselves).
    waiters: std::collections::BTreeMap<u64, Waker>,
    next_waiter: u64,
    closed: bool,
}

/// A request queue served by app processes.
#[derive(Clone)]
pub(crate) struct IpcQueue {
    pub(crate) id: u64,
    state: Arc<Mutex<QueueState>>,
    /// url_context ids by prefix text, as AddUrl returned them.
    /// URL context ids by prefix, and the next id to give (ids are never reused).
    contexts: Arc<Mutex<(HashMap<String, u64>, u64)>>,
    /// Requests delivered to a process and not yet answered (no response head yet).
    active: Arc<AtomicU32>,
}

impl IpcQueue {
    pub(crate) fn new(id: u64) -> Self {
        IpcQueue {
            id,
            state: Arc::new(Mutex::new(QueueState {
                receivers: Vec::new(),
                next: 0,
                waiters: std::collections::BTreeMap::new(),
                next_waiter: 0,
                closed: false,
            })),
            contexts: Arc::new(Mutex::new((HashMap::default(), 1))),
            active: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Requests delivered to a process and not yet answered.
    pub(crate) fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// The connection ids of the attached processes.
    pub(crate) fn receiver_ids(&self) -> Vec<u64> {
        lock(&self.state).receivers.iter().map(|r| r.id).collect()
    }

    pub(crate) fn attach(&self, app: Arc<AppConn>) {
        lock(&self.state).receivers.push(app);
        self.wake();
    }

    /// Removes a process; returns how many remain.
    pub(crate) fn detach(&self, app_id: u64) -> usize {
        let mut s = lock(&self.state);
        s.receivers.retain(|r| r.id != app_id);
        s.receivers.len()
    }

    /// Closes the queue: requests waiting for a receiver are refused (503).
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.wake();
    }

    /// Takes a request credit from an attached process, round robin. `waiter` is the caller's
    /// place in the wait list (kept across polls, so re-polling does not queue it twice).
    fn poll_reserve(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut Option<u64>,
    ) -> Poll<Result<Arc<AppConn>, BoxError>> {
        let mut s = lock(&self.state);
        let n = s.receivers.len();
        for i in 0..n {
            let idx = (s.next + i) % n;
            if s.receivers[idx].take_credit() {
                s.next = (idx + 1) % n;
                let app = s.receivers[idx].clone();
                if let Some(id) = waiter.take() {
                    s.waiters.remove(&id);
                }
                return Poll::Ready(Ok(app));
            }
        }
        if s.closed {
            return Poll::Ready(Err("the request queue was closed".into()));
        }
        match *waiter {
            Some(id) => match s.waiters.get_mut(&id) {
                Some(w) => w.clone_from(cx.waker()),
                // Woken, but another request took the credit: wait again, in its old place
                // (ahead of every later arrival).
                None => {
                    s.waiters.insert(id, cx.waker().clone());
                }
            },
            None => {
                let id = s.next_waiter;
                s.next_waiter += 1;
                *waiter = Some(id);
                s.waiters.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }

    /// Wakes every request waiting for a receiver (a process attached, or the queue closed).
    pub(crate) fn wake(&self) {
        self.wake_n(usize::MAX);
    }

    /// Wakes the `n` oldest waiting requests (`n` credits arrived).
    pub(crate) fn wake_n(&self, n: usize) {
        let woken: Vec<Waker> = {
            let mut s = lock(&self.state);
            let k = n.min(s.waiters.len());
            (0..k)
                .filter_map(|_| s.waiters.pop_first().map(|(_, w)| w))
                .collect()
        };
        for w in woken {
            w.wake();
        }
    }

    /// A waiting request went away: if it had been woken for a credit, pass the wake-up on.
    fn leave(&self, id: u64) {
        let was_woken = {
            let mut s = lock(&self.state);
            s.waiters.remove(&id).is_none()
        };
        if was_woken {
            self.wake_n(1);
        }
    }

    /// The URL context id of `prefix` on this queue (the same for the same prefix).
    pub(crate) fn add_context(&self, prefix: &str) -> u64 {
        let mut guard = lock(&self.contexts);
        let (map, next) = &mut *guard;
        if let Some(id) = map.get(prefix) {
            return *id;
        }
        let id = *next;
        *next += 1;
        map.insert(prefix.to_owned(), id);
        id
    }

    /// Forgets `prefix`'s URL context (the prefix was removed from the queue).
    pub(crate) fn remove_context(&self, prefix: &str) {
        lock(&self.contexts).0.remove(prefix);
    }

    /// Whether the connection `app_id` already receives from this queue.
    pub(crate) fn has_receiver(&self, app_id: u64) -> bool {
        lock(&self.state).receivers.iter().any(|r| r.id == app_id)
    }
}

impl AppQueue for IpcQueue {
    fn handle(&self) -> Box<dyn AppHandle> {
        Box::new(IpcHandle {
            queue: self.clone(),
            reserved: None,
            waiter: None,
        })
    }
}

struct IpcHandle {
    queue: IpcQueue,
    reserved: Option<Arc<AppConn>>,
    /// Place in the queue's wait list while waiting for a credit.
    waiter: Option<u64>,
}

impl Drop for IpcHandle {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.queue.leave(id);
        }
    }
}

impl AppHandle for IpcHandle {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.reserved.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.queue.poll_reserve(cx, &mut self.waiter) {
            Poll::Ready(Ok(app)) => {
                self.reserved = Some(app);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, request: AppRequest) -> AppFuture {
        let Some(app) = self.reserved.take() else {
            return Box::pin(async { Err("call without a ready receiver".into()) });
        };
        let AppRequest {
            request,
            context: ctx,
            reset,
        } = request;
        let (parts, body) = request.into_parts();
        let body_kind = if body.is_end_stream() {
            RequestBodyKind::Empty
        } else {
            match body.size_hint().exact() {
                Some(n) => RequestBodyKind::Length(n),
                None => RequestBodyKind::Chunked,
            }
        };
        let url_context = lock(&self.queue.contexts)
            .0
            .get(ctx.prefix().as_str())
            .copied()
            .unwrap_or(0);
        // The stream id is given by `deliver`, in the order heads go out on the app's
        // connection.
        let queue_id = self.queue.id;
        let limit = ctx.max_request_body_size().cloned();
        let window =
            (body_kind != RequestBodyKind::Empty).then(|| StreamWindow::new(INITIAL_WINDOW));
        let (stream, rx, delivered) = {
            let meta = ctx.wire_meta();
            let head = RequestHeadRef::from_http(&parts, &meta, queue_id, url_context, body_kind);
            deliver(&app, head, reset.clone(), limit, window.clone())
        };
        // Beyond HTTP.sys (nginx's "next upstream"): a request the app had not started
        // answering goes to another process once, when that is safe: an idempotent method
        // and no body (so nothing of it was consumed). Its head is built again then, from
        // the parts kept for it.
        let retry = (body_kind == RequestBodyKind::Empty && is_idempotent(&parts.method))
            .then_some((parts, ctx));
        // A head that could not go out has no body to forward (nothing would credit it).
        if let (true, Some(window)) = (delivered, window) {
            tokio::spawn(forward_body(app.clone(), stream, body, window));
        }
        let queue = self.queue.clone();
        let active = ActiveGuard::new(&queue.active);
        Box::pin(async move {
            let _active = active;
            // If the engine drops this future (the client went away), the guard tells the app.
            let mut guard = CancelOnDrop {
                app,
                stream,
                armed: true,
            };
            let result = rx.await.unwrap_or_else(|_| Err(Box::new(AppGone)));
            guard.armed = false;
            drop(guard);
            match retry {
                Some((parts, ctx)) if matches!(&result, Err(e) if e.is::<AppGone>()) => {
                    tracing::info!(
                        stream = stream.0,
                        "the app process went away before answering; delivering the request to another process"
                    );
                    let again = Retry {
                        queue,
                        parts,
                        ctx,
                        queue_id,
                        url_context,
                        reset,
                    };
                    // Boxed: the rare second delivery does not widen every request's future.
                    Box::pin(again.deliver()).await
                }
                _ => result,
            }
        })
    }
}

/// A request to deliver once more, to another process of its queue, after the first went
/// away before answering.
struct Retry {
    queue: IpcQueue,
    parts: http::request::Parts,
    ctx: RequestContext,
    queue_id: u64,
    url_context: u64,
    reset: Option<httpq_server::ResetStream>,
}

impl Retry {
    async fn deliver(self) -> Result<Response<ResponseBody>, BoxError> {
        let meta = self.ctx.wire_meta();
        let head = RequestHeadRef::from_http(
            &self.parts,
            &meta,
            self.queue_id,
            self.url_context,
            RequestBodyKind::Empty,
        );
        // The wait for a receiver goes through a handle, whose drop leaves the queue's wait
        // list if this future is dropped first (the client went away meanwhile).
        let mut handle = IpcHandle {
            queue: self.queue.clone(),
            reserved: None,
            waiter: None,
        };
        std::future::poll_fn(|cx| handle.poll_ready(cx)).await?;
        let Some(next) = handle.reserved.take() else {
            return Err("no receiver was reserved".into());
        };
        drop(handle);
        let (stream, rx, _) = deliver(&next, head, self.reset.clone(), None, None);
        let mut guard = CancelOnDrop {
            app: next.clone(),
            stream,
            armed: true,
        };
        let result = rx.await.unwrap_or_else(|_| Err(Box::new(AppGone)));
        guard.armed = false;
        result
    }
}

/// Counts a request as active while it lives.
struct ActiveGuard(Arc<AtomicU32>);

impl ActiveGuard {
    fn new(count: &Arc<AtomicU32>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(count.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
    )
}

/// Registers the request as in flight on `app` and sends its head, under a new stream id:
/// ids are taken and heads sent under the app's stream lock, so they go out strictly
/// increasing on the connection (wire spec §2). A request body's `window` is registered
/// before the head goes out, so an answer that comes back at once (the app never reads the
/// body) finds it and closes it. The flag says whether the head went out (one too large
/// for the app's frames fails the request instead).
fn deliver(
    app: &Arc<AppConn>,
    mut head: RequestHeadRef<'_>,
    reset: Option<httpq_server::ResetStream>,
    limit: Option<httpq_server::MaxRequestBodySize>,
    window: Option<Arc<StreamWindow>>,
) -> (
    StreamId,
    oneshot::Receiver<Result<Response<ResponseBody>, BoxError>>,
    bool,
) {
    let (tx, rx) = oneshot::channel();
    let mut map = lock(&app.inflight);
    let stream = StreamId(NEXT_STREAM.fetch_add(1, Ordering::Relaxed));
    head.stream = stream;
    let mut state = StreamState::with_initial_window(INITIAL_WINDOW);
    if let Err(e) = state.on_request_head(head.body, head.flags) {
        tracing::error!(stream = stream.0, error = %e, "the listener broke the wire protocol's stream rules");
    }
    if let Some(w) = window {
        lock(&app.windows).insert(stream.0, w);
    }
    // Encoded straight from the request's parts, in the order ids are given.
    let mut unencodable = None;
    let sent = app.writer.send_with(|buf| {
        if let Err(e) = head.try_encode(buf, app.max_frame_size) {
            unencodable = Some(e);
        }
    });
    if let Some(e) = unencodable {
        drop(map);
        lock(&app.windows).remove(&stream.0);
        tracing::error!(stream = stream.0, error = %e, "the request head does not fit the app's frames; answering 500");
        let _ = tx.send(Err(format!(
            "the request head does not fit the app's frames ({e})"
        )
        .into()));
        return (stream, rx, false);
    }
    map.insert(
        stream.0,
        InFlight {
            head: Some(tx),
            body: None,
            pending: None,
            state,
            reset,
            limit,
        },
    );
    drop(map);
    if !sent {
        app.fail_all();
    }
    (stream, rx, true)
}

/// Sends the request body to the app as REQUEST_BODY frames (and trailers), as the client
/// delivers it; the engine's body buffer bounds what is read ahead of the app.
async fn forward_body(
    app: Arc<AppConn>,
    stream: StreamId,
    mut body: RequestBody,
    window: Arc<StreamWindow>,
) {
    // Nothing is read from the client until the app starts reading, its first CREDIT
    // (HTTP.sys's semantics): so no 100 Continue is sent before (`Expect: 100-continue`),
    // and the app may still change the body's size limit with SET_LIMIT, which reading
    // fixes.
    if !window.credited().await {
        return;
    }
    let max_frame = app.max_frame_size as usize;
    loop {
        let frame = tokio::select! {
            biased;
            // The stream ended (answered, reset, app gone) while waiting for the client.
            () = window.closed() => return,
            f = body.frame() => f,
        };
        match frame {
            None => {
                app.send(Frame::RequestBody(Data {
                    stream,
                    data: Bytes::new(),
                    end_stream: true,
                }));
                break;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    // Only as many bytes as the app granted: a slow app makes this wait (and,
                    // through the engine's body buffer, the client), so the listener holds
                    // at most one window of body per request.
                    while !data.is_empty() {
                        let Some(n) = window.acquire(data.len().min(max_frame)).await else {
                            return;
                        };
                        let piece = data.split_to(n);
                        if !app.send(Frame::RequestBody(Data {
                            stream,
                            data: piece,
                            end_stream: false,
                        })) {
                            return;
                        }
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let trailers = Frame::RequestTrailers(Trailers {
                            stream,
                            headers: trailers,
                        });
                        // Bounded by max_request_bytes (16 KiB in httpqd, under any frame size);
                        // checked anyway, since a frame the app refuses would end every
                        // request on its connection.
                        if let Err(e) = trailers.check_fits(app.max_frame_size) {
                            let why =
                                format!("the request trailers do not fit the app's frames ({e})");
                            tracing::error!(stream = stream.0, "{why}; resetting the request");
                            app.send(Frame::Reset(Reset::new(
                                stream,
                                ErrorCode::INTERNAL_ERROR,
                                why.as_str(),
                            )));
                            app.fail(stream, &why);
                        } else {
                            app.send(trailers);
                        }
                        break;
                    }
                }
            },
            Some(Err(e)) => {
                // Over the limit: the app's body fails with the same error as in embedded
                // mode (wire spec §8: CONTENT_TOO_LARGE); the listener answers 413 itself.
                let code = if matches!(e, httpq_server::BodyError::TooLarge { .. }) {
                    ErrorCode::CONTENT_TOO_LARGE
                } else {
                    ErrorCode::CANCEL
                };
                // The error's text may quote the client (a trailer's name): Reset::new caps it.
                app.send(Frame::Reset(Reset::new(stream, code, e.to_string())));
                break;
            }
        }
    }
}
