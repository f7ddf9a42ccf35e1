//! The TLS handshake on https ports: read the ClientHello, choose the binding's rustls
//! configuration from its server name and the local address, finish the handshake, then serve
//! HTTP/2 or HTTP/1.1 as ALPN agreed.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::Inner;
use crate::app::TlsInfo;
use crate::conn::Connection;
use crate::timing::TimingKind;
use httpq_core::Scheme;

/// Serves one connection to an https port.
///
/// `_guard` comes first so that it is dropped last, after the connection: the engine counts
/// the connection closed only once it is.
pub(crate) async fn serve(
    _guard: crate::listen::ConnGuard,
    inner: Arc<Inner>,
    mut conn: Connection,
    stream: TcpStream,
) {
    let local = conn.info.local_addr;
    let remote = conn.info.remote_addr;
    // The whole handshake runs under the header-wait timer: a client that opens a
    // connection and says nothing costs as little over TLS as over plain text.
    let wait = inner.options.timeouts.header_wait;
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match timeout(wait, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            tracing::debug!(client = %remote, error = %e, "not a TLS ClientHello; connection closed");
            return;
        }
        Err(_) => {
            tracing::info!(target: "httpq::httperr", reason = "Timer_HeaderWait", client = %remote, server = %local, "no TLS ClientHello in time; connection closed");
            return;
        }
    };
    // The ClientHello is the connection's first data; choosing the binding is HTTP.sys's
    // certificate load, the rest of the handshake its first leg.
    Arc::make_mut(&mut conn.info.timing).stamp(TimingKind::DATA_START);
    Arc::make_mut(&mut conn.info.timing).stamp(TimingKind::TLS_CERTIFICATE_LOAD_START);
    let sni = start.client_hello().server_name().map(str::to_owned);
    let selected = match inner.tls.select(sni.as_deref(), local) {
        Ok(s) => s,
        Err(refused) => {
            tracing::warn!(target: "httpq::httperr", reason = "SslHandshake", client = %remote, server = %local, sni = ?sni, "TLS handshake refused: {refused}");
            handshake_metric(&inner, false);
            return;
        }
    };
    Arc::make_mut(&mut conn.info.timing).stamp(TimingKind::TLS_CERTIFICATE_LOAD_END);
    Arc::make_mut(&mut conn.info.timing).stamp(TimingKind::TLS_HANDSHAKE_LEG1_START);
    let tls = match timeout(wait, start.into_stream(selected.config)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(target: "httpq::httperr", reason = "SslHandshake", client = %remote, server = %local, sni = ?sni, error = %e, "TLS handshake failed");
            handshake_metric(&inner, false);
            return;
        }
        Err(_) => {
            tracing::info!(target: "httpq::httperr", reason = "Timer_HeaderWait", client = %remote, server = %local, "TLS handshake did not finish in time");
            handshake_metric(&inner, false);
            return;
        }
    };
    handshake_metric(&inner, true);
    Arc::make_mut(&mut conn.info.timing).stamp(TimingKind::TLS_HANDSHAKE_LEG1_END);
    let session = tls.get_ref().1;
    let info = TlsInfo {
        protocol: session.protocol_version().map_or(0, u16::from),
        cipher: session
            .negotiated_cipher_suite()
            .map_or(0, |c| u16::from(c.suite())),
        sni,
        alpn: session.alpn_protocol().map(<[u8]>::to_vec),
        client_certificates: session
            .peer_certificates()
            .map(|certs| {
                certs
                    .iter()
                    .map(|c| bytes::Bytes::copy_from_slice(c.as_ref()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let h2 = info.alpn.as_deref() == Some(b"h2");
    conn.info = conn.info.clone().with_tls(info);
    conn.scheme = Scheme::Https;
    if h2 {
        Box::pin(crate::h2conn::serve(conn.into_accepted(), tls)).await;
    } else {
        Box::pin(conn.run_tls(tls)).await;
    }
}

/// The 421 answer for a request whose host resolves to another TLS binding than the one the
/// connection's handshake chose, when either has a client-certificate policy
/// ([`httpq_tls::TlsBindings::misdirected`]); `None` on plain-text connections and when the
/// request may go on. Every protocol calls this once the host is known.
pub(crate) fn misdirected(
    inner: &Inner,
    info: &crate::app::ConnectionInfo,
    host: &str,
) -> Option<httpq_core::reason::Rejection> {
    let tls = info.tls()?;
    if !inner
        .tls
        .misdirected(tls.sni.as_deref(), host, info.local_addr)
    {
        return None;
    }
    Some(httpq_core::reason::Rejection::new(
        httpq_core::reason::Reason::Misdirected,
        format!(
            "host {host:?} has another TLS binding than the server name this connection was opened for ({}); connect again with server name {host:?}",
            tls.sni.as_deref().unwrap_or("none")
        ),
    ))
}

/// Counts a TLS handshake's result in the metrics, when they are on.
fn handshake_metric(inner: &Inner, ok: bool) {
    if let Some(m) = &inner.observers.metrics {
        m.handshake(ok);
    }
}
