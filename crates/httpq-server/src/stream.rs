//! The response step every protocol shares, each policy once: wait for the app while the
//! request body flows (the app may reset the stream, the client may reset it or leave),
//! answer 413 when the body was larger than the limit, 500 when the app failed or gave no
//! final status, add Alt-Svc, take a streamed body's first frame before the head (so a body
//! found too large while the app answers still gets 413, and a body that ends there is sent
//! with its length), then send head, data and trailers; and the listener's own answers. Each
//! protocol only says how bytes go out ([`StreamOut`]): `h1out.rs`, `h2conn.rs`, `h3conn.rs`.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use httpq_core::Scheme;

use crate::Inner;
use crate::app::{ConnectionInfo, ResetStream};
use crate::body::{BodyTx, ResponseBody};
use crate::exchange::{Exchange, WIN32_ABORTED, WIN32_CLIENT_GONE};
use crate::pipeline::{Active, CatchUnwind, Early, HostFrom, Incoming, too_large_answer};

/// How one response's sending failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// The client went away or reset the stream: `WIN32_CLIENT_GONE` in the log.
    ClientGone,
    /// The response could not be completed (its body broke its length, a send timer fired):
    /// `WIN32_ABORTED`.
    Aborted,
}

impl Broken {
    /// The log's `sc-win32-status` for it.
    pub(crate) fn win32(self) -> u32 {
        match self {
            Broken::ClientGone => WIN32_CLIENT_GONE,
            Broken::Aborted => WIN32_ABORTED,
        }
    }
}

/// What a send step gives back: `Err` when the response cannot go on.
pub(crate) type Sent = Result<(), Broken>;

/// What the head says of the body that follows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// No body follows.
    pub(crate) end: bool,
    /// The body's whole length, when known before it is sent (HTTP/1.1 then frames it with
    /// Content-Length).
    pub(crate) length: Option<u64>,
    /// The connection may carry more requests after this answer (HTTP/1.1's persistence): a
    /// listener answer after a failure says no.
    pub(crate) keep: bool,
}

/// How a protocol sends one exchange's response. HTTP/1.1 (`h1out.rs`), HTTP/2 and HTTP/3
/// implement it; [`respond`], [`answer`] and [`early`] hold every policy.
pub(crate) trait StreamOut: Send {
    /// The app's response is known; its body has not been looked at. `streamed`: the body is
    /// a stream (which may read the request body while it is written). HTTP/1.1 answers a
    /// pending `Expect: 100-continue` here.
    fn responding(&mut self, streamed: bool) -> impl Future<Output = Sent> + Send {
        let _ = streamed;
        std::future::ready(Ok(()))
    }
    /// Sends the response head. `Ok(false)`: no body goes out (the shape's end, or the
    /// protocol's framing allows none, as HTTP/1.1 for 204 and 304).
    fn send_head(
        &mut self,
        head: Response<()>,
        shape: Shape,
    ) -> impl Future<Output = Result<bool, Broken>> + Send;
    /// Sends body bytes; `end`: they are the last.
    fn send_data(&mut self, data: Bytes, end: bool) -> impl Future<Output = Sent> + Send;
    /// Sends the trailers, ending the response.
    fn send_trailers(&mut self, trailers: HeaderMap) -> impl Future<Output = Sent> + Send;
    /// Ends the response after the last data sent.
    fn finish(&mut self) -> impl Future<Output = Sent> + Send;
    /// Resets the stream with the app's code, or the protocol's internal error (HTTP/1.1:
    /// the connection ends without lingering).
    fn reset(&mut self, code: Option<u32>);
    /// Refuses the request unprocessed, so the client may retry it (a full queue under Basic
    /// 503 verbosity): REFUSED_STREAM, H3_REQUEST_REJECTED, a reset HTTP/1.1 connection.
    fn refuse(&mut self);
    /// Resolves when the client resets the stream or goes away. HTTP/1.1 keeps the request
    /// body flowing to the app meanwhile.
    fn client_reset(&mut self) -> impl Future<Output = ()> + Send;
}

