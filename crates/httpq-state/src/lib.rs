//! The listener's configuration registry: what `netsh http` keeps in the Windows registry.
//!
//! One JSON document (`config.json` in the state directory) holds the URL ACLs, the `iplisten`
//! list, the global timeouts and the SSL certificate bindings. Only the listener writes it, and always the same way: write
//! `config.json.tmp`, fsync it, rename it over `config.json`, fsync the directory. A crash at
//! any moment therefore leaves either the old or the new document, and a change is
//! acknowledged only after the directory fsync, so an acknowledged change survives `kill -9`
//! and power loss (`tests/crash.rs` kills a writer repeatedly and checks exactly that).
//!
//! ```
//! use httpq_state::{Config, Store, UrlAclEntry};
//! # let dir = std::env::temp_dir().join(format!("httpq-state-doc-{}", std::process::id()));
//! let (mut store, mut config) = Store::open(&dir)?;
//! config.add_url_acl(UrlAclEntry::user("http://+:8080/app/", 1000, "alice")?)?;
//! store.commit(&config)?;                       // durable when this returns
//! let (_, again) = Store::open(&dir)?;
//! assert_eq!(again.url_acls.len(), 1);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use httpq_core::acl::{Principal, UrlAcl};
use httpq_core::{UrlPrefix, UrlPrefixError};
use serde::{Deserialize, Serialize};

/// The document version this build writes. Older documents are upgraded on load; newer ones
/// are refused (a downgrade must not silently drop what a newer listener stored).
pub const CONFIG_VERSION: u32 = 1;

const FILE: &str = "config.json";
const TEMP: &str = "config.json.tmp";

/// Who a URL ACL entry is for, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredPrincipal {
    /// A user by uid (the name is for display).
    User {
        /// uid
        uid: u32,
        /// name when added
        name: String,
    },
    /// A group by gid (the name is for display).
    Group {
        /// gid
        gid: u32,
        /// name when added
        name: String,
    },
}

/// One URL ACL entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlAclEntry {
    /// The reserved prefix, normalised (`http://+:8080/app/`).
    pub url: String,
    /// Who it is for.
    pub principal: StoredPrincipal,
    /// The listen right (default yes).
    pub listen: bool,
    /// The delegate right (default no).
    pub delegate: bool,
}

impl UrlAclEntry {
    /// An entry for a user with HTTP.sys's defaults (listen yes, delegate no).
    ///
    /// # Errors
    /// The URL is not a valid prefix.
    pub fn user(url: &str, uid: u32, name: &str) -> Result<Self, UrlPrefixError> {
        Ok(UrlAclEntry {
            url: UrlPrefix::parse(url)?.to_string(),
            principal: StoredPrincipal::User {
                uid,
                name: name.to_owned(),
            },
            listen: true,
            delegate: false,
        })
    }

    /// An entry for a group with HTTP.sys's defaults.
    ///
    /// # Errors
    /// The URL is not a valid prefix.
    pub fn group(url: &str, gid: u32, name: &str) -> Result<Self, UrlPrefixError> {
        Ok(UrlAclEntry {
            url: UrlPrefix::parse(url)?.to_string(),
            principal: StoredPrincipal::Group {
                gid,
                name: name.to_owned(),
            },
            listen: true,
            delegate: false,
        })
    }

    /// The entry as the ACL check uses it.
    ///
    /// # Errors
    /// The stored URL no longer parses (a hand-edited file).
    pub fn to_acl(&self) -> Result<UrlAcl, UrlPrefixError> {
        let principal = match &self.principal {
            StoredPrincipal::User { uid, name } => Principal::User {
                uid: *uid,
                name: name.clone(),
            },
            StoredPrincipal::Group { gid, name } => Principal::Group {
                gid: *gid,
                name: name.clone(),
            },
        };
        Ok(UrlAcl {
            url: UrlPrefix::parse(&self.url)?,
            principal,
            listen: self.listen,
            delegate: self.delegate,
        })
    }
}

