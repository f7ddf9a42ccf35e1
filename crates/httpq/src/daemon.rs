//! Daemon mode, app side: connect to `httpqd`, create a queue, register the prefixes, grant
//! request credits, and run the app's service for every REQUEST_HEAD that arrives.

// Stream ids are the listener's, not a client's: a fast hash is safe.
use rustc_hash::FxHashMap as HashMap;
use std::future::{Future, poll_fn};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use httpq_core::UrlPrefix;
use httpq_server::ipc::{FrameReader, FrameWriter, StreamWindow};
use httpq_server::{
    BodySender, BoxError, Disconnect, DisconnectTrigger, MatchedPrefix, RequestBody, RequestContext,
};
use httpq_wire::control::{
    ControlRequest, ControlResponse, Http503Verbosity as WireVerbosity, RequestQueueMode,
};
use httpq_wire::{
    Credit, Data, ErrorCode, Frame, Hello, INITIAL_WINDOW, RequestBodyKind, Reset, Role, SetLimit,
    StreamId,
};
use tower_service::Service;

use crate::Error;
use crate::stream_rules::Wire;

/// Per-request state the connection reader shares with the tasks answering requests.
#[derive(Default)]
struct Streams {
    /// Fired when the listener cancels the request (its client went away).
    triggers: HashMap<u64, DisconnectTrigger>,
    /// To-listener windows of response bodies larger than one window (wire spec §8).
    windows: HashMap<u64, Arc<StreamWindow>>,
}

type Triggers = Arc<Mutex<Streams>>;

fn streams(t: &Triggers) -> std::sync::MutexGuard<'_, Streams> {
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn daemon_error(socket: &Path, what: impl std::fmt::Display) -> Error {
    Error::Daemon(format!(
        "httpqd at {}: {what} (unset HTTPQ_SOCKET to run embedded instead)",
        socket.display()
    ))
}