/// How an exchange's answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The app's response went out whole.
    Sent,
    /// The listener answered itself (a refusal, 413, 500).
    Answered,
    /// The answer stopped: reset, refused, client gone, or the response broke.
    Stopped,
}

/// The request body's pump, running on its own task: it ends with the limit when the body
/// was larger than it.
pub(crate) struct Pump {
    task: tokio::task::JoinHandle<Option<u64>>,
    /// Abort the task when the exchange ends (HTTP/3: the receiving half must not outlive the
    /// stream); otherwise it finishes on its own once the app drops the body.
    abort_on_drop: bool,
}

impl Pump {
    pub(crate) fn spawn(
        pump: impl Future<Output = Option<u64>> + Send + 'static,
        abort_on_drop: bool,
    ) -> Pump {
        Pump {
            task: tokio::spawn(pump),
            abort_on_drop,
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if self.abort_on_drop {
            self.task.abort();
        }
    }
}

/// A request handed to the app: its answer under way.
pub(crate) struct Call {
    pub(crate) fut: CatchUnwind,
    /// The app's handle to reset the stream (HTTP/2, HTTP/3).
    pub(crate) reset: Option<ResetStream>,
    /// The request body's channel, to learn after the fact whether it was too large.
    pub(crate) probe: Option<BodyTx>,
    pub(crate) method: Method,
    /// The target as the client sent it, for the log lines of the listener's answers.
    pub(crate) target: Bytes,
    pub(crate) _active: Active,
}

/// A new stream's request stamps, with `start` (its protocol's stream-start kind) stamped
/// now, and its exchange record, begun at the same instant.
pub(crate) fn begin(
    inner: &Inner,
    info: &ConnectionInfo,
    version: http::Version,
    start: crate::timing::TimingKind,
) -> (crate::timing::ReqStamps, Exchange) {
    let now = crate::timing::monotonic_nanos();
    let mut timing = crate::timing::ReqStamps::default();
    timing.stamp_at(start, now);
    (
        timing,
        Exchange::start(&inner.observers, info, version, now),
    )
}

/// An HTTP/2 or HTTP/3 request's head as the shared request step takes it: the target as
/// sent (`:path`), the host from `:authority`, the declared length from Content-Length.
pub(crate) fn incoming(
    parts: http::request::Parts,
    version: http::Version,
    has_body: bool,
) -> Incoming {
    let raw_target = Bytes::copy_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    Incoming {
        head_len: crate::exchange::head_size(&parts.headers),
        declared: declared_length(&parts.headers),
        method: parts.method,
        raw_target,
        version,
        host: HostFrom::Authority(parts.uri.authority().cloned()),
        headers: parts.headers,
        has_body,
    }
}

/// The Content-Length a request declares.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Answers a request that did not reach the app: a listener answer, or a refusal.
pub(crate) async fn early<O: StreamOut>(
    out: &mut O,
    ex: &mut Exchange,
    early: Early,
    head_only: bool,
) -> Outcome {
    match early {
        Early::Answer { status, body, keep } => {
            answer(out, ex, status, &body, head_only, keep).await
        }
        Early::Refuse => {
            out.refuse();
            Outcome::Stopped
        }
    }
}

/// Sends a listener-made answer: a text body with its length. `keep`: the connection may
/// carry more requests after it.
pub(crate) async fn answer<O: StreamOut>(
    out: &mut O,
    ex: &mut Exchange,
    status: StatusCode,
    body: &str,
    head_only: bool,
    keep: bool,
) -> Outcome {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    ex.status(status.as_u16());
    let head_bytes = crate::exchange::head_size(response.headers());
    let end = head_only || body.is_empty();
    let shape = Shape {
        end,
        length: Some(body.len() as u64),
        keep,
    };
    let sent_head = out.send_head(response, shape).await;
    if sent_head.is_ok() {
        ex.sent(head_bytes);
    }
    let sent = match sent_head {
        Ok(true) => {
            let sent = out
                .send_data(Bytes::copy_from_slice(body.as_bytes()), true)
                .await;
            if sent.is_ok() {
                ex.sent(body.len() as u64);
            }
            sent
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => Outcome::Answered,
        Err(e) => {
            ex.failed(e.win32());
            Outcome::Stopped
        }
    }
}

/// Where the exchange happens, for the listener's own answers and their log lines.
pub(crate) struct Place<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) info: &'a ConnectionInfo,
    pub(crate) scheme: Scheme,
    pub(crate) protocol: &'static str,
    pub(crate) head_only: bool,
}