/// Global timeouts an admin can set (`httpq add timeout`), in seconds; `None` = HTTP.sys default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalTimeouts {
    /// `idleconnectiontimeout`.
    pub idle_connection: Option<u16>,
    /// `headerwaittimeout`.
    pub header_wait: Option<u16>,
}

/// What an SSL certificate binding is keyed by (netsh `ipport=`, `hostnameport=`, `ccs=`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BindingKey {
    /// `ipport=IP:PORT`: connections to this local address (`0.0.0.0` or `[::]` for any).
    IpPort {
        /// The address.
        addr: SocketAddr,
    },
    /// `hostnameport=NAME:PORT`: handshakes whose SNI is this name, on this port.
    HostnamePort {
        /// The host name, lowercase.
        host: String,
        /// The port.
        port: u16,
    },
    /// `ccs=PORT`: the central certificate store, a directory of `<host>.pem` files.
    Ccs {
        /// The port.
        port: u16,
    },
}

impl BindingKey {
    /// Parses one of netsh's three key forms.
    ///
    /// # Errors
    /// The value is not `IP:PORT` / `NAME:PORT` / `PORT`; the message says what was expected.
    pub fn parse(kind: &str, value: &str) -> Result<BindingKey, String> {
        match kind {
            "ipport" => value
                .parse::<SocketAddr>()
                .map(|addr| BindingKey::IpPort { addr })
                .map_err(|_| {
                    format!(
                        "ipport={value}: expected IP:PORT, e.g. 0.0.0.0:443 or [::]:443 or 192.0.2.1:8443"
                    )
                }),
            "hostnameport" => {
                let (host, port) = value.rsplit_once(':').ok_or_else(|| {
                    format!("hostnameport={value}: expected NAME:PORT, e.g. www.example.com:443")
                })?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("hostnameport={value}: {port:?} is not a port number"))?;
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                let valid = !host.is_empty()
                    && host.len() <= 253
                    && host
                        .split('.')
                        .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*'));
                if !valid {
                    return Err(format!(
                        "hostnameport={value}: {host:?} is not a DNS host name"
                    ));
                }
                Ok(BindingKey::HostnamePort { host, port })
            }
            "ccs" => value
                .parse::<u16>()
                .map(|port| BindingKey::Ccs { port })
                .map_err(|_| format!("ccs={value}: expected a port number, e.g. ccs=443")),
            other => Err(format!(
                "{other}: a binding is named by ipport=, hostnameport= or ccs="
            )),
        }
    }

    /// The port the binding applies to.
    #[must_use]
    pub fn port(&self) -> u16 {
        match self {
            BindingKey::IpPort { addr } => addr.port(),
            BindingKey::HostnamePort { port, .. } | BindingKey::Ccs { port } => *port,
        }
    }
}

impl std::fmt::Display for BindingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindingKey::IpPort { addr } => write!(f, "ipport={addr}"),
            BindingKey::HostnamePort { host, port } => write!(f, "hostnameport={host}:{port}"),
            BindingKey::Ccs { port } => write!(f, "ccs={port}"),
        }
    }
}

/// Per-binding switches (HTTP.sys's `HTTP_SERVICE_CONFIG_SSL_FLAG_*`), all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[allow(clippy::struct_excessive_bools)]
pub struct BindingFlags {
    /// Ask the client for a certificate in the handshake (`clientcertnegotiation=enable`).
    pub client_cert_negotiation: bool,
    /// Offer only HTTP/1.1 in ALPN (`disablehttp2=enable`).
    pub disable_http2: bool,
    /// No HTTP/3 on this binding (`disablequic=enable`).
    pub disable_quic: bool,
    /// Refuse TLS below 1.2 (`disablelegacytls=enable`; rustls never speaks below 1.2).
    pub disable_legacy_tls: bool,
    /// Refuse TLS 1.2 (`disabletls12=enable`).
    pub disable_tls12: bool,
    /// Refuse TLS 1.3 (`disabletls13=enable`).
    pub disable_tls13: bool,
    /// Refuse a handshake without a client certificate that chains to the binding's client
    /// CA (`clientcertrequired=enable`; needs `clientcafile=`). Such a binding serves no
    /// HTTP/3, where httpq asks for no client certificate.
    pub client_cert_required: bool,
}

