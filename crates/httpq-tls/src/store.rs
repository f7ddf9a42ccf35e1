//! The certificate store: `<state>/certs/<THUMBPRINT>.pem` (the chain, leaf first) and
//! `<THUMBPRINT>.key` (the private key, mode 0600), each written atomically.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// A certificate's SHA-1 thumbprint: 40 uppercase hex digits, as Windows and netsh show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// The thumbprint of a DER certificate.
    #[must_use]
    pub fn of(der: &[u8]) -> Thumbprint {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        Thumbprint(digest.as_ref().iter().map(|b| format!("{b:02X}")).collect())
    }

    /// Parses a thumbprint as an operator types it (any case, spaces or colons allowed).
    ///
    /// # Errors
    /// It is not 40 hex digits.
    pub fn parse(s: &str) -> Result<Thumbprint, String> {
        let hex: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect::<String>()
            .to_ascii_uppercase();
        if hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Thumbprint(hex))
        } else {
            Err(format!(
                "certhash={s}: expected a SHA-1 thumbprint, 40 hex digits (httpq show cert lists them)"
            ))
        }
    }

    /// The 40 hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `httpq show cert` shows about a stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The thumbprint bindings use.
    pub thumbprint: Thumbprint,
    /// The subject's distinguished name.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// DNS names and IP addresses from the subject alternative names.
    pub names: Vec<String>,
    /// Start of validity (RFC 2822).
    pub not_before: String,
    /// End of validity (RFC 2822).
    pub not_after: String,
    /// `RSA`, `ECDSA`, `Ed25519` or the algorithm's OID.
    pub key_type: String,
    /// Certificates in the chain, leaf included.
    pub chain_length: usize,
}

impl CertInfo {
    /// Describes a chain (leaf first).
    ///
    /// # Errors
    /// The leaf does not parse as X.509.
    pub fn of(chain: &[CertificateDer<'_>]) -> Result<CertInfo, TlsError> {
        use x509_parser::prelude::*;
        let leaf = chain
            .first()
            .ok_or_else(|| TlsError::Certificate("the chain is empty".into()))?;
        let (_, cert) = parse_x509_certificate(leaf.as_ref())
            .map_err(|e| TlsError::Certificate(format!("not a valid X.509 certificate: {e}")))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => names.push((*n).to_owned()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => names.push(
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                                .to_string(),
                        ),
                        16 => names.push(
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                                .to_string(),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let key_type = match cert.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(_)) => "RSA".to_owned(),
            Ok(x509_parser::public_key::PublicKey::EC(_)) => "ECDSA".to_owned(),
            _ if cert.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => {
                "Ed25519".to_owned()
            }
            _ => cert.public_key().algorithm.algorithm.to_id_string(),
        };
        let time = |t: ASN1Time| t.to_rfc2822().unwrap_or_else(|_| t.to_string());
        Ok(CertInfo {
            thumbprint: Thumbprint::of(leaf.as_ref()),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            key_type,
            chain_length: chain.len(),
        })
    }
}

/// Parses a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) and
/// checks that they belong together.
///
/// # Errors
/// No certificate, no key, a key rustls cannot use, or a key that is not the certificate's.
pub fn parse_pem_pair(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, Arc<CertifiedKey>), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(format!("the PEM does not parse: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate(
            "no \"-----BEGIN CERTIFICATE-----\" block found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        TlsError::Key(format!(
            "no usable \"-----BEGIN PRIVATE KEY-----\" (or RSA/EC PRIVATE KEY) block: {e}"
        ))
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key(format!("rustls cannot use this key: {e}")))?;
    let certified = CertifiedKey::new(chain.clone(), signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch);
        }
        // The public key could not be compared (an unusual algorithm): let rustls decide at
        // handshake time rather than refuse a key that may be fine.
        Err(_) => {}
    }
    CertInfo::of(&chain)?;
    Ok((chain, Arc::new(certified)))
}

/// The certificate store in a state directory.
#[derive(Debug, Clone)]
pub struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    /// The store under `state_dir` (`<state_dir>/certs`).
    #[must_use]
    pub fn new(state_dir: &Path) -> CertStore {
        CertStore {
            dir: state_dir.join("certs"),
        }
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + use<> {
        let path = path.to_owned();
        move |source| TlsError::Io { path, source }
    }

    /// Imports a chain and its key; returns what was stored. Importing the same certificate
    /// again replaces its files with identical content.
    ///
    /// # Errors
    /// The PEM is invalid, the key does not match, or the files cannot be written.
    pub fn import(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo, TlsError> {
        let (chain, _) = parse_pem_pair(chain_pem, key_pem)?;
        let info = CertInfo::of(&chain)?;
        if !self.dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(self.io(&self.dir))?;
        }
        let thumb = info.thumbprint.as_str();
        let write = |name: String, bytes: &[u8], mode| {
            httpq_state::write_atomic(&self.dir, &name, bytes, mode).map_err(|e| TlsError::Io {
                path: self.dir.join(&name),
                source: std::io::Error::other(e.to_string()),
            })
        };
        // The key first: a chain file without its key would list a certificate that cannot
        // be used.
        write(format!("{thumb}.key"), key_pem, 0o600)?;
        write(format!("{thumb}.pem"), chain_pem, 0o644)?;
        Ok(info)
    }

    /// Every stored certificate, by thumbprint.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list(&self) -> Result<Vec<CertInfo>, TlsError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".pem") else {
                continue;
            };
            let Ok(thumb) = Thumbprint::parse(stem) else {
                continue;
            };
            if let Ok(chain) = self.chain(&thumb) {
                if let Ok(info) = CertInfo::of(&chain) {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.thumbprint.cmp(&b.thumbprint));
        Ok(out)
    }

    fn chain(&self, thumb: &Thumbprint) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let path = self.dir.join(format!("{thumb}.pem"));
        let pem = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TlsError::NotFound(thumb.to_string()),
            _ => self.io(&path)(e),
        })?;
        CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))
    }

    /// Loads a certificate and its key for serving.
    ///
    /// # Errors
    /// Not in the store, or its files are unreadable or invalid.
    pub fn load(&self, thumb: &Thumbprint) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain_path = self.dir.join(format!("{thumb}.pem"));
        let key_path = self.dir.join(format!("{thumb}.key"));
        let chain = std::fs::read(&chain_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TlsError::NotFound(thumb.to_string()),
            _ => self.io(&chain_path)(e),
        })?;
        let key = std::fs::read(&key_path).map_err(self.io(&key_path))?;
        Ok(parse_pem_pair(&chain, &key)?.1)
    }

    /// Whether the store holds this certificate.
    #[must_use]
    pub fn contains(&self, thumb: &Thumbprint) -> bool {
        self.dir.join(format!("{thumb}.pem")).exists()
    }

    /// Removes a certificate and its key.
    ///
    /// # Errors
    /// Not in the store, or the files cannot be removed.
    pub fn delete(&self, thumb: &Thumbprint) -> Result<(), TlsError> {
        let chain_path = self.dir.join(format!("{thumb}.pem"));
        if !chain_path.exists() {
            return Err(TlsError::NotFound(thumb.to_string()));
        }
        std::fs::remove_file(&chain_path).map_err(self.io(&chain_path))?;
        let key_path = self.dir.join(format!("{thumb}.key"));
        let _ = std::fs::remove_file(&key_path);
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}
