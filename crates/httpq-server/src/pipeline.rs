//! The request step every protocol shares, each policy once ([`admit`]): canonicalise the
//! target, find the host (with each protocol's rule for where it comes from), check the TLS
//! binding, route; admit to the queue (limit, 503 verbosity, the request-queue timer); build
//! the request the app sees; and the listener's own answers with their HTTP.sys error-log
//! line. HTTP/1.1 (`conn.rs`), HTTP/2 (`h2conn.rs`) and HTTP/3 (`h3conn.rs`) parse a request,
//! call [`admit`], hand the result to `stream::respond` and only frame bytes around them.
//! Authentication and the response-cache lookup attach here, between routing and the queue.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use httpq_core::Scheme;
use httpq_core::canonical::{self, CanonicalTarget};
use httpq_core::queue::Refusal;
use httpq_core::reason::{Reason, Rejection};
use httpq_core::router::{Route, RouteRequest, split_host_port};
use tokio::time::{Instant, timeout_at};

use crate::app::{
    AppHandle, AppRequest, ConnectionInfo, MatchedPrefix, RequestContext, RequestId, ResetStream,
};
use crate::body::{BodyTx, MaxRequestBodySize, RequestBody};
use crate::exchange::Exchange;
use crate::timing::{ReqStamps, TimingKind};
use crate::{Inner, Queue, RouteTable};

/// Writes HTTP.sys's error-log line (target `httpq::httperr`) for a request the listener
/// answered itself.
pub(crate) fn log_refusal(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    rejection: &Rejection,
    method: Option<&Method>,
    target: &[u8],
    protocol: &'static str,
) {
    ex.refused(rejection);
    log_line(inner, info, ex, rejection, method, target, protocol);
}

/// Writes the error-log line for a request body that failed on its way to the app (its
/// framing broke); the app's answer, if any, stays the exchange's status.
pub(crate) fn log_body_failure(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    rejection: &Rejection,
    method: &Method,
    target: &[u8],
    protocol: &'static str,
) {
    ex.reason(rejection);
    log_line(inner, info, ex, rejection, Some(method), target, protocol);
}

fn log_line(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &Exchange,
    rejection: &Rejection,
    method: Option<&Method>,
    target: &[u8],
    protocol: &'static str,
) {
    if let Some(log) = &inner.httperr {
        log.log(&crate::httperr::Entry {
            client: Some(info.remote_addr),
            server: Some(info.local_addr),
            version: Some(protocol),
            method: method.map(Method::as_str),
            uri: (!target.is_empty()).then_some(target),
            status: Some(rejection.status()),
            reason: rejection.reason.phrase(),
            queue: ex.queue(),
            stream_id: ex.request_id(),
        });
    }
    tracing::info!(
        target: "httpq::httperr",
        reason = rejection.reason.phrase(),
        status = rejection.status(),
        client = %info.remote_addr,
        server = %info.local_addr,
        method = method.map_or("-", Method::as_str),
        url = %String::from_utf8_lossy(target),
        detail = %rejection.detail,
        protocol,
        "request refused by the listener"
    );
}

/// The status and text body the listener answers `rejection` with:
/// `400 Bad Request (Hostname): <detail>`.
pub(crate) fn refusal_answer(rejection: &Rejection) -> (StatusCode, String) {
    let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = format!(
        "{} {} ({}): {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        rejection.reason.phrase(),
        rejection.detail
    );
    (status, body)
}

/// The 503 a queue refusal is answered with under `Http503Verbosity` Limited (no reason) or
/// Full (the reason); `None` under Basic, where the connection (HTTP/1.1) or the stream
/// (HTTP/2, HTTP/3) is reset instead.
pub(crate) fn unavailable_answer(refusal: &Refusal) -> Option<(StatusCode, String)> {
    match refusal {
        Refusal::Reset(_) => None,
        Refusal::Respond {
            rejection,
            with_detail,
        } => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            if *with_detail {
                format!(
                    "503 Service Unavailable ({}): {}\n",
                    rejection.reason.phrase(),
                    rejection.detail
                )
            } else {
                "503 Service Unavailable\n".to_owned()
            },
        )),
    }
}