/// One SSL certificate binding (`httpq add sslcert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslBinding {
    /// What the binding applies to.
    pub key: BindingKey,
    /// The certificate's SHA-1 thumbprint (40 uppercase hex digits) in the certificate
    /// store; `None` for `ccs=` bindings, whose certificates come from the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certhash: Option<String>,
    /// The application id, kept for the operator as netsh does (a GUID or any label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The switches.
    #[serde(default)]
    pub flags: BindingFlags,
    /// Certificate authorities (PEM) a client certificate must chain to
    /// (`clientcafile=`): the listener verifies the chain, so apps need not. A client
    /// certificate that does not chain to one of them fails the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_pem: Option<String>,
}

/// A W3C access log (`httpq add logging`): the listener-wide (centralized) one, or one named
/// queue's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingEntry {
    /// The queue (`owner/name`) whose exchanges it logs; `None`: every exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Its directory.
    pub dir: PathBuf,
    /// `hourly`, `daily`, `weekly`, `monthly` or `size:BYTES`.
    pub rollover: String,
    /// Roll over at local-time boundaries.
    #[serde(default)]
    pub local_time: bool,
    /// The W3C fields, comma-separated.
    pub fields: String,
}

impl LoggingEntry {
    /// The engine's form of this entry.
    ///
    /// # Errors
    /// The rollover or the fields do not parse (a document edited by hand).
    pub fn to_options(&self) -> Result<httpq_core::logging::AccessLogOptions, String> {
        Ok(httpq_core::logging::AccessLogOptions {
            dir: self.dir.clone(),
            rollover: self.rollover.parse().map_err(|e| format!("{e}"))?,
            local_time: self.local_time,
            fields: self.fields.parse().map_err(|e| format!("{e}"))?,
        })
    }

    /// The stored form of `options` for `queue`.
    #[must_use]
    pub fn from_options(
        queue: Option<String>,
        options: &httpq_core::logging::AccessLogOptions,
    ) -> LoggingEntry {
        LoggingEntry {
            queue,
            dir: options.dir.clone(),
            rollover: options.rollover.to_string(),
            local_time: options.local_time,
            fields: options.fields.to_string(),
        }
    }
}

/// The whole configuration document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Document version ([`CONFIG_VERSION`] when written by this build).
    pub version: u32,
    /// URL reservations.
    #[serde(default)]
    pub url_acls: Vec<UrlAclEntry>,
    /// Addresses the listener binds (empty: all addresses).
    #[serde(default)]
    pub iplisten: Vec<IpAddr>,
    /// Global timeouts.
    #[serde(default)]
    pub timeouts: GlobalTimeouts,
    /// SSL certificate bindings.
    #[serde(default)]
    pub ssl_bindings: Vec<SslBinding>,
    /// W3C access logs.
    #[serde(default)]
    pub logging: Vec<LoggingEntry>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            url_acls: Vec::new(),
            iplisten: Vec::new(),
            timeouts: GlobalTimeouts::default(),
            ssl_bindings: Vec::new(),
            logging: Vec::new(),
        }
    }
}

/// A change the configuration refuses, with what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `add urlacl` for a URL that already has an entry (as netsh: delete it first).
    #[error("url {0} already has a URL ACL entry; delete it first (httpq delete urlacl url={0})")]
    UrlAclExists(String),
    /// No entry for this URL.
    #[error("url {0} has no URL ACL entry (httpq show urlacl lists them)")]
    UrlAclNotFound(String),
    /// The address is already in the iplisten list.
    #[error("{0} is already in the iplisten list")]
    IpListenExists(IpAddr),
    /// The address is not in the iplisten list.
    #[error("{0} is not in the iplisten list (httpq show iplisten lists it)")]
    IpListenNotFound(IpAddr),
    /// `add sslcert` for a key that already has a binding.
    #[error(
        "{0} already has an SSL certificate binding; change it with httpq update sslcert or delete it first"
    )]
    SslBindingExists(BindingKey),
    /// No binding for this key.
    #[error("{0} has no SSL certificate binding (httpq show sslcert lists them)")]
    SslBindingNotFound(BindingKey),
}

