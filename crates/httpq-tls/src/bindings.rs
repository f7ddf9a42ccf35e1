//! The binding table and the per-handshake choice of a rustls configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureScheme};

use crate::store::{CertStore, Thumbprint, parse_pem_pair};
use crate::{BindingFlags, BindingKey, SslBinding, TlsError};

/// The configuration chosen for one handshake.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The rustls configuration (certificate, versions, ALPN, client-auth policy).
    pub config: Arc<ServerConfig>,
    /// The binding's switches (the engine reads `disable_quic`).
    pub flags: BindingFlags,
    /// Which binding matched.
    pub key: BindingKey,
}

/// No binding covers a handshake: the reason the listener logs before refusing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no SSL certificate binding for {}{local}: add one with httpq add sslcert hostnameport=NAME:{} or ipport=0.0.0.0:{}",
    .sni.as_ref().map(|s| format!("server name {s:?} on ")).unwrap_or_else(|| "a client without SNI on ".to_owned()),
    .local.port(),
    .local.port()
)]
pub struct NoBinding {
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// The local address it connected to.
    pub local: SocketAddr,
}

#[derive(Debug)]
struct Entry {
    config: Arc<ServerConfig>,
    cert: Arc<CertifiedKey>,
    flags: BindingFlags,
    key: BindingKey,
}

#[derive(Debug)]
struct Ccs {
    dir: PathBuf,
    flags: BindingFlags,
    key: BindingKey,
    /// The client-certificate verifier of a binding with `clientcafile=`.
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Configurations built from `<host>.pem` files, with the file's mtime.
    cache: Mutex<HashMap<String, CcsFile>>,
}

/// A resolved binding: its configuration, certificate, switches and key.
type Resolved = (
    Arc<ServerConfig>,
    Arc<CertifiedKey>,
    BindingFlags,
    BindingKey,
);

/// A `<host>.pem` as loaded: its mtime, configuration and certificate.
type CcsFile = (SystemTime, Arc<ServerConfig>, Arc<CertifiedKey>);

#[derive(Debug, Default)]
struct Table {
    hosts: HashMap<(String, u16), Entry>,
    addrs: HashMap<SocketAddr, Entry>,
    ccs: HashMap<u16, Ccs>,
}

/// Shared by every configuration: one session cache and one ticketer, so a resumption works
/// whichever binding issued the session.
#[derive(Debug)]
struct Shared {
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Option<Arc<dyn ProducesTickets>>,
}

/// The SSL certificate bindings in force, consulted on every handshake.
///
/// ```
/// use httpq_tls::{BindingFlags, BindingKey, TlsBindings, dev_cert, parse_pem_pair};
/// let cert = dev_cert()?;
/// let (_, key) = parse_pem_pair(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())?;
/// let bindings = TlsBindings::new();
/// bindings.insert(
///     BindingKey::IpPort { addr: "0.0.0.0:8443".parse()? },
///     key,
///     BindingFlags::default(),
/// )?;
/// let chosen = bindings.select(Some("localhost"), "127.0.0.1:8443".parse()?)?;
/// assert_eq!(chosen.config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// assert!(bindings.select(None, "127.0.0.1:9443".parse()?).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TlsBindings {
    table: RwLock<Arc<Table>>,
    shared: Shared,
}

