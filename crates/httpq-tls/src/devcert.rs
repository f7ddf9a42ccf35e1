//! A development certificate for `localhost`, as `dotnet dev-certs https` makes one.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use crate::TlsError;

/// A freshly made certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct DevCert {
    /// The self-signed certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// Makes a self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1`, valid
/// for one year.
///
/// # Errors
/// Key generation or signing failed.
pub fn dev_cert() -> Result<DevCert, TlsError> {
    let fail = |e: rcgen::Error| TlsError::Certificate(format!("cannot make one: {e}"));
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(fail)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    dn.push(DnType::OrganizationName, "httpq development certificate");
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(DevCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