/// Waits for the app's answer and sends it (see the module's text for the policies).
///
/// A plain function around an `async move` block: its arguments are kept once in the future's
/// state, not twice (an `async fn` moves each into a local of its own), and every exchange
/// holds this future.
#[allow(clippy::manual_async_fn, clippy::too_many_lines)]
pub(crate) fn respond<'a, O: StreamOut>(
    at: Place<'a>,
    out: &'a mut O,
    ex: &'a mut Exchange,
    mut call: Call,
    mut pump: Option<Pump>,
) -> impl Future<Output = Outcome> + Send + 'a {
    async move {
        let head_only = at.head_only;
        let fut = &mut call.fut;
        let reset = &call.reset;
        let probe = &call.probe;
        let method = &call.method;
        let target = &call.target;
        let mut too_large = None;
        // Most handlers answer on their first poll: try that before setting up the waits (boxed:
        // their state does not widen every exchange).
        let result = match poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await {
            Poll::Ready(r) => r,
            Poll::Pending => {
                match Box::pin(wait_for_app(fut, &mut pump, reset.as_ref(), out)).await {
                    Waited::Answer(r) => r,
                    Waited::TooLarge(limit) => {
                        too_large = Some(limit);
                        Err("request body too large".into())
                    }
                    Waited::Reset(code) => {
                        // The app reset the stream (ResetStream): the client gets the code, no answer.
                        ex.failed(WIN32_ABORTED);
                        out.reset(Some(code));
                        return Outcome::Stopped;
                    }
                    Waited::ClientGone => {
                        // The client reset the stream or left: cancel the app's work (dropping its
                        // future).
                        tracing::debug!(
                            "the client reset the stream or went away; request cancelled"
                        );
                        ex.failed(WIN32_CLIENT_GONE);
                        return Outcome::Stopped;
                    }
                }
            }
        };
        // The app's read failed on an over-long body: HTTP.sys answers 413 (no response started).
        let too_large = too_large.or_else(|| probe.as_ref().and_then(BodyTx::too_large));
        if let Some(limit) = too_large {
            let (status, body) =
                too_large_answer(at.inner, at.info, ex, limit, method, target, at.protocol);
            return Box::pin(answer(out, ex, status, &body, head_only, false)).await;
        }
        if let Some(code) = reset.as_ref().and_then(ResetStream::requested) {
            ex.failed(WIN32_ABORTED);
            out.reset(Some(code));
            return Outcome::Stopped;
        }
        let response = match crate::pipeline::final_response(result, method, target) {
            Ok(r) => r,
            Err((status, text)) => {
                return Box::pin(answer(out, ex, status, text, head_only, false)).await;
            }
        };
        let (mut parts, mut body) = response.into_parts();
        if at.inner.options.alt_svc && at.scheme == Scheme::Https {
            add_alt_svc(&mut parts.headers, at.info.local_addr.port());
        }
        // 1xx, 204 and 304 carry no body: none is awaited or sent.
        let bodiless = head_only || !httpq_core::h1::status_allows_body(parts.status);
        let streamed = matches!(body, ResponseBody::Stream(_));
        if let Err(e) = out.responding(streamed).await {
            ex.failed(e.win32());
            return Outcome::Stopped;
        }
        // The body's length when known before it is sent.
        let mut length = match &body {
            ResponseBody::Empty => Some(0),
            ResponseBody::Full(b) => Some(b.len() as u64),
            ResponseBody::Stream(s) => s.size_hint().exact(),
        };
        // The first frame of a streamed body before the head: a body found too large while the
        // app answers still gets 413, and a body that ends there gets its length.
        let mut first = None;
        if let ResponseBody::Stream(s) = &mut body {
            if !bodiless && !s.is_end_stream() {
                let Ok(f) = next_frame(s, reset.as_ref(), out).await else {
                    return stopped(out, ex, reset.as_ref());
                };
                match &f {
                    Some(Err(_)) => {
                        if let Some(limit) = probe.as_ref().and_then(BodyTx::too_large) {
                            let (status, text) = too_large_answer(
                                at.inner,
                                at.info,
                                ex,
                                limit,
                                method,
                                target,
                                at.protocol,
                            );
                            return Box::pin(answer(out, ex, status, &text, head_only, false))
                                .await;
                        }
                    }
                    None => length = Some(0),
                    Some(Ok(frame)) => {
                        if let (None, Some(d)) = (length, frame.data_ref()) {
                            if s.is_end_stream() {
                                length = Some(d.len() as u64);
                            }
                        }
                    }
                }
                first = Some(f);
            }
        }
        let empty = match &body {
            ResponseBody::Empty => true,
            ResponseBody::Full(b) => b.is_empty(),
            ResponseBody::Stream(_) if matches!(first, Some(None)) => true,
            ResponseBody::Stream(s) => first.is_none() && s.is_end_stream(),
        };
        let end = bodiless || empty;
        ex.status(parts.status.as_u16());
        let head_bytes = crate::exchange::head_size(&parts.headers);
        let shape = Shape {
            end,
            length,
            keep: true,
        };
        let sent_head = out.send_head(Response::from_parts(parts, ()), shape).await;
        if sent_head.is_ok() {
            ex.sent(head_bytes);
        }
        match sent_head {
            Ok(true) => {}
            Ok(false) => return Outcome::Sent,
            Err(e) => {
                ex.failed(e.win32());
                return Outcome::Stopped;
            }
        }
        let sent = match body {
            ResponseBody::Empty => out.finish().await,
            ResponseBody::Full(b) => {
                let n = b.len() as u64;
                let sent = out.send_data(b, true).await;
                if sent.is_ok() {
                    ex.sent(n);
                }
                sent
            }
            ResponseBody::Stream(mut s) => loop {
                let next = match first.take() {
                    Some(f) => f,
                    None => {
                        let Ok(f) = next_frame(&mut s, reset.as_ref(), out).await else {
                            return stopped(out, ex, reset.as_ref());
                        };
                        f
                    }
                };
                match next {
                    None => break out.finish().await,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            let end = s.is_end_stream();
                            let n = data.len() as u64;
                            if let Err(e) = out.send_data(data, end).await {
                                break Err(e);
                            }
                            ex.sent(n);
                            if end {
                                break Ok(());
                            }
                        }
                        Err(frame) => {
                            if let Ok(trailers) = frame.into_trailers() {
                                break out.send_trailers(trailers).await;
                            }
                        }
                    },
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the response body failed; resetting the stream");
                        ex.failed(WIN32_ABORTED);
                        out.reset(reset.as_ref().and_then(ResetStream::requested));
                        return Outcome::Stopped;
                    }
                }
            },
        };
        match sent {
            Ok(()) => Outcome::Sent,
            Err(e) => {
                ex.failed(e.win32());
                Outcome::Stopped
            }
        }
    }
}