/// The app's answer as the listener passes it on: an app that failed gets 500, a 1xx given as
/// the final response gets 500 (101, a protocol switch, gets 501 while upgrades are not
/// supported), each logged; anything else goes out.
///
/// # Errors
/// The listener's answer instead: status and text body.
pub(crate) fn final_response(
    result: Result<http::Response<crate::ResponseBody>, crate::BoxError>,
    method: &Method,
    target: &[u8],
) -> Result<http::Response<crate::ResponseBody>, (StatusCode, &'static str)> {
    let target = || String::from_utf8_lossy(target).into_owned();
    match result {
        Ok(r) if !r.status().is_informational() => Ok(r),
        Ok(r) => {
            let answer = if r.status() == StatusCode::SWITCHING_PROTOCOLS {
                (
                    StatusCode::NOT_IMPLEMENTED,
                    "501 Not Implemented: protocol upgrades (101 Switching Protocols) are not supported yet\n",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error\n",
                )
            };
            tracing::error!(status = %r.status(), %method, target = %target(), "the application answered with a 1xx status as its final response; sending {}", answer.0);
            Err(answer)
        }
        Err(e) => {
            tracing::error!(error = %e, %method, target = %target(), "the application failed to answer; sending 500");
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            ))
        }
    }
}

/// Where a request names its host: the one difference between the protocols' rules.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostSource<'a> {
    /// HTTP/1.1: the authority of an absolute-form target, if any. It wins over `Host`
    /// (RFC 9112 §3.2.2) and replaces it for the app.
    Target(Option<&'a str>),
    /// HTTP/2 and HTTP/3: `:authority`, which a `Host` header must equal (RFC 9113 §8.3.1,
    /// RFC 9114 §4.3.1); it becomes `Host` for the app when there is none.
    Authority(Option<&'a str>),
}

/// What a request asks for: its canonical path, its headers and where its host comes from.
pub(crate) struct Asked<'a> {
    pub(crate) path: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) host: HostSource<'a>,
}

/// A request's route: the matched prefix and its queue.
pub(crate) struct Routed {
    pub(crate) prefix: MatchedPrefix,
    pub(crate) queue: Arc<Queue>,
    /// The `Host` the app must see when it differs from, or is missing in, the headers: the
    /// host the request was routed on.
    pub(crate) host_header: Option<HeaderValue>,
}

/// A request refused while routing.
pub(crate) struct Unrouted {
    pub(crate) rejection: Rejection,
    /// The request was well formed and merely matched nothing (unknown host, no prefix): an
    /// HTTP/1.1 connection may go on to the next request if no body has to be skipped.
    pub(crate) well_formed: bool,
}

/// Finds the host (refusing a duplicate or non-ASCII `Host`, or one that contradicts
/// `:authority`), refuses a host whose TLS binding differs from the connection's when either
/// has a client-certificate policy (421), and routes by scheme, host, local address and
/// canonical `path` with HTTP.sys's precedence in `table`.
///
/// # Errors
/// The refusal to answer with (400 Hostname, 421 Misdirected, 404 NotFound).
pub(crate) fn route(
    inner: &Inner,
    table: &RouteTable,
    info: &ConnectionInfo,
    scheme: Scheme,
    asked: Asked<'_>,
    timing: &mut ReqStamps,
) -> Result<Routed, Unrouted> {
    let Asked {
        path,
        headers,
        host: source,
    } = asked;
    if timing.get(TimingKind::REQUEST_ROUTING_START).is_none() {
        timing.stamp(TimingKind::REQUEST_ROUTING_START);
    }
    let hostname = |detail: String| Unrouted {
        rejection: Rejection::new(Reason::Hostname, detail),
        well_formed: false,
    };
    // The Host header matters unless an absolute-form target names the host (RFC 9112
    // §3.2.2: Host is ignored then).
    let host_header = if matches!(source, HostSource::Target(Some(_))) {
        None
    } else {
        // (HTTP/1.1's head parser already refuses a second Host.)
        if matches!(source, HostSource::Authority(_))
            && headers.get_all(header::HOST).iter().nth(1).is_some()
        {
            return Err(hostname("more than one Host header".to_owned()));
        }
        match headers.get(header::HOST).map(HeaderValue::to_str) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                return Err(hostname(
                    "invalid Host header: it is not ASCII (international names are sent in their punycode form)"
                        .to_owned(),
                ));
            }
        }
    };
    let (authority, replace) = match source {
        HostSource::Target(Some(a)) => (Some(a), true),
        HostSource::Target(None) => (host_header, false),
        HostSource::Authority(Some(a)) => {
            if let Some(h) = host_header {
                if !a.eq_ignore_ascii_case(h) {
                    return Err(hostname(format!(
                        "the Host header {h:?} differs from :authority {a:?}"
                    )));
                }
            }
            (Some(a), host_header.is_none())
        }
        HostSource::Authority(None) => (host_header, false),
    };
    let host = match authority.map(split_host_port) {
        None => "",
        Some(Ok((h, _))) => h,
        Some(Err(e)) => {
            let what = match source {
                HostSource::Authority(Some(_)) => ":authority",
                HostSource::Target(Some(_)) => "request target's host",
                _ => "Host header",
            };
            return Err(hostname(format!("invalid {what}: {e}")));
        }
    };
    if let Some(rejection) = crate::tls::misdirected(inner, info, host) {
        return Err(Unrouted {
            rejection,
            well_formed: false,
        });
    }
    let local = info.local_addr;
    let route_req = RouteRequest {
        scheme,
        host,
        local_ip: local.ip(),
        local_port: local.port(),
        path,
    };
    let route = table.router.route(&route_req);
    // Routing ends where queueing starts (admit follows at once): one stamp for both.
    timing.stamp(TimingKind::REQUEST_ROUTING_END);
    match route {
        Route::Matched { owner, .. } => Ok(Routed {
            prefix: owner.matched.clone(),
            queue: owner.queue.clone(),
            host_header: authority
                .filter(|_| replace)
                .and_then(|a| HeaderValue::from_str(a).ok()),
        }),
        Route::UnknownHost => Err(Unrouted {
            rejection: Rejection::new(
                Reason::Hostname,
                format!(
                    "Invalid Hostname: no registered URL prefix accepts host {host:?} on port {}",
                    local.port()
                ),
            ),
            well_formed: true,
        }),
        Route::NoPrefix => Err(Unrouted {
            rejection: Rejection::new(
                Reason::NotFound,
                format!("no registered URL prefix matches path {path:?}"),
            ),
            well_formed: true,
        }),
    }
}