impl Config {
    fn find_acl(&self, url: &str) -> Option<usize> {
        let key = UrlPrefix::parse(url).ok()?;
        self.url_acls
            .iter()
            .position(|e| UrlPrefix::parse(&e.url).is_ok_and(|p| p == key))
    }

    /// Adds a URL ACL entry.
    ///
    /// # Errors
    /// An entry for the same URL (compared as HTTP.sys does, case-insensitively) exists.
    pub fn add_url_acl(&mut self, entry: UrlAclEntry) -> Result<(), ConfigError> {
        if self.find_acl(&entry.url).is_some() {
            return Err(ConfigError::UrlAclExists(entry.url));
        }
        self.url_acls.push(entry);
        Ok(())
    }

    /// Removes the entry for `url`.
    ///
    /// # Errors
    /// There is none.
    pub fn delete_url_acl(&mut self, url: &str) -> Result<UrlAclEntry, ConfigError> {
        match self.find_acl(url) {
            Some(i) => Ok(self.url_acls.remove(i)),
            None => Err(ConfigError::UrlAclNotFound(url.to_owned())),
        }
    }

    /// Adds an address to the iplisten list.
    ///
    /// # Errors
    /// It is already there.
    pub fn add_iplisten(&mut self, ip: IpAddr) -> Result<(), ConfigError> {
        if self.iplisten.contains(&ip) {
            return Err(ConfigError::IpListenExists(ip));
        }
        self.iplisten.push(ip);
        Ok(())
    }

    /// Removes an address from the iplisten list.
    ///
    /// # Errors
    /// It is not there.
    pub fn delete_iplisten(&mut self, ip: IpAddr) -> Result<(), ConfigError> {
        let before = self.iplisten.len();
        self.iplisten.retain(|a| *a != ip);
        if self.iplisten.len() == before {
            return Err(ConfigError::IpListenNotFound(ip));
        }
        Ok(())
    }

    /// Adds an SSL certificate binding.
    ///
    /// # Errors
    /// The key already has one.
    pub fn add_ssl_binding(&mut self, binding: SslBinding) -> Result<(), ConfigError> {
        if self.ssl_bindings.iter().any(|b| b.key == binding.key) {
            return Err(ConfigError::SslBindingExists(binding.key));
        }
        self.ssl_bindings.push(binding);
        Ok(())
    }

    /// Replaces the binding with the same key.
    ///
    /// # Errors
    /// There is none.
    pub fn update_ssl_binding(&mut self, binding: SslBinding) -> Result<(), ConfigError> {
        match self.ssl_bindings.iter_mut().find(|b| b.key == binding.key) {
            Some(b) => {
                *b = binding;
                Ok(())
            }
            None => Err(ConfigError::SslBindingNotFound(binding.key)),
        }
    }

    /// Removes the binding for `key`.
    ///
    /// # Errors
    /// There is none.
    pub fn delete_ssl_binding(&mut self, key: &BindingKey) -> Result<SslBinding, ConfigError> {
        match self.ssl_bindings.iter().position(|b| b.key == *key) {
            Some(i) => Ok(self.ssl_bindings.remove(i)),
            None => Err(ConfigError::SslBindingNotFound(key.clone())),
        }
    }

    /// The URL ACLs in the form the registration check takes; entries that no longer parse
    /// are skipped (and reported by [`Store::open`] already).
    #[must_use]
    pub fn acls(&self) -> Vec<UrlAcl> {
        self.url_acls
            .iter()
            .filter_map(|e| e.to_acl().ok())
            .collect()
    }
}