impl Default for TlsBindings {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsBindings {
    /// No bindings: every handshake is refused until some are added.
    #[must_use]
    pub fn new() -> TlsBindings {
        // rustls's suites, in the server's order: AES-128-GCM with SHA-256 first. Its key
        // schedule hashes with SHA-256, which CPUs accelerate (SHA-NI); the SHA-384 suites cost
        // a full-handshake rate about 10% lower here (bench/results, ring's SHA-512 has no
        // hardware path). Every suite offered is an AEAD with forward secrecy.
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.sort_by_key(|s| match s.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 1,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 2,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => 4,
            _ => 5,
        });
        let provider = Arc::new(provider);
        let ticketer = match rustls::crypto::ring::Ticketer::new() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "TLS session tickets unavailable; resumption uses the session cache only");
                None
            }
        };
        TlsBindings {
            table: RwLock::new(Arc::new(Table::default())),
            shared: Shared {
                provider,
                sessions: rustls::server::ServerSessionMemoryCache::new(16_384),
                ticketer,
            },
        }
    }

    fn current(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Builds the table for `bindings` from `store` (certificates) and `ccs_dir` (the
    /// central certificate store) and puts it in force. A binding whose certificate cannot be
    /// loaded is left out and reported; the others apply.
    pub fn replace(
        &self,
        bindings: &[SslBinding],
        store: &CertStore,
        ccs_dir: &Path,
    ) -> Vec<(BindingKey, TlsError)> {
        let mut table = Table::default();
        let mut problems = Vec::new();
        for b in bindings {
            // A binding that verifies client certificates asks for them too.
            let mut b = b.clone();
            if b.client_ca_pem.is_some() {
                b.flags.client_cert_negotiation = true;
            }
            let b = &b;
            let client_ca = match b
                .client_ca_pem
                .as_deref()
                .map(|pem| self.client_verifier(pem.as_bytes(), b.flags, &b.key))
                .transpose()
            {
                Ok(v) => v,
                Err(e) => {
                    problems.push((b.key.clone(), e));
                    continue;
                }
            };
            if let BindingKey::Ccs { port } = b.key {
                table.ccs.insert(
                    port,
                    Ccs {
                        dir: ccs_dir.to_owned(),
                        flags: b.flags,
                        key: b.key.clone(),
                        client_ca,
                        cache: Mutex::new(HashMap::new()),
                    },
                );
                continue;
            }
            let loaded = b
                .certhash
                .as_deref()
                .ok_or_else(|| TlsError::Certificate(format!("{} has no certhash", b.key)))
                .and_then(|h| Thumbprint::parse(h).map_err(TlsError::Certificate))
                .and_then(|t| store.load(&t))
                .and_then(|ck| {
                    Ok((
                        self.config_with(ck.clone(), b.flags, &b.key, client_ca.clone())?,
                        ck,
                    ))
                });
            match loaded {
                Ok((config, cert)) => table.put(b.key.clone(), config, cert, b.flags),
                Err(e) => problems.push((b.key.clone(), e)),
            }
        }
        *self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
        problems
    }

    /// Adds (or replaces) one binding with a certificate given in code (embedded mode).
    ///
    /// # Errors
    /// The switches leave no TLS version, or the key is unusable; nothing changes then.
    pub fn insert(
        &self,
        key: BindingKey,
        cert: Arc<CertifiedKey>,
        flags: BindingFlags,
    ) -> Result<(), TlsError> {
        let config = self.config(cert.clone(), flags, &key)?;
        let mut guard = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut table = Table {
            hosts: HashMap::new(),
            addrs: HashMap::new(),
            ccs: HashMap::new(),
        };
        for ((h, p), e) in &guard.hosts {
            table.hosts.insert((h.clone(), *p), e.clone_entry());
        }
        for (a, e) in &guard.addrs {
            table.addrs.insert(*a, e.clone_entry());
        }
        for (p, c) in &guard.ccs {
            table.ccs.insert(
                *p,
                Ccs {
                    dir: c.dir.clone(),
                    flags: c.flags,
                    key: c.key.clone(),
                    client_ca: c.client_ca.clone(),
                    cache: Mutex::new(HashMap::new()),
                },
            );
        }
        table.put(key, config, cert, flags);
        *guard = Arc::new(table);
        Ok(())
    }

    /// Whether any binding covers `port`.
    #[must_use]
    pub fn covers_port(&self, port: u16) -> bool {
        let t = self.current();
        t.addrs.keys().any(|a| a.port() == port)
            || t.hosts.keys().any(|(_, p)| *p == port)
            || t.ccs.contains_key(&port)
    }

    /// The configuration for a handshake with server name `sni` to `local`: SNI exact host
    /// (then a `*.` wildcard binding) → ccs → `ipport` for the local IP → `ipport`
    /// `0.0.0.0` / `[::]` → refused.
    ///
    /// # Errors
    /// No binding covers it; the error says which to add.
    pub fn select(&self, sni: Option<&str>, local: SocketAddr) -> Result<Selected, NoBinding> {
        self.resolve(sni, local)
            .map(|(config, _, flags, key)| Selected { config, flags, key })
            .ok_or_else(|| NoBinding {
                sni: sni.map(str::to_owned),
                local: SocketAddr::new(local.ip().to_canonical(), local.port()),
            })
    }

    /// Whether a request for `host` must be refused as misdirected (421) on a connection whose
    /// handshake chose its binding by `sni`: the two names resolve to different bindings and
    /// either of them asks for client certificates. Otherwise a client could handshake with a
    /// name whose binding checks nothing and then ask, in `Host`, for a name whose binding
    /// verifies or requires a client certificate.
    #[must_use]
    pub fn misdirected(&self, sni: Option<&str>, host: &str, local: SocketAddr) -> bool {
        if sni.is_some_and(|s| s.trim_end_matches('.').eq_ignore_ascii_case(host)) {
            return false;
        }
        let conn = self.resolve(sni, local);
        let asked = self.resolve(Some(host), local);
        match (conn, asked) {
            (Some((_, _, cf, ck)), Some((_, _, hf, hk))) => {
                ck != hk && (cf.client_cert_negotiation || hf.client_cert_negotiation)
            }
            // The connection's binding is gone since the handshake: fail closed if the Host's
            // binding has a client-certificate policy.
            (None, Some((_, _, hf, _))) => hf.client_cert_negotiation,
            // No binding for the Host name: routing decides (no certificate policy to skip).
            (_, None) => false,
        }
    }

    /// The one resolution order, for TCP and QUIC: SNI exact host → `*.` wildcard host → ccs
    /// → `ipport` for the local IP → `ipport` `0.0.0.0`/`[::]`. An unspecified local IP (QUIC
    /// when the endpoint cannot tell) matches any `ipport` binding of the port, wildcards first.
    fn resolve(&self, sni: Option<&str>, local: SocketAddr) -> Option<Resolved> {
        let t = self.current();
        let port = local.port();
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let exact = t.hosts.get(&(name.clone(), port));
            let wild = name
                .split_once('.')
                .and_then(|(_, parent)| t.hosts.get(&(format!("*.{parent}"), port)));
            if let Some(e) = exact.or(wild) {
                return Some(e.resolved());
            }
            if let Some(ccs) = t.ccs.get(&port) {
                if let Some((config, cert)) = self.ccs_config(ccs, &name) {
                    return Some((config, cert, ccs.flags, ccs.key.clone()));
                }
            }
        }
        let entry = if local.ip().is_unspecified() {
            let mut by_port: Vec<&Entry> = t
                .addrs
                .iter()
                .filter(|(a, _)| a.port() == port)
                .map(|(_, e)| e)
                .collect();
            by_port.sort_by_key(|e| match e.key {
                BindingKey::IpPort { addr } => !addr.ip().is_unspecified(),
                _ => true,
            });
            by_port.first().copied()
        } else {
            let local = SocketAddr::new(local.ip().to_canonical(), port);
            let v4_any: SocketAddr = ([0, 0, 0, 0], port).into();
            let v6_any: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
            let (same, other) = if local.is_ipv4() {
                (v4_any, v6_any)
            } else {
                (v6_any, v4_any)
            };
            [local, same, other].iter().find_map(|a| t.addrs.get(a))
        };
        entry.map(Entry::resolved)
    }

    /// A `<host>.pem` from the central certificate store (chain and key in one file), cached
    /// until the file changes.
    fn ccs_config(&self, ccs: &Ccs, host: &str) -> Option<(Arc<ServerConfig>, Arc<CertifiedKey>)> {
        if host.is_empty()
            || host.contains('/')
            || host.starts_with('.')
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return None;
        }
        let path = ccs.dir.join(format!("{host}.pem"));
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        let mut cache = ccs
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, config, cert)) = cache.get(host) {
            if *seen == mtime {
                return Some((config.clone(), cert.clone()));
            }
        }
        let pem = std::fs::read(&path).ok()?;
        let built = parse_pem_pair(&pem, &pem).and_then(|(_, ck)| {
            Ok((
                self.config_with(ck.clone(), ccs.flags, &ccs.key, ccs.client_ca.clone())?,
                ck,
            ))
        });
        match built {
            Ok((config, cert)) => {
                cache.insert(host.to_owned(), (mtime, config.clone(), cert.clone()));
                Some((config, cert))
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "central certificate store file unusable");
                None
            }
        }
    }

    /// The certificate for a QUIC handshake with server name `sni` to `local` (the local IP
    /// when the endpoint knows it, else unspecified): HTTP/3 always speaks TLS 1.3 with ALPN
    /// `h3`, so only the certificate varies. Resolution as for TCP; a binding with
    /// `disablequic` refuses the handshake.
    #[must_use]
    pub fn quic_cert(&self, sni: Option<&str>, local: SocketAddr) -> Option<Arc<CertifiedKey>> {
        // HTTP/3 asks for no client certificate, so a binding that requires one (and whose
        // requirement HTTP/3 would bypass) serves no QUIC.
        self.resolve(sni, local)
            .filter(|(_, _, flags, _)| !flags.disable_quic && !flags.client_cert_required)
            .map(|(_, cert, _, _)| cert)
    }

    /// The rustls configuration for QUIC to `local` (TLS 1.3, ALPN `h3`; an unspecified IP when
    /// the local address is not known), choosing the certificate per handshake with
    /// [`TlsBindings::quic_cert`].
    ///
    /// # Errors
    /// rustls refuses the configuration.
    pub fn quic_config(self: &Arc<Self>, local: SocketAddr) -> Result<ServerConfig, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.shared.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(QuicResolver {
                bindings: self.clone(),
                local,
            }));
        config.alpn_protocols = vec![b"h3".to_vec()];
        config.ignore_client_order = true;
        // No 0-RTT: requests replayable by an attacker are not worth the round trip saved.
        config.max_early_data_size = 0;
        config.session_storage = self.shared.sessions.clone();
        if let Some(t) = &self.shared.ticketer {
            config.ticketer = t.clone();
        }
        Ok(config)
    }

    /// A rustls configuration for one certificate and set of switches.
    fn config(
        &self,
        cert: Arc<CertifiedKey>,
        flags: BindingFlags,
        key: &BindingKey,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        self.config_with(cert, flags, key, None)
    }

    /// The verifier of a binding with `clientcafile=`: client certificates must chain to one
    /// of the CAs in `pem` (webpki: signatures, validity, key usage for client auth); without
    /// `clientcertrequired` a client may still send none.
    fn client_verifier(
        &self,
        pem: &[u8],
        flags: BindingFlags,
        key: &BindingKey,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let bad = |why: String| TlsError::Certificate(format!("{key}: clientcafile: {why}"));
        let roots = client_roots(pem).map_err(bad)?;
        let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            self.shared.provider.clone(),
        );
        let builder = if flags.client_cert_required {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        builder.build().map_err(|e| bad(e.to_string()))
    }

    /// [`TlsBindings::config`] with a client-certificate verifier.
    fn config_with(
        &self,
        cert: Arc<CertifiedKey>,
        flags: BindingFlags,
        key: &BindingKey,
        client_ca: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        if flags.client_cert_required && client_ca.is_none() {
            return Err(TlsError::Certificate(format!(
                "{key}: clientcertrequired=enable needs clientcafile= (the CAs client certificates must chain to)"
            )));
        }
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if !flags.disable_tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if !flags.disable_tls12 {
            versions.push(&rustls::version::TLS12);
        }
        if versions.is_empty() {
            return Err(TlsError::NoVersion(key.clone()));
        }
        let builder = ServerConfig::builder_with_provider(self.shared.provider.clone())
            .with_protocol_versions(&versions)?;
        let verified = client_ca.is_some();
        let builder = match client_ca {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None if flags.client_cert_negotiation => {
                builder.with_client_cert_verifier(Arc::new(OfferClientCert {
                    algorithms: self.shared.provider.signature_verification_algorithms,
                }))
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Fixed(cert)));
        config.alpn_protocols = if flags.disable_http2 {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        if verified {
            // Sessions of a verifying binding are its own: a session (and the client chain it
            // carries) from a binding that verifies less must never resume here. No tickets,
            // whose key is shared by every binding.
            config.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
        } else {
            config.session_storage = self.shared.sessions.clone();
            if let Some(t) = &self.shared.ticketer {
                config.ticketer = t.clone();
            }
        }
        // Bodies and heads are written in pieces; let rustls batch them into records.
        config.max_fragment_size = None;
        // The server's suite order (above) decides, not the client's.
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

impl Table {
    fn put(
        &mut self,
        key: BindingKey,
        config: Arc<ServerConfig>,
        cert: Arc<CertifiedKey>,
        flags: BindingFlags,
    ) {
        let entry = Entry {
            config,
            cert,
            flags,
            key: key.clone(),
        };
        match key {
            BindingKey::IpPort { addr } => {
                self.addrs.insert(
                    SocketAddr::new(addr.ip().to_canonical(), addr.port()),
                    entry,
                );
            }
            BindingKey::HostnamePort { host, port } => {
                self.hosts.insert((host, port), entry);
            }
            BindingKey::Ccs { .. } => {}
        }
    }
}

impl Entry {
    fn resolved(&self) -> Resolved {
        (
            self.config.clone(),
            self.cert.clone(),
            self.flags,
            self.key.clone(),
        )
    }

    fn clone_entry(&self) -> Entry {
        Entry {
            config: self.config.clone(),
            cert: self.cert.clone(),
            flags: self.flags,
            key: self.key.clone(),
        }
    }
}

/// The CA certificates of a `clientcafile=` PEM, as a trust store.
fn client_roots(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
        let cert: CertificateDer<'static> = cert.map_err(|e| e.to_string())?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE block in the PEM".to_owned());
    }
    Ok(roots)
}

/// Checks a `clientcafile=` PEM before it is stored: returns how many CA certificates it
/// holds, or why it cannot be used.
///
/// # Errors
/// The PEM holds no certificate, or one that webpki cannot use as a trust anchor.
pub fn check_client_ca(pem: &[u8]) -> Result<usize, String> {
    client_roots(pem).map(|r| r.len())
}

/// QUIC: the certificate per handshake from the bindings of one port.
#[derive(Debug)]
struct QuicResolver {
    bindings: Arc<TlsBindings>,
    local: SocketAddr,
}

impl ResolvesServerCert for QuicResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        let cert = self.bindings.quic_cert(sni, self.local);
        if cert.is_none() {
            tracing::warn!(target: "httpq::httperr", reason = "SslHandshake", sni = ?sni, local = %self.local, "QUIC handshake refused: no SSL certificate binding (or disablequic) for this name and address");
        }
        cert
    }
}

/// Always the one certificate of a binding.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// `clientcertnegotiation=enable`: ask for a client certificate, accept the handshake with or
/// without one, check that the client holds the certificate's key (the handshake signature),
/// and hand the chain to the app, which decides whom it trusts. The chain is not checked
/// against a trust store here (HTTP.sys checks it against the machine's store and reports the
/// result; that arrives with client-certificate authentication).
#[derive(Debug)]
struct OfferClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for OfferClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
