//! Listening sockets, derived from the registered prefixes as HTTP.sys does: `+`, `*` and
//! host names listen on every address, `localhost` on 127.0.0.1 and ::1, an IP literal on that
//! IP. Sockets open when a prefix needs them and close when none does.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use httpq_core::reason::Reason;
use httpq_core::router::Router;
use httpq_core::{Host, UrlPrefix};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::conn::Connection;
use crate::{EngineError, Inner, Registration};

struct Entry {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

#[derive(Default)]
pub(crate) struct Listeners {
    open: HashMap<SocketAddr, Entry>,
    /// QUIC (HTTP/3) endpoints on the UDP side of https ports.
    quic: HashMap<SocketAddr, (quinn::Endpoint, JoinHandle<()>)>,
    /// The last pass over every prefix failed somewhere (a socket or QUIC endpoint that
    /// could not be bound or reopened): what is open may differ from what the prefixes need,
    /// so the next registration takes the full pass again instead of [`Self::already_serve`].
    /// Cleared when a pass starts; set by `reconcile` and `sync_quic` when a bind fails.
    dirty: bool,
}

/// Where a prefix's host says to listen, for `port` (without allocating: the routes' socket
/// set is worked out from every prefix on each change).
fn wanted_addrs<'a>(
    host: &Host,
    port: u16,
    iplisten: &'a [IpAddr],
) -> impl Iterator<Item = SocketAddr> + 'a {
    let (fixed, listed): ([Option<IpAddr>; 2], &'a [IpAddr]) = match host {
        Host::Ip(ip) => ([Some(*ip), None], &[]),
        Host::Name(n) if n == "localhost" => (
            [
                Some(Ipv4Addr::LOCALHOST.into()),
                Some(Ipv6Addr::LOCALHOST.into()),
            ],
            &[],
        ),
        // `+`, `*` and host names: every address, or the iplisten list when one is set.
        _ if !iplisten.is_empty() => ([None, None], iplisten),
        _ => (
            [
                Some(Ipv4Addr::UNSPECIFIED.into()),
                Some(Ipv6Addr::UNSPECIFIED.into()),
            ],
            &[],
        ),
    };
    fixed
        .into_iter()
        .flatten()
        .chain(listed.iter().copied())
        .map(move |ip| SocketAddr::new(ip, port))
}

/// The set of sockets a router needs. An unspecified address covers the specific ones of its
/// family on that port (binding both would conflict).
fn desired(
    router: &Router<Registration>,
    extra: Option<&UrlPrefix>,
    iplisten: &[IpAddr],
) -> BTreeSet<SocketAddr> {
    desired_for(router.prefixes().chain(extra), iplisten)
}

fn desired_for<'a>(
    prefixes: impl Iterator<Item = &'a UrlPrefix>,
    iplisten: &[IpAddr],
) -> BTreeSet<SocketAddr> {
    let mut all: BTreeSet<SocketAddr> = prefixes
        .flat_map(|p| wanted_addrs(p.host(), p.port(), iplisten))
        .collect();
    let wild: Vec<SocketAddr> = all
        .iter()
        .filter(|a| a.ip().is_unspecified())
        .copied()
        .collect();
    all.retain(|a| {
        a.ip().is_unspecified()
            || !wild
                .iter()
                .any(|w| w.port() == a.port() && w.is_ipv4() == a.is_ipv4())
    });
    all
}

/// Whether `addr` is served when `open` says which sockets are: its own, or the wildcard of
/// its family and port.
fn served(addr: &SocketAddr, open: impl Fn(&SocketAddr) -> bool) -> bool {
    let wildcard: IpAddr = if addr.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    open(addr) || open(&SocketAddr::new(wildcard, addr.port()))
}