/// A connection to the listener, registered and receiving.
pub(crate) struct DaemonConnection {
    pub(crate) urls: Vec<UrlPrefix>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// Connects, registers `prefixes` on a new anonymous queue and starts receiving requests.
/// Connects, registers `prefixes` and starts receiving requests. When the listener goes away
/// (restarted, upgraded), the connection is re-established with backoff and the same queue and
/// prefixes registered again; requests keep flowing to the same service.
pub(crate) async fn connect<S, B>(
    socket: &Path,
    prefixes: Vec<UrlPrefix>,
    options: &httpq_core::options::Options,
    service: S,
) -> Result<DaemonConnection, Error>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let first = register(socket, prefixes, options).await?;
    let urls = first.urls.clone();
    let socket = socket.to_owned();
    let options = options.clone();
    let task = tokio::spawn(async move {
        let mut session = first;
        loop {
            let prefixes = session.urls.clone();
            receive(
                session.reader,
                session.writer,
                session.contexts,
                session.max_frame,
                session.granted,
                service.clone(),
            )
            .await;
            // The listener went away: come back when it does.
            let mut delay = std::time::Duration::from_millis(50);
            session = loop {
                tokio::time::sleep(delay).await;
                match register(&socket, prefixes.clone(), &options).await {
                    Ok(s) => {
                        tracing::info!(socket = %socket.display(), "reconnected to the httpqd listener and registered again");
                        break s;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "the httpqd listener is not back yet");
                        delay = (delay * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            };
        }
    });
    Ok(DaemonConnection { urls, task })
}

/// One registered session with the listener.
struct Session {
    reader: FrameReader,
    writer: FrameWriter,
    contexts: HashMap<u64, MatchedPrefix>,
    urls: Vec<UrlPrefix>,
    max_frame: u32,
    /// The request credits granted at registration (`max_accepts`).
    granted: u32,
}

async fn register(
    socket: &Path,
    prefixes: Vec<UrlPrefix>,
    options: &httpq_core::options::Options,
) -> Result<Session, Error> {
    // The listener is authenticated (socket directory, SO_PEERCRED of the listening
    // process) before anything, a queue's traffic included, is sent to it.
    let stream = match httpq_server::trust::connect(socket).await {
        Ok(s) => s,
        Err(httpq_server::trust::ListenerNotTrusted::Connect { source, .. }) => {
            return Err(daemon_error(socket, format!("cannot connect: {source}")));
        }
        Err(refused) => return Err(refused.into()),
    };
    let (rd, wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let writer = FrameWriter::spawn(wr);
    writer.send(Frame::Hello(Hello::new(Role::App)));
    let ack = match reader.next().await {
        Ok(Frame::HelloAck(a)) => a,
        Ok(Frame::Goaway(g)) => return Err(daemon_error(socket, g.reason)),
        Ok(other) => {
            return Err(daemon_error(
                socket,
                format!("unexpected {:?}", other.frame_type()),
            ));
        }
        Err(e) => return Err(daemon_error(socket, e)),
    };
    reader.set_max_frame_size(ack.max_frame_size);
    let max_frame = ack.max_frame_size;

    let mut op = 0u32;
    let mut call = async |req: ControlRequest| -> Result<serde_json::Value, Error> {
        op += 1;
        writer.send(Frame::control(op, &req));
        loop {
            match reader.next().await {
                Ok(Frame::Control(c)) if c.is_response && c.op_id == op => {
                    return match c.response() {
                        Ok(ControlResponse::Ok { result }) => Ok(result),
                        Ok(ControlResponse::Error { message, .. }) => {
                            Err(daemon_error(socket, message))
                        }
                        Ok(_) => Err(daemon_error(socket, "unknown control response")),
                        Err(e) => Err(daemon_error(socket, e)),
                    };
                }
                Ok(Frame::Goaway(g)) => return Err(daemon_error(socket, g.reason)),
                Ok(_) => {}
                Err(e) => return Err(daemon_error(socket, e)),
            }
        }
    };
    let created = call(ControlRequest::CreateQueue {
        name: options.request_queue_name.clone(),
        mode: match options.request_queue_mode {
            httpq_core::queue::RequestQueueMode::Create => RequestQueueMode::Create,
            httpq_core::queue::RequestQueueMode::Attach => RequestQueueMode::Attach,
            httpq_core::queue::RequestQueueMode::CreateOrAttach => RequestQueueMode::CreateOrAttach,
        },
        request_queue_limit: Some(options.request_queue_limit),
        http503_verbosity: Some(match options.http503_verbosity {
            httpq_core::queue::Http503Verbosity::Basic => WireVerbosity::Basic,
            httpq_core::queue::Http503Verbosity::Limited => WireVerbosity::Limited,
            httpq_core::queue::Http503Verbosity::Full => WireVerbosity::Full,
        }),
        retention_secs: Some(options.queue_retention.as_secs()),
        // None: the credits go as a CREDIT after registration, which `receive` counts from
        // (`granted`); credits granted here too would leave the listener holding more than
        // the count, and a correct listener would be refused.
        max_accepts: None,
        acl: options
            .request_queue_acl
            .iter()
            .map(ToString::to_string)
            .collect(),
    })
    .await?;
    let max_accepts = options.max_accepts;
    let queue = created["queue"].as_u64().unwrap_or(0);
    let mut contexts = HashMap::default();
    let mut urls = Vec::new();
    for prefix in prefixes {
        let result = call(ControlRequest::AddUrl {
            queue,
            prefix: prefix.to_string(),
        })
        .await?;
        let bound = result["prefix"]
            .as_str()
            .and_then(|p| UrlPrefix::parse(p).ok())
            .unwrap_or(prefix);
        let ctx = result["url_context"].as_u64().unwrap_or(0);
        contexts.insert(ctx, MatchedPrefix::new(bound.clone()));
        urls.push(bound);
    }
    // Options::validate keeps max_accepts within the wire's bound (2^31-1); clamped again so
    // that no setting can make this process break it.
    let granted = max_accepts.clamp(1, u32::try_from(httpq_wire::MAX_WINDOW).unwrap_or(u32::MAX));
    writer.send(Frame::Credit(Credit::requests(granted)));
    tracing::info!(
        mode = "daemon",
        socket = %socket.display(),
        urls = ?urls.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "httpq is serving through the httpqd listener"
    );
    Ok(Session {
        reader,
        writer,
        contexts,
        urls,
        max_frame,
        granted,
    })
}

async fn receive<S, B>(
    mut reader: FrameReader,
    writer: FrameWriter,
    contexts: HashMap<u64, MatchedPrefix>,
    max_frame: u32,
    granted: u32,
    service: S,
) where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut bodies: HashMap<u64, BodySender> = HashMap::default();
    let triggers: Triggers = Arc::default();
    let writer = Wire::new(writer);
    // Stream ids only grow on a connection (wire spec §2).
    let mut highest = 0u64;
    // Request credits earned by the heads taken from the buffer, sent together once the
    // buffered frames are handled (each request's first poll included), before the next wait
    // for bytes: one CREDIT per read, not per request.
    // The listener holds `granted - credits` credits (wire spec §8): every head uses one and
    // earns it back here until the next CREDIT returns them.
    let mut credits = 0u32;
    // What the frames of one read make this task send (the answers of requests done on their
    // first poll, the credits) waits until the read is handled and goes out in one write from
    // this task: no writer task wakes per read. Held while frames are handled, released while
    // waiting for bytes and whenever the loop ends.
    struct Release<'a>(&'a Wire);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.flush();
        }
    }
    let _release = Release(&writer);
    writer.hold();
    loop {
        let next = match reader.try_next() {
            Ok(Some(f)) => Ok(f),
            Ok(None) => {
                if credits > 0 {
                    writer.send(Frame::Credit(Credit::requests(credits)));
                    credits = 0;
                }
                writer.flush();
                let next = reader.next().await;
                writer.hold();
                next
            }
            Err(e) => Err(e.into()),
        };
        let frame = match next {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "the httpqd listener connection ended; no more requests will arrive");
                break;
            }
        };
        if let Frame::RequestHead(h) = &frame {
            // A head that reuses an id or comes without credit ends the connection.
            let broken = if h.stream.0 <= highest {
                Some((
                    ErrorCode::PROTOCOL_ERROR,
                    format!(
                        "REQUEST_HEAD reuses stream id {} (the highest opened is {highest}); ids only grow",
                        h.stream.0
                    ),
                ))
            } else if credits >= granted {
                Some((
                    ErrorCode::FLOW_CONTROL_ERROR,
                    format!(
                        "REQUEST_HEAD on stream {} without a request credit (max_accepts {granted})",
                        h.stream.0
                    ),
                ))
            } else {
                None
            };
            if let Some((code, reason)) = broken {
                tracing::error!(
                    "the httpqd listener broke the wire protocol: {reason}; closing the connection"
                );
                writer.send(Frame::Goaway(httpq_wire::Goaway {
                    last_stream: StreamId(highest),
                    code,
                    reason,
                }));
                // The sender of an error GOAWAY closes the connection (wire spec §5.3), though
                // answers under way still hold the writer.
                writer.shutdown();
                break;
            }
            highest = h.stream.0;
            // One request received: one more may come. As HTTP.sys's accept loops re-post a
            // receive as soon as one completes (ASP.NET Core's MessagePump), max_accepts bounds
            // requests on their way to this process, not how many it serves at once; granting
            // only per answer made 10 credits the throughput limit. The credit goes out with
            // the others of this read, after their first polls (above), whether the request is
            // served or its stream is reset below.
            credits += 1;
        }
        // Every frame on a request stream is checked against the stream's rules first.
        if let Err(e) = writer.check(&frame) {
            let stream = frame.stream();
            writer.broke_rule(stream, &e);
            end_stream(&triggers, &mut bodies, stream, false);
            continue;
        }
        match frame {
            Frame::RequestHead(h) => {
                let stream = h.stream;
                let mut limit_handle = None;
                let body = if h.body == RequestBodyKind::Empty {
                    RequestBody::empty()
                } else {
                    let len = match h.body {
                        RequestBodyKind::Length(n) => Some(n),
                        _ => None,
                    };
                    let (tx, body) = RequestBody::with_sender(len);
                    // The per-request body limit (HTTP.sys's MaxRequestBodySize): the listener
                    // enforces it, so what the app sets goes there as SET_LIMIT, before its
                    // first read (CREDIT) fixes it.
                    let limits = writer.clone();
                    limit_handle = Some(tx.limit_handle(
                        (h.max_request_body_size != u64::MAX).then_some(h.max_request_body_size),
                        move |limit| {
                            limits.send(Frame::SetLimit(SetLimit {
                                stream,
                                max_request_body_size: limit.unwrap_or(u64::MAX),
                            }));
                        },
                    ));
                    // Flow control (wire spec §8): the first read marks "reading" and grants
                    // a second window; every later read grants what it took.
                    let credits = writer.clone();
                    tx.on_read(move |n| {
                        let increment = if n == 0 {
                            INITIAL_WINDOW
                        } else {
                            u32::try_from(n).unwrap_or(u32::MAX)
                        };
                        credits.send(Frame::Credit(Credit { stream, increment }));
                    });
                    bodies.insert(stream.0, tx);
                    body
                };
                let (trigger, disconnect) = Disconnect::pair();
                streams(&triggers).triggers.insert(stream.0, trigger);
                let prefix = contexts
                    .get(&h.url_context)
                    .cloned()
                    .or_else(|| contexts.values().next().cloned());
                let multiplexed = matches!(
                    h.version,
                    httpq_wire::HttpVersion::Http2 | httpq_wire::HttpVersion::Http3
                );
                // The canonical URI the listener routed on (as in embedded mode); the
                // client's own target is RequestContext::raw_target.
                let (parts, meta) = h.into_http();
                let mut request = Request::from_parts(parts, body);
                if let Some(prefix) = prefix {
                    request.extensions_mut().insert(RequestContext::from_wire(
                        prefix,
                        meta,
                        disconnect,
                        limit_handle,
                    ));
                }
                if multiplexed {
                    // The app may reset the stream: the listener does it with the app's code.
                    let resets = writer.clone();
                    request
                        .extensions_mut()
                        .insert(httpq_server::ResetStream::with_hook(move |code| {
                            resets.send(Frame::Reset(Reset {
                                stream,
                                code: ErrorCode(code),
                                reason: "reset by the application".to_owned(),
                            }));
                        }));
                }
                // Most handlers answer on their first poll: run that here and only hand the
                // request to a task of its own when it has to wait.
                let mut fut = Box::pin(respond(
                    service.clone(),
                    writer.clone(),
                    request,
                    stream,
                    max_frame,
                    triggers.clone(),
                ));
                if poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx)))
                    .await
                    .is_pending()
                {
                    tokio::spawn(fut);
                }
            }
            Frame::RequestBody(d) => {
                if let Some(tx) = bodies.get(&d.stream.0) {
                    if !d.data.is_empty() {
                        tx.push(d.data);
                    }
                }
                if d.end_stream {
                    if let Some(tx) = bodies.remove(&d.stream.0) {
                        tx.finish(None);
                    }
                }
            }
            Frame::RequestTrailers(t) => {
                if let Some(tx) = bodies.remove(&t.stream.0) {
                    tx.finish(Some(t.headers));
                }
            }
            Frame::Credit(c) if !c.stream.is_connection() => {
                let window = streams(&triggers).windows.get(&c.stream.0).cloned();
                if let Some(w) = window {
                    w.grant(c.increment);
                }
            }
            Frame::Cancel(httpq_wire::Cancel { stream, .. })
            | Frame::Reset(Reset { stream, .. }) => {
                let too_large = matches!(
                    &frame,
                    Frame::Reset(Reset { code, .. }) if *code == ErrorCode::CONTENT_TOO_LARGE
                );
                end_stream(&triggers, &mut bodies, stream, too_large);
                writer.close(stream);
            }
            Frame::Goaway(g) => {
                tracing::warn!(reason = %g.reason, "the httpqd listener is going away");
                break;
            }
            _ => {}
        }
    }
    // Requests still running lose their client.
    let ended = std::mem::take(&mut *streams(&triggers));
    for (_, w) in ended.windows {
        w.close();
    }
    for (_, t) in ended.triggers {
        t.fire();
    }
}