/// Why a routed request did not reach the app.
pub(crate) enum NotAdmitted {
    /// The queue refused it (full, or the request-queue timer expired), as its 503 verbosity
    /// says.
    Queue(Refusal),
    /// The app failed while becoming ready: 503 AppShutdown.
    Unavailable(Rejection),
}

/// A request's count in its queue: queued (`depth`) while it waits for a receiver, then
/// active (`active`) from its delivery to the app until it is answered. Dropping it takes
/// back whichever it is (a wait that timed out, a panic in the app's `poll_ready`, the end
/// of the exchange).
#[derive(Debug)]
pub(crate) struct Active {
    queue: Arc<Queue>,
    delivered: bool,
}

impl Active {
    /// Counts a request as queued; with the queue's depth before it.
    fn enqueue(queue: Arc<Queue>) -> (Active, u32) {
        let depth = queue.depth.fetch_add(1, Ordering::AcqRel);
        let this = Active {
            queue,
            delivered: false,
        };
        (this, depth)
    }

    /// The request leaves its queue for the app.
    fn deliver(&mut self) {
        self.queue.depth.fetch_sub(1, Ordering::AcqRel);
        self.queue.active.fetch_add(1, Ordering::AcqRel);
        self.delivered = true;
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.delivered {
            self.queue.active.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.queue.depth.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Where a request's host comes from.
pub(crate) enum HostFrom {
    /// HTTP/1.1: an absolute-form target's authority, else `Host`.
    Target,
    /// HTTP/2 and HTTP/3: `:authority`.
    Authority(Option<http::uri::Authority>),
}

/// A request as its protocol parsed it, before the shared steps.
pub(crate) struct Incoming {
    pub(crate) method: Method,
    /// The target exactly as the client sent it (HTTP.sys's RawUrl).
    pub(crate) raw_target: Bytes,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) host: HostFrom,
    /// The head's size on the wire, for `cs-bytes`.
    pub(crate) head_len: u64,
    /// A body follows.
    pub(crate) has_body: bool,
    /// Its declared length, when it has one.
    pub(crate) declared: Option<u64>,
}

/// How a request ends before reaching the app.
pub(crate) enum Early {
    /// Answer with this listener-generated response. `keep`: an HTTP/1.1 connection may go
    /// on to its next request (a well-formed request that matched nothing, with no body to
    /// skip).
    Answer {
        status: StatusCode,
        body: String,
        keep: bool,
    },
    /// Refuse it unprocessed (a full queue under Basic verbosity): a reset HTTP/1.1
    /// connection, REFUSED_STREAM, H3_REQUEST_REJECTED.
    Refuse,
}

/// A request handed to the app.
pub(crate) struct Called {
    /// Its answer under way.
    pub(crate) call: crate::stream::Call,
    /// The request body's channel, for the protocol's pump.
    pub(crate) body_tx: Option<BodyTx>,
    /// The queue's handle, which an HTTP/1.1 connection keeps for its next request there.
    pub(crate) handle: (Arc<Queue>, Box<dyn AppHandle>),
}

/// How the request step ended when it did not admit the request at once.
pub(crate) enum NotYet {
    /// The listener answers instead (logged).
    Early(Early),
    /// No receiver was free: the request waits in its queue ([`Queued::wait`]).
    Queued(Box<Queued>),
}

/// A routed request waiting in its queue for a receiver.
pub(crate) struct Queued {
    req: Incoming,
    to: Delivery,
}

impl Queued {
    /// Waits for a receiver under the request-queue timer, then ends the request step as
    /// [`admit`] does when one is free at once.
    pub(crate) async fn wait(
        mut self: Box<Self>,
        inner: &Inner,
        info: &ConnectionInfo,
        ex: &mut Exchange,
    ) -> Result<Called, Early> {
        let timer = inner.options.timeouts.request_queue;
        let handle = &mut self.to.handle;
        let waited = timeout_at(Instant::now() + timer, poll_fn(|cx| handle.poll_ready(cx))).await;
        let Queued { req, mut to } = *self;
        let Ok(ready) = waited else {
            let refusal = to.active.queue.admission.expired(timer.as_secs());
            return Err(not_admitted(
                inner,
                info,
                ex,
                &req,
                NotAdmitted::Queue(refusal),
            ));
        };
        to.timing.stamp(TimingKind::REQUEST_DELIVERED_FOR_IO);
        deliver(inner, info, ex, req, to, ready)
    }
}

/// The task's waker, for the request step's first look at its queue ([`admit`]).
pub(crate) async fn task_waker() -> Waker {
    poll_fn(|cx| Poll::Ready(cx.waker().clone())).await
}

/// The request step: canonicalise the target, route by scheme, host, address and path,
/// admit to the queue (limit, 503 verbosity, the request-queue timer), and build the request
/// the app sees, with its [`RequestContext`]. `table`: the routes in force (an HTTP/1.1
/// connection keeps a snapshot while they do not change); `cached`: the handle a connection
/// kept from its last request, reused when the queue is the same; `cx`: the exchange's task,
/// woken when a receiver frees up if none is free now.
///
/// Synchronous: most requests find a receiver free, and a step with no future of its own
/// costs each of them less. When none is free the request is [`NotYet::Queued`], and its
/// caller awaits [`Queued::wait`].
///
/// # Errors
/// [`NotYet`]: the listener's own answer (logged: the error log, the exchange record), or
/// the wait for a receiver.
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
pub(crate) fn admit(
    cx: &mut Context<'_>,
    inner: &Inner,
    info: &ConnectionInfo,
    scheme: Scheme,
    table: &RouteTable,
    req: Incoming,
    mut timing: ReqStamps,
    ex: &mut Exchange,
    cached: Option<(Arc<Queue>, Box<dyn AppHandle>)>,
) -> Result<Called, NotYet> {
    let protocol = protocol_name(req.version);
    ex.request(&req.method, &req.raw_target, &req.headers, req.head_len);
    if let HostFrom::Authority(Some(a)) = &req.host {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            ex.host(&v);
        }
    }
    let refuse = |ex: &mut Exchange, req: &Incoming, rej: &Rejection, keep: bool| {
        log_refusal(
            inner,
            info,
            ex,
            rej,
            Some(&req.method),
            &req.raw_target,
            protocol,
        );
        let (status, body) = refusal_answer(rej);
        NotYet::Early(Early::Answer { status, body, keep })
    };
    if req.method == Method::CONNECT {
        let rej = Rejection::new(Reason::Verb, "CONNECT is not served");
        return Err(refuse(ex, &req, &rej, false));
    }
    let target = match canonical::canonicalize(&req.raw_target, &inner.options.url) {
        Ok(t) => t,
        Err(rej) => return Err(refuse(ex, &req, &rej, false)),
    };
    // Host (an absolute-form target's authority, or :authority), TLS binding, route.
    let source = match &req.host {
        HostFrom::Target => HostSource::Target(target.authority.as_deref()),
        HostFrom::Authority(a) => {
            HostSource::Authority(a.as_ref().map(http::uri::Authority::as_str))
        }
    };
    let routed = route(
        inner,
        table,
        info,
        scheme,
        Asked {
            path: &target.path,
            headers: &req.headers,
            host: source,
        },
        &mut timing,
    );
    let Routed {
        prefix,
        queue,
        host_header,
    } = match routed {
        Ok(r) => r,
        Err(u) => {
            let keep = u.well_formed && !req.has_body;
            return Err(refuse(ex, &req, &u.rejection, keep));
        }
    };
    ex.routed(&queue);
    if matches!(req.host, HostFrom::Target) {
        if let Some(h) = &host_header {
            ex.host(h);
        }
    }
    // The URI the app sees: the canonical path (the bytes as sent when they already were).
    let uri = match build_uri(&req.raw_target, &target) {
        Ok(u) => u,
        Err(rej) => return Err(refuse(ex, &req, &rej, false)),
    };
    drop(target);

    // Queue admission: the queue's limit, then a receiver, waited for under the
    // request-queue timer when none is free. Queued since routing ended (stamped there).
    let mut handle = match cached {
        Some((q, h)) if Arc::ptr_eq(&q, &queue) => h,
        _ => queue.app.handle(),
    };
    let (active, depth) = Active::enqueue(queue);
    if let Err(refusal) = active.queue.admission.admit(depth) {
        let why = NotAdmitted::Queue(refusal);
        return Err(NotYet::Early(not_admitted(inner, info, ex, &req, why)));
    }
    let ready = handle.poll_ready(cx);
    let mut to = Delivery {
        timing,
        uri,
        prefix,
        host_header,
        handle,
        active,
    };
    let Poll::Ready(ready) = ready else {
        ex.waited();
        return Err(NotYet::Queued(Box::new(Queued { req, to })));
    };
    // A receiver was free at once: delivered when queued (no second clock read).
    let queued = to.timing.get(TimingKind::REQUEST_QUEUED_FOR_IO);
    to.timing.stamp_at(
        TimingKind::REQUEST_DELIVERED_FOR_IO,
        queued.unwrap_or_else(crate::timing::monotonic_nanos),
    );
    deliver(inner, info, ex, req, to, ready).map_err(NotYet::Early)
}

/// Logs a request its queue did not take, and how to answer it.
fn not_admitted(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    req: &Incoming,
    why: NotAdmitted,
) -> Early {
    let protocol = protocol_name(req.version);
    let (method, target) = (Some(&req.method), &req.raw_target);
    match why {
        NotAdmitted::Queue(refusal) => {
            log_refusal(
                inner,
                info,
                ex,
                refusal.rejection(),
                method,
                target,
                protocol,
            );
            match unavailable_answer(&refusal) {
                None => Early::Refuse,
                Some((status, body)) => Early::Answer {
                    status,
                    body,
                    keep: false,
                },
            }
        }
        NotAdmitted::Unavailable(rej) => {
            log_refusal(inner, info, ex, &rej, method, target, protocol);
            let (status, body) = refusal_answer(&rej);
            Early::Answer {
                status,
                body,
                keep: false,
            }
        }
    }
}

/// Where a request a receiver took goes, and what it carries there.
struct Delivery {
    timing: ReqStamps,
    uri: Uri,
    prefix: MatchedPrefix,
    host_header: Option<HeaderValue>,
    handle: Box<dyn AppHandle>,
    active: Active,
}

/// A receiver took the request (`ready`, or the app failed while becoming ready: 503):
/// build the request the app sees, with Host as HTTP.sys presents it, and hand it over.
/// The request goes to the app here, where it is built, so that none of its parts is moved
/// again on the way (each move of its ~600 bytes costs a `memcpy`).
#[inline(always)]
fn deliver(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    req: Incoming,
    to: Delivery,
    ready: Result<(), crate::BoxError>,
) -> Result<Called, Early> {
    if let Err(e) = ready {
        tracing::error!(error = %e, "the application failed while becoming ready; answering 503");
        let rej = Rejection::new(Reason::AppShutdown, "the application is not available");
        return Err(not_admitted(
            inner,
            info,
            ex,
            &req,
            NotAdmitted::Unavailable(rej),
        ));
    }
    let Delivery {
        timing,
        uri,
        prefix,
        host_header,
        mut handle,
        mut active,
    } = to;
    active.deliver();
    let Incoming {
        method,
        raw_target,
        version,
        mut headers,
        has_body,
        declared,
        ..
    } = req;
    let (body_tx, body) = if has_body {
        let (tx, rx) = RequestBody::channel(declared, inner.options.max_request_body_size);
        (Some(tx), rx)
    } else {
        (None, RequestBody::empty())
    };
    if let Some(tx) = &body_tx {
        ex.body(tx);
    }
    let id = inner.next_request_id();
    ex.id(id);
    if let Some(host) = host_header {
        headers.insert(header::HOST, host);
    }
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let context = RequestContext::with_stamps(
        prefix,
        info.clone(),
        RequestId(id),
        body_tx.as_ref().map(MaxRequestBodySize::new),
        raw_target.clone(),
        timing,
    );
    // A stream the app may reset (HTTP/1.1 has none).
    let reset = matches!(version, Version::HTTP_2 | Version::HTTP_3).then(ResetStream::new);
    let queue = active.queue.clone();
    let call = crate::stream::Call {
        fut: CatchUnwind(handle.call(AppRequest {
            request,
            context,
            reset: reset.clone(),
        })),
        reset,
        probe: body_tx.clone(),
        method,
        target: raw_target,
        _active: active,
    };
    Ok(Called {
        call,
        body_tx,
        handle: (queue, handle),
    })
}

/// The request step for a protocol that runs each request as a task of its own (HTTP/2,
/// HTTP/3): [`admit`] with the task's waker, then the wait for a receiver if it began one.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn admit_stream(
    inner: &Inner,
    info: &ConnectionInfo,
    scheme: Scheme,
    table: &RouteTable,
    req: Incoming,
    timing: ReqStamps,
    ex: &mut Exchange,
) -> Result<Called, Early> {
    let waker = task_waker().await;
    let admitted = admit(
        &mut Context::from_waker(&waker),
        inner,
        info,
        scheme,
        table,
        req,
        timing,
        ex,
        None,
    );
    match admitted {
        Ok(a) => Ok(a),
        Err(NotYet::Early(e)) => Err(e),
        Err(NotYet::Queued(q)) => Box::pin(q.wait(inner, info, ex)).await,
    }
}