fn conflicts(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// IPv6 may be missing (containers): a v6 socket that cannot exist is skipped, not an error,
/// as long as its IPv4 twin binds.
fn v6_unavailable(addr: &SocketAddr, e: &io::Error) -> bool {
    addr.is_ipv6()
        && matches!(
            e.raw_os_error(),
            Some(libc_eafnosupport) if libc_eafnosupport == 97 || libc_eafnosupport == 99
        )
}

fn hint(e: &io::Error, addr: &SocketAddr) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "; another process already listens on this port: stop it, or pick another port (port 0 picks a free one)"
        }
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            "; ports below 1024 need root or CAP_NET_BIND_SERVICE: use a port above 1024, or run the httpqd listener"
        }
        io::ErrorKind::AddrNotAvailable => {
            "; this machine has no such address: check the IP in the prefix"
        }
        _ => "",
    }
}

impl Listeners {
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        let mut v: Vec<_> = self.open.keys().copied().collect();
        v.sort();
        v
    }

    /// Opens the sockets `prefix` needs (resolving port 0), and returns the prefix as bound.
    pub(crate) async fn open_for(
        &mut self,
        inner: &Arc<Inner>,
        router: &Router<Registration>,
        prefix: &UrlPrefix,
    ) -> Result<UrlPrefix, EngineError> {
        if prefix.port() != 0 {
            // The common case of a port that already serves: nothing to open or close, and no
            // walk over every registered prefix (which made 1,000 registrations cost 1,000²).
            if !self.dirty && self.already_serve(inner, prefix) {
                return Ok(prefix.clone());
            }
            self.dirty = false;
            self.reconcile(
                inner,
                &desired(router, Some(prefix), &inner.options.iplisten),
                prefix,
            )
            .await?;
            self.sync_quic(inner, router.prefixes().chain(Some(prefix)));
            return Ok(prefix.clone());
        }
        // Port 0: let the kernel pick for the first address, then take the same port for the
        // others; retry a few times if the others collide.
        let mut last = None;
        for _ in 0..16 {
            // Never empty: every host wants at least one address (an empty iplisten list
            // means all of them).
            let first = wanted_addrs(prefix.host(), 0, &inner.options.iplisten)
                .next()
                .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            let probe = match bind(first) {
                Ok(l) => l,
                Err(e) => {
                    return Err(EngineError::Bind {
                        addr: first,
                        prefix: prefix.to_string(),
                        hint: hint(&e, &first),
                        source: e,
                    });
                }
            };
            let port = probe.local_addr().map(|a| a.port()).unwrap_or(0);
            drop(probe);
            let bound = prefix.with_port(port);
            self.dirty = false;
            match self
                .reconcile(
                    inner,
                    &desired(router, Some(&bound), &inner.options.iplisten),
                    &bound,
                )
                .await
            {
                Ok(()) => {
                    self.sync_quic(inner, router.prefixes().chain(Some(&bound)));
                    return Ok(bound);
                }
                Err(e @ EngineError::Bind { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EngineError::ShuttingDown))
    }

    /// Whether the open sockets (and QUIC endpoints, for https) already serve every address
    /// `prefix` wants: then the sockets every prefix needs, with it, are those open now
    /// (they equal what the registered prefixes need after each pass that did not fail; see
    /// `dirty`), and adding it changes none. An address counts as served when its socket is
    /// open or a wildcard of its family and port is. One the machine cannot bind (IPv6
    /// missing) does not: such a registration takes the full path, as before.
    fn already_serve(&self, inner: &Inner, prefix: &UrlPrefix) -> bool {
        let wanted = || wanted_addrs(prefix.host(), prefix.port(), &inner.options.iplisten);
        wanted().all(|a| served(&a, |s| self.open.contains_key(s)))
            && (prefix.scheme() != httpq_core::Scheme::Https
                || wanted().all(|a| served(&a, |s| self.quic.contains_key(s))))
    }

    /// Makes the open sockets equal `want`. On a bind failure everything is put back as it
    /// was (sockets opened by this call closed, sockets it closed reopened) and the error
    /// returned.
    async fn reconcile(
        &mut self,
        inner: &Arc<Inner>,
        want: &BTreeSet<SocketAddr>,
        prefix: &UrlPrefix,
    ) -> Result<(), EngineError> {
        let stale: Vec<SocketAddr> = self
            .open
            .keys()
            .filter(|a| !want.contains(a))
            .copied()
            .collect();
        let to_open: Vec<SocketAddr> = want
            .iter()
            .filter(|a| !self.open.contains_key(a))
            .copied()
            .collect();
        let mut opened = Vec::new();
        let mut closed = Vec::new();
        for addr in &to_open {
            // A wildcard and a specific socket of the same family and port cannot both be
            // bound: close the stale one first (a wildcard replacing specific sockets when a
            // `+` prefix arrives, or the reverse when it goes).
            for s in stale.iter().filter(|s| conflicts(s, addr)) {
                if self.open.contains_key(s) {
                    self.close(*s).await;
                    closed.push(*s);
                }
            }
            match bind(*addr) {
                Ok(l) => {
                    self.start(inner, *addr, l);
                    opened.push(*addr);
                }
                Err(e) if v6_unavailable(addr, &e) => {
                    tracing::debug!(%addr, error = %e, "IPv6 is not available here; listening on IPv4 only");
                }
                Err(e) => {
                    // Put back as it was, but perhaps not all of it: the next registration
                    // does a full pass.
                    self.dirty = true;
                    for a in opened {
                        self.close(a).await;
                    }
                    for a in closed {
                        match bind(a) {
                            Ok(l) => self.start(inner, a, l),
                            Err(e) => {
                                tracing::error!(addr = %a, error = %e, "could not reopen a listening socket after a failed change")
                            }
                        }
                    }
                    return Err(EngineError::Bind {
                        addr: *addr,
                        prefix: prefix.to_string(),
                        hint: hint(&e, addr),
                        source: e,
                    });
                }
            }
        }
        for s in stale {
            if self.open.contains_key(&s) {
                self.close(s).await;
            }
        }
        Ok(())
    }

    /// Makes the open sockets match `router` after a prefix went away: closes what no prefix
    /// needs and reopens specific sockets a removed wildcard used to cover. A socket that
    /// cannot be reopened is logged; the prefixes stay registered.
    pub(crate) async fn sync(&mut self, inner: &Arc<Inner>, router: &Router<Registration>) {
        let want = desired(router, None, &inner.options.iplisten);
        self.dirty = false;
        self.sync_quic(inner, router.prefixes());
        let Some(any) = router.prefixes().next().cloned() else {
            self.close_all().await;
            return;
        };
        if let Err(e) = self.reconcile(inner, &want, &any).await {
            // What is open now is what was open before (a wildcard no prefix needs, say):
            // the next registration repairs it with a full pass.
            tracing::error!(error = %e, "could not reopen a listening socket after removing a prefix");
        }
    }

    pub(crate) async fn close_all(&mut self) {
        let all: Vec<SocketAddr> = self.open.keys().copied().collect();
        for a in all {
            self.close(a).await;
        }
        for (addr, (endpoint, task)) in self.quic.drain() {
            endpoint.close(0u32.into(), b"shutting down");
            task.abort();
            tracing::info!(%addr, "stopped listening for HTTP/3");
        }
    }

    /// Opens and closes QUIC endpoints so that every https prefix also has HTTP/3 on its
    /// port's UDP side. A UDP port that cannot be bound is logged: HTTP/1.1 and HTTP/2 still
    /// serve the prefix.
    fn sync_quic<'a>(&mut self, inner: &Arc<Inner>, prefixes: impl Iterator<Item = &'a UrlPrefix>) {
        let want = desired_for(
            prefixes.filter(|p| p.scheme() == httpq_core::Scheme::Https && p.port() != 0),
            &inner.options.iplisten,
        );
        let stale: Vec<SocketAddr> = self
            .quic
            .keys()
            .filter(|a| !want.contains(a))
            .copied()
            .collect();
        for addr in stale {
            if let Some((endpoint, task)) = self.quic.remove(&addr) {
                endpoint.close(0u32.into(), b"prefix removed");
                task.abort();
                tracing::info!(%addr, "stopped listening for HTTP/3");
            }
        }
        for addr in want {
            if self.quic.contains_key(&addr) {
                continue;
            }
            match crate::h3conn::endpoint(inner, addr) {
                Ok(endpoint) => {
                    tracing::info!(%addr, "listening for HTTP/3 (QUIC)");
                    let task = tokio::spawn(crate::h3conn::serve_endpoint(
                        inner.clone(),
                        endpoint.clone(),
                        addr,
                    ));
                    self.quic.insert(addr, (endpoint, task));
                }
                Err(e) if v6_unavailable(&addr, &e) => {}
                Err(e) => {
                    self.dirty = true;
                    tracing::warn!(%addr, error = %e, "cannot listen for HTTP/3 on this UDP port; HTTP/1.1 and HTTP/2 still serve it");
                }
            }
        }
    }

    async fn close(&mut self, addr: SocketAddr) {
        if let Some(e) = self.open.remove(&addr) {
            let _ = e.stop.send(());
            let _ = e.task.await;
            tracing::info!(%addr, "stopped listening");
        }
    }

    fn start(&mut self, inner: &Arc<Inner>, addr: SocketAddr, listener: TcpListener) {
        let (stop, mut stopped) = oneshot::channel();
        let inner = inner.clone();
        tracing::info!(%addr, "listening");
        let task = tokio::spawn(async move {
            let mut errors = crate::accept_errors::AcceptErrors::new(addr.to_string());
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    r = listener.accept() => match r {
                        Ok((stream, remote)) => accept(&inner, stream, addr, remote),
                        // EMFILE and friends: back off instead of spinning, log sparingly.
                        Err(e) => errors.failed(&e).await,
                    },
                }
            }
        });
        self.open.insert(addr, Entry { stop, task });
    }
}