/// The listener ended the stream (CANCEL, RESET), or broke its rules: the request's body
/// fails (as too large when the listener said so), its disconnect fires, its response stops.
fn end_stream(
    triggers: &Triggers,
    bodies: &mut HashMap<u64, BodySender>,
    stream: StreamId,
    too_large: bool,
) {
    if let Some(body) = bodies.remove(&stream.0) {
        if too_large {
            body.fail_too_large();
        }
    }
    let (trigger, window) = {
        let mut st = streams(triggers);
        (st.triggers.remove(&stream.0), st.windows.remove(&stream.0))
    };
    if let Some(w) = window {
        w.close();
    }
    if let Some(t) = trigger {
        t.fire();
    }
}

async fn respond<S, B>(
    mut service: S,
    writer: Wire,
    request: Request<RequestBody>,
    stream: StreamId,
    max_frame: u32,
    triggers: Triggers,
) where
    S: Service<Request<RequestBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let ready: Result<(), BoxError> = poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(Into::into);
    let result = match ready {
        Ok(()) => service.call(request).await.map_err(Into::into),
        Err(e) => Err(e),
    };
    let mut out = Vec::with_capacity(4);
    match result {
        Ok(response) => {
            send_response(&writer, stream, response, max_frame, &triggers, &mut out).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "the application failed to answer; sending 500");
            out.push(internal_error(stream));
        }
    }
    {
        let mut st = streams(&triggers);
        st.triggers.remove(&stream.0);
        st.windows.remove(&stream.0);
    }
    writer.send_all(out);
    // The response is sent: frames the listener sends later crossed its end.
    writer.close(stream);
}