/// The protocol's name in the error log.
pub(crate) fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Logs and builds HTTP.sys's 413 for a request body over `max_request_body_size`.
pub(crate) fn too_large_answer(
    inner: &Inner,
    info: &ConnectionInfo,
    ex: &mut Exchange,
    limit: u64,
    method: &Method,
    target: &[u8],
    protocol: &'static str,
) -> (StatusCode, String) {
    let rej = Rejection::new(
        Reason::EntityTooLarge,
        format!("the request body is larger than {limit} bytes (max_request_body_size)"),
    );
    log_refusal(inner, info, ex, &rej, Some(method), target, protocol);
    refusal_answer(&rej)
}

/// The URI the app sees: the canonical path (percent-encoded where needed) and the raw query.
fn build_uri(raw: &Bytes, target: &CanonicalTarget) -> Result<Uri, Rejection> {
    let raw_path_end = raw.iter().position(|&b| b == b'?').unwrap_or(raw.len());
    let raw_path = &raw[..raw_path_end];
    let uri = if raw_path == target.path.as_bytes() {
        // Already canonical (the common case): reuse the bytes as sent.
        Uri::from_maybe_shared(raw.clone())
    } else {
        let mut s = String::with_capacity(target.path.len() + 16);
        for &b in target.path.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
                s.push(b as char);
            } else {
                s.push('%');
                s.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                s.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
        if let Some(q) = &target.query {
            s.push('?');
            s.push_str(q);
        }
        Uri::try_from(s)
    };
    uri.map_err(|_| Rejection::new(Reason::Url, "the request target is not a valid URI"))
}

/// Turns a panic in the app's future into an error, so the client gets a 500 and the
/// connection's bookkeeping stays right.
pub(crate) struct CatchUnwind(pub(crate) crate::app::AppFuture);

impl std::future::Future for CatchUnwind {
    type Output = Result<http::Response<crate::body::ResponseBody>, crate::body::BoxError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                Poll::Ready(Err(format!("the application panicked: {what}").into()))
            }
        }
    }
}
