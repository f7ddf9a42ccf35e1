//! The response step HTTP/2 and HTTP/3 streams share, each policy once: wait for the app
//! while the request body flows (the app may reset the stream, the client may), answer 413
//! when the body was larger than the limit, 500 when the app failed or gave no final status,
//! add Alt-Svc, take a streamed body's first frame before the head (so a body found too large
//! while the app answers still gets 413), then send head, data and trailers. Each protocol
//! only says how bytes go out ([`StreamOut`]); `h2conn.rs` and `h3conn.rs` implement it.

use std::future::Future;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use httpq_core::Scheme;

use crate::Inner;
use crate::app::{ConnectionInfo, ResetStream};
use crate::body::{BodyTx, ResponseBody};
use crate::conn::CatchUnwind;
use crate::exchange::{Exchange, WIN32_ABORTED, WIN32_CLIENT_GONE};
use crate::h2conn::{Early, too_large_answer};
use crate::pipeline::Active;

/// How a multiplexed protocol sends one stream's response.
pub(crate) trait StreamOut: Send {
    /// Sends the response head; `end`: no body follows. `Err`: the client is gone.
    fn send_head(
        &mut self,
        head: Response<()>,
        end: bool,
    ) -> impl Future<Output = Result<(), ()>> + Send;
    /// Sends body bytes; `end`: they are the last. `Err`: the client is gone.
    fn send_data(&mut self, data: Bytes, end: bool) -> impl Future<Output = Result<(), ()>> + Send;
    /// Sends the trailers, ending the stream.
    fn send_trailers(&mut self, trailers: HeaderMap) -> impl Future<Output = ()> + Send;
    /// Ends the stream after the last data sent.
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
    /// Resets the stream with the app's code, or the protocol's internal error.
    fn reset(&mut self, code: Option<u32>);
    /// Refuses the stream unprocessed, so the client may retry it (a full queue under Basic
    /// 503 verbosity): REFUSED_STREAM, H3_REQUEST_REJECTED.
    fn refuse(&mut self);
    /// Resolves when the client resets the stream.
    fn client_reset(&mut self) -> impl Future<Output = ()> + Send;
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
    pub(crate) reset: ResetStream,
    /// The request body's channel, to learn after the fact whether it was too large.
    pub(crate) probe: Option<BodyTx>,
    pub(crate) method: Method,
    pub(crate) path: String,
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

/// Answers a stream that did not reach the app: a listener answer, or a refusal.
pub(crate) async fn early<O: StreamOut>(
    out: &mut O,
    ex: &mut Exchange,
    early: Early,
    head_only: bool,
) {
    match early {
        Early::Answer { status, body } => answer(out, ex, status, &body, head_only).await,
        Early::Refuse => out.refuse(),
    }
}

/// Sends a listener-made answer: a text body with its length.
pub(crate) async fn answer<O: StreamOut>(
    out: &mut O,
    ex: &mut Exchange,
    status: StatusCode,
    body: &str,
    head_only: bool,
) {
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
    ex.sent(crate::exchange::head_size(response.headers()));
    let end = head_only || body.is_empty();
    if out.send_head(response, end).await.is_err() {
        ex.failed(WIN32_CLIENT_GONE);
        return;
    }
    if !end {
        match out
            .send_data(Bytes::copy_from_slice(body.as_bytes()), true)
            .await
        {
            Ok(()) => ex.sent(body.len() as u64),
            Err(()) => ex.failed(WIN32_CLIENT_GONE),
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
#[allow(clippy::too_many_lines)]
pub(crate) async fn respond<O: StreamOut>(
    at: Place<'_>,
    out: &mut O,
    ex: &mut Exchange,
    call: Call,
    mut pump: Option<Pump>,
) {
    let Call {
        mut fut,
        reset,
        probe,
        method,
        path,
        _active,
    } = call;
    let head_only = at.head_only;
    let mut too_large = None;
    let result = loop {
        tokio::select! {
            biased;
            r = &mut fut => break r,
            end = async { (&mut pump.as_mut().expect("guarded").task).await }, if pump.is_some() => {
                pump = None;
                if let Ok(Some(limit)) = end {
                    too_large = Some(limit);
                    break Err("request body too large".into());
                }
            }
            code = reset.wait() => {
                // The app reset the stream (ResetStream): the client gets the code, no answer.
                ex.failed(WIN32_ABORTED);
                out.reset(Some(code));
                return;
            }
            () = out.client_reset() => {
                // The client reset the stream: cancel the app's work (dropping its future).
                tracing::debug!("the client reset the stream; request cancelled");
                ex.failed(WIN32_CLIENT_GONE);
                return;
            }
        }
    };
    drop(fut);
    // The app's read failed on an over-long body: HTTP.sys answers 413 (no response started).
    let too_large = too_large.or_else(|| probe.as_ref().and_then(BodyTx::too_large));
    if let Some(limit) = too_large {
        let (status, body) =
            too_large_answer(at.inner, at.info, ex, limit, &method, &path, at.protocol);
        return answer(out, ex, status, &body, head_only).await;
    }
    if let Some(code) = reset.requested() {
        ex.failed(WIN32_ABORTED);
        out.reset(Some(code));
        return;
    }
    let response = match crate::pipeline::final_response(result, &method, &path) {
        Ok(r) => r,
        Err((status, text)) => return answer(out, ex, status, text, head_only).await,
    };
    let (mut parts, body) = response.into_parts();
    crate::h2conn::strip_connection_headers(&mut parts.headers);
    if at.inner.options.alt_svc && at.scheme == Scheme::Https {
        crate::h2conn::add_alt_svc(&mut parts.headers, at.info.local_addr.port());
    }
    // The first frame of a streamed body before the head, as on HTTP/1.1.
    let mut first = None;
    let mut body = body;
    if let ResponseBody::Stream(s) = &mut body {
        if !head_only && !s.is_end_stream() {
            let Ok(f) = next_frame(s, &reset).await else {
                ex.failed(WIN32_ABORTED);
                return out.reset(reset.requested());
            };
            if matches!(f, Some(Err(_))) {
                if let Some(limit) = probe.as_ref().and_then(BodyTx::too_large) {
                    let (status, text) =
                        too_large_answer(at.inner, at.info, ex, limit, &method, &path, at.protocol);
                    return answer(out, ex, status, &text, head_only).await;
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
    let end = head_only || empty;
    ex.status(parts.status.as_u16());
    ex.sent(crate::exchange::head_size(&parts.headers));
    if out
        .send_head(Response::from_parts(parts, ()), end)
        .await
        .is_err()
    {
        ex.failed(WIN32_CLIENT_GONE);
        return;
    }
    if end {
        return;
    }
    match body {
        ResponseBody::Empty => out.finish().await,
        ResponseBody::Full(b) => {
            let n = b.len() as u64;
            match out.send_data(b, true).await {
                Ok(()) => ex.sent(n),
                Err(()) => ex.failed(WIN32_CLIENT_GONE),
            }
        }
        ResponseBody::Stream(mut s) => loop {
            let next = match first.take() {
                Some(f) => f,
                None => {
                    let Ok(f) = next_frame(&mut s, &reset).await else {
                        ex.failed(WIN32_ABORTED);
                        return out.reset(reset.requested());
                    };
                    f
                }
            };
            match next {
                None => return out.finish().await,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let end = s.is_end_stream();
                        let n = data.len() as u64;
                        if out.send_data(data, end).await.is_err() {
                            ex.failed(WIN32_CLIENT_GONE);
                            return;
                        }
                        ex.sent(n);
                        if end {
                            return;
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            return out.send_trailers(trailers).await;
                        }
                    }
                },
                Some(Err(e)) => {
                    ex.failed(WIN32_ABORTED);
                    tracing::warn!(error = %e, "the response body failed; resetting the stream");
                    out.reset(reset.requested());
                    return;
                }
            }
        },
    }
}

/// The body's next frame, unless the app resets the stream first (`Err`: its code is then in
/// `reset.requested()`).
async fn next_frame(
    body: &mut http_body_util::combinators::UnsyncBoxBody<Bytes, crate::BoxError>,
    reset: &ResetStream,
) -> Result<Option<Result<http_body::Frame<Bytes>, crate::BoxError>>, ()> {
    tokio::select! {
        biased;
        _ = reset.wait() => Err(()),
        f = body.frame() => Ok(f),
    }
}