/// An empty 500 that ends `stream`.
fn internal_error(stream: StreamId) -> Frame {
    Frame::ResponseHead(httpq_wire::ResponseHead {
        stream,
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: http::HeaderMap::new(),
        cache: None,
        body_length: Some(0),
        end_stream: true,
    })
}

async fn send_response<B>(
    writer: &Wire,
    stream: StreamId,
    response: Response<B>,
    max_frame: u32,
    triggers: &Triggers,
    out: &mut Vec<Frame>,
) where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let end = body.is_end_stream();
    let head = Frame::ResponseHead(httpq_wire::ResponseHead::from_http(
        stream,
        parts,
        body.size_hint().exact(),
        end,
    ));
    // A head the listener would refuse would end the whole connection, every request on it:
    // this one gets a 500 instead.
    if let Err(e) = head.check_fits(max_frame) {
        tracing::error!(
            stream = stream.0,
            error = %e,
            "the response head cannot cross to the listener (at most {max_frame} bytes and {} \
             header fields); answering 500 instead",
            httpq_wire::MAX_HEADER_FIELDS
        );
        out.push(internal_error(stream));
        return;
    }
    out.push(head);
    if end {
        return;
    }
    let mut body = std::pin::pin!(body);
    let mut window: Option<Arc<StreamWindow>> = None;
    loop {
        // Frames that are ready go out together; flush only before waiting for more.
        let mut ready = None;
        if let std::task::Poll::Ready(f) =
            poll_fn(|cx| std::task::Poll::Ready(body.as_mut().poll_frame(cx))).await
        {
            ready = Some(f.map(|r| r.map_err(Into::<BoxError>::into)));
        }
        let next = match ready {
            Some(f) => f,
            None => {
                writer.send_all(out.drain(..));
                body.frame()
                    .await
                    .map(|r| r.map_err(Into::<BoxError>::into))
            }
        };
        match next {
            None => {
                out.push(Frame::ResponseBody(Data {
                    stream,
                    data: Bytes::new(),
                    end_stream: true,
                }));
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    // The last data frame carries END_STREAM itself when the body knows it is done.
                    let end = body.is_end_stream();
                    if window.is_none() && end && data.len() <= INITIAL_WINDOW as usize {
                        // A body that fits the initial window needs no credit at all.
                        for piece in httpq_wire::split_data(stream, data, true, max_frame) {
                            out.push(Frame::ResponseBody(piece));
                        }
                        return;
                    }
                    // Larger bodies go out as the listener grants credit (it does as its
                    // client takes the bytes): a slow client makes this wait instead of the
                    // listener or this process buffering the body.
                    let w = window.get_or_insert_with(|| {
                        let w = StreamWindow::new(INITIAL_WINDOW);
                        streams(triggers).windows.insert(stream.0, w.clone());
                        w
                    });
                    while !data.is_empty() {
                        let want = data.len().min(max_frame as usize);
                        let n = match w.try_acquire(want) {
                            Some(n) => n,
                            None => {
                                writer.send_all(out.drain(..));
                                match w.acquire(want).await {
                                    Some(n) => n,
                                    None => return,
                                }
                            }
                        };
                        let piece = data.split_to(n);
                        out.push(Frame::ResponseBody(Data {
                            stream,
                            data: piece,
                            end_stream: end && data.is_empty(),
                        }));
                    }
                    if end {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let trailers = Frame::ResponseTrailers(httpq_wire::Trailers {
                            stream,
                            headers: trailers,
                        });
                        if let Err(e) = trailers.check_fits(max_frame) {
                            tracing::error!(
                                stream = stream.0,
                                error = %e,
                                "the response trailers cannot cross to the listener (at most \
                                 {max_frame} bytes and {} fields)",
                                httpq_wire::MAX_HEADER_FIELDS
                            );
                            if matches!(out.first(), Some(Frame::ResponseHead(_))) {
                                // Nothing of the response has gone out yet: a 500 instead.
                                out.clear();
                                out.push(internal_error(stream));
                            } else {
                                // The head is gone: the response can only be cut.
                                out.push(Frame::Reset(Reset::new(
                                    stream,
                                    ErrorCode::INTERNAL_ERROR,
                                    format!("the response trailers cannot cross: {e}"),
                                )));
                            }
                            return;
                        }
                        out.push(trailers);
                        return;
                    }
                }
            },
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the response body failed; resetting the request");
                // The handler's error text, capped by Reset::new.
                out.push(Frame::Reset(Reset::new(
                    stream,
                    ErrorCode::INTERNAL_ERROR,
                    e.to_string(),
                )));
                return;
            }
        }
    }
}