/// Why the store could not be read or written. Each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state directory or file could not be accessed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The document does not parse.
    #[error(
        "{path} is not a valid httpq configuration ({source}); fix it or restore a backup — the listener will not start on a configuration it cannot read"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The document was written by a newer listener.
    #[error(
        "{path} has configuration version {found}, newer than this httpqd understands ({CONFIG_VERSION}); run the newer httpqd or restore a backup"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The configuration file in a state directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating the directory, mode 0700 if new) and loads the configuration; an absent
    /// file is an empty configuration. A leftover temporary file from a crash is removed.
    ///
    /// # Errors
    /// The directory cannot be created, the file cannot be read, does not parse, or is newer
    /// than this build.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(Store, Config), StateError> {
        let dir = dir.into();
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(&dir))?;
        }
        let temp = dir.join(TEMP);
        if temp.exists() {
            // A crash between write and rename: the old file is still the truth.
            fs::remove_file(&temp).map_err(io_err(&temp))?;
        }
        let config = read(&dir)?.unwrap_or_default();
        Ok((Store { dir }, config))
    }

    /// Reads the configuration in `dir` without changing anything there (no directory made,
    /// no leftover cleaned): for readers other than the listener, such as an embedded app
    /// using the listener's SSL bindings. `None` when there is no configuration file.
    ///
    /// # Errors
    /// The file cannot be read, does not parse, or is newer than this build.
    pub fn read(dir: &Path) -> Result<Option<Config>, StateError> {
        read(dir)
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Replaces the stored configuration with `config`: temp file (0600), fsync, rename,
    /// fsync of the directory. When this returns `Ok`, the change survives a crash.
    ///
    /// # Errors
    /// Any step fails; the previous configuration is then still in place.
    pub fn commit(&mut self, config: &Config) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(config).map_err(|e| StateError::Io {
            path: self.dir.join(TEMP),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        write_atomic(&self.dir, FILE, &bytes, 0o600)
    }

    /// The state directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn read(dir: &Path) -> Result<Option<Config>, StateError> {
    let path = dir.join(FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let config: Config =
                serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            if config.version > CONFIG_VERSION {
                return Err(StateError::TooNew {
                    path,
                    found: config.version,
                });
            }
            Ok(Some(Config {
                version: CONFIG_VERSION,
                ..config
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Writes `dir/name` so that a crash leaves the old file or the new one, never a mix: a
/// temporary file `name.tmp` with `mode`, fsync, rename, fsync of the directory.
///
/// # Errors
/// Any step fails; the previous file is then still in place.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let temp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .map_err(io_err(&temp))?;
    file.write_all(bytes).map_err(io_err(&temp))?;
    file.sync_all().map_err(io_err(&temp))?;
    drop(file);
    fs::rename(&temp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("httpq-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_netsh_like_errors() {
        let dir = temp_dir("rt");
        let (mut store, mut c) = Store::open(&dir).unwrap();
        assert_eq!(c, Config::default());
        c.add_url_acl(UrlAclEntry::user("http://+:8080/App", 7, "u7").unwrap())
            .unwrap();
        let dup = c
            .add_url_acl(UrlAclEntry::group("HTTP://+:8080/app/", 9, "g").unwrap())
            .unwrap_err();
        assert!(dup.to_string().contains("delete it first"), "{dup}");
        c.add_iplisten("127.0.0.1".parse().unwrap()).unwrap();
        assert!(c.add_iplisten("127.0.0.1".parse().unwrap()).is_err());
        c.timeouts.header_wait = Some(30);
        store.commit(&c).unwrap();
        let (_, loaded) = Store::open(&dir).unwrap();
        assert_eq!(loaded, c);
        assert_eq!(loaded.acls().len(), 1);
        assert_eq!(loaded.url_acls[0].url, "http://+:8080/App/");
        let mut c = loaded;
        assert!(c.delete_url_acl("http://+:8080/app/").is_ok());
        assert!(c.delete_url_acl("http://+:8080/app/").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_corrupt_and_newer_files_and_cleans_temp() {
        let dir = temp_dir("bad");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(TEMP), b"half-written").unwrap();
        fs::write(dir.join(FILE), b"{\"version\": 1, \"url_acls\": [").unwrap();
        let err = Store::open(&dir).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
        assert!(!dir.join(TEMP).exists(), "the crash leftover is removed");
        fs::write(dir.join(FILE), b"{\"version\": 99}").unwrap();
        let err = Store::open(&dir).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("mode");
        let (mut store, c) = Store::open(&dir).unwrap();
        store.commit(&c).unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }
}
