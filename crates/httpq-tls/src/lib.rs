//! TLS for httpq, as HTTP.sys does it on Windows and a Linux operator would expect:
//!
//! - a **certificate store** in the listener's state directory ([`CertStore`]): certificates
//!   imported from PEM, addressed by their SHA-1 thumbprint like the Windows `MY` store, private
//!   keys kept `0600`;
//! - **SSL certificate bindings** ([`TlsBindings`]), netsh's `ipport=`, `hostnameport=` (SNI)
//!   and `ccs=` (a directory of `<host>.pem` files), each with its switches (ALPN h2 off,
//!   TLS 1.2 or 1.3 off, client certificate negotiation);
//! - the **choice of a rustls configuration per handshake**, from the ClientHello's server
//!   name and the local address: SNI exact host → ccs → `ipport` for the local IP → `ipport`
//!   `0.0.0.0`/`[::]` → refuse, with a reason that names what is missing;
//! - a **development certificate** for `localhost` ([`dev_cert`]), as `dotnet dev-certs`.
//!
//! Only TLS 1.2 and 1.3 exist here (rustls), with rustls's modern suites; session resumption
//! uses one ticketer and one session cache shared by every binding. Bindings change while the
//! listener runs: [`TlsBindings::replace`] swaps the whole table, so the next handshake uses it
//! and connections already established are untouched.

mod bindings;
mod devcert;
mod store;

pub use bindings::{NoBinding, Selected, TlsBindings, check_client_ca};
pub use devcert::{DevCert, dev_cert};
pub use store::{CertInfo, CertStore, Thumbprint, parse_pem_pair};

pub use httpq_state::{BindingFlags, BindingKey, SslBinding};

/// Why a certificate or binding could not be used. Every message says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file has no certificate, or one that does not parse.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The key file has no private key, or one rustls cannot use.
    #[error("private key: {0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error(
        "the private key does not belong to the certificate (its public key differs); pass the key file that was generated with this certificate"
    )]
    KeyMismatch,
    /// No certificate with this thumbprint in the store.
    #[error("no certificate with thumbprint {0} in the store (httpq show cert lists them)")]
    NotFound(String),
    /// The certificate store could not be read or written.
    #[error("certificate store {path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A binding's switches leave no protocol version.
    #[error("{0}: disabletls12 and disabletls13 together leave no TLS version to speak")]
    NoVersion(BindingKey),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