/// How the wait for the app's answer ended.
enum Waited {
    Answer(Result<Response<ResponseBody>, crate::BoxError>),
    /// The request body was larger than this limit.
    TooLarge(u64),
    /// The app reset the stream with this code.
    Reset(u32),
    ClientGone,
}

/// Waits for the app's answer while the request body flows, the app may reset the stream and
/// the client may reset it or leave. The pump stays with the exchange (HTTP/3 aborts it when
/// dropped, and a streamed response may still read the body).
async fn wait_for_app<O: StreamOut>(
    fut: &mut CatchUnwind,
    pump: &mut Option<Pump>,
    reset: Option<&ResetStream>,
    out: &mut O,
) -> Waited {
    loop {
        tokio::select! {
            biased;
            r = &mut *fut => return Waited::Answer(r),
            end = async { (&mut pump.as_mut().expect("guarded").task).await }, if pump.is_some() => {
                *pump = None;
                if let Ok(Some(limit)) = end {
                    return Waited::TooLarge(limit);
                }
            }
            code = async { reset.expect("guarded").wait().await }, if reset.is_some() => {
                return Waited::Reset(code);
            }
            () = out.client_reset() => return Waited::ClientGone,
        }
    }
}

/// The wait for the body's next frame ended without one: the app reset the stream (its code
/// goes out) or the client left.
fn stopped<O: StreamOut>(out: &mut O, ex: &mut Exchange, reset: Option<&ResetStream>) -> Outcome {
    match reset.and_then(ResetStream::requested) {
        Some(code) => {
            ex.failed(WIN32_ABORTED);
            out.reset(Some(code));
        }
        None => ex.failed(WIN32_CLIENT_GONE),
    }
    Outcome::Stopped
}