fn accept(inner: &Arc<Inner>, stream: TcpStream, listen_addr: SocketAddr, remote: SocketAddr) {
    let local = stream.local_addr().unwrap_or(listen_addr);
    let _ = stream.set_nodelay(true);
    if let Some(m) = &inner.observers.metrics {
        m.accepted("tcp");
    }
    let count = inner.conns.fetch_add(1, Ordering::AcqRel) + 1;
    if inner
        .options
        .max_connections
        .is_some_and(|max| count as u64 > max)
    {
        let gone = inner.conns.fetch_sub(1, Ordering::AcqRel) == 1;
        if gone {
            inner.conns_idle.notify_waiters();
        }
        if let Some(log) = &inner.httperr {
            log.log(&crate::httperr::Entry {
                client: Some(remote),
                server: Some(local),
                status: Some(503),
                reason: Reason::ConnLimit.phrase(),
                ..crate::httperr::Entry::default()
            });
        }
        tracing::info!(
            target: "httpq::httperr",
            reason = Reason::ConnLimit.phrase(),
            client = %remote,
            server = %local,
            "connection refused: max_connections reached"
        );
        tokio::spawn(async move {
            let mut stream = stream;
            let body = "503 Service Unavailable (ConnLimit): the server's connection limit (max_connections) is reached\n";
            let resp = crate::date::with_date(|d| httpq_core::h1::listener_response(503, body, d));
            let _ = stream.write_all(&resp).await;
            let _ = stream.shutdown().await;
        });
        return;
    }
    let id = inner.next_conn_id();
    let conn = Connection::new(inner.clone(), local, remote, id, inner.shutdown.subscribe());
    // The guard does the bookkeeping when the task ends, however it ends (normally, aborted
    // at the shutdown deadline, or unwinding from a panic in app code).
    let guard = ConnGuard {
        inner: inner.clone(),
        id,
    };
    let mut tasks = inner
        .conn_tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tls = inner.routes_snapshot().https_ports.contains(&local.port());
    // The task is the connection's own future, holding the guard: a block around it would
    // keep a second copy of the connection in every task.
    let handle = if tls {
        tokio::spawn(crate::tls::serve(guard, inner.clone(), conn, stream))
    } else {
        tokio::spawn(conn.run(stream, guard))
    };
    tasks.insert(id, handle.abort_handle());
}

/// Counts a connection as open while it lives, and lets shutdown abort its task.
pub(crate) struct ConnGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.inner
            .conn_tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
        if self.inner.conns.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.conns_idle.notify_waiters();
        }
    }
}