/// The body's next frame, unless the app resets the stream or the client leaves first
/// (`Err`; the app's code is then in `reset.requested()`).
async fn next_frame<O: StreamOut>(
    body: &mut http_body_util::combinators::UnsyncBoxBody<Bytes, crate::BoxError>,
    reset: Option<&ResetStream>,
    out: &mut O,
) -> Result<Option<Result<http_body::Frame<Bytes>, crate::BoxError>>, ()> {
    if reset.is_some_and(|r| r.requested().is_some()) {
        return Err(());
    }
    if let Poll::Ready(f) = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
        return Ok(f);
    }
    // The body is not ready: wait for it, a reset or the client's leaving (boxed: this state
    // does not widen every exchange).
    Box::pin(async {
        tokio::select! {
            biased;
            _ = async { reset.expect("guarded").wait().await }, if reset.is_some() => Err(()),
            f = body.frame() => Ok(f),
            () = out.client_reset() => Err(()),
        }
    })
    .await
}

/// `Alt-Svc: h3=":PORT"; ma=86400` unless the app set its own.
pub(crate) fn add_alt_svc(headers: &mut HeaderMap, port: u16) {
    if !headers.contains_key(header::ALT_SVC) {
        if let Ok(v) = HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")) {
            headers.insert(header::ALT_SVC, v);
        }
    }
}

/// Headers HTTP/2 and HTTP/3 forbid (RFC 9113 §8.2.2, RFC 9114 §4.2); an app written for HTTP/1.1 may set them.
///
/// Most responses carry none of them: one pass over the names finds that, instead of five
/// hashed removals per response (~1,000 instructions on the HTTP/2 path).
pub(crate) fn strip_connection_headers(headers: &mut HeaderMap) {
    fn forbidden(name: &HeaderName) -> bool {
        matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "upgrade" | "keep-alive" | "proxy-connection"
        )
    }
    if !headers.keys().any(forbidden) {
        return;
    }
    let found: Vec<HeaderName> = headers.keys().filter(|n| forbidden(n)).cloned().collect();
    for name in found {
        headers.remove(name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_stripped_and_the_rest_kept_in_order() {
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
        h.append("keep-alive", HeaderValue::from_static("timeout=5"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.append(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.append("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.append("x-a", HeaderValue::from_static("2"));
        strip_connection_headers(&mut h);
        let left: Vec<(&str, &str)> = h
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            left,
            [("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")]
        );
        // Nothing to strip: the map is untouched.
        let before = h.clone();
        strip_connection_headers(&mut h);
        assert_eq!(h, before);
    }
}
