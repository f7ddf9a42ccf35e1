//! Certificates and SSL bindings, netsh-style: `add/show/delete cert`,
//! `add/update/delete/show sslcert`. Certificates go to the store under the state directory;
//! bindings to the configuration registry; both apply to the next handshake.

use std::collections::BTreeMap;

use httpq_state::{BindingFlags, BindingKey, SslBinding};
use httpq_tls::{CertInfo, CertStore, Thumbprint};
use httpq_wire::control::ErrorCode;
use serde_json::{Value, json};

use crate::Daemon;
use crate::admin::{AdminOutcome, commit, invalid_arg as invalid};

/// Puts the bindings of `config` in force.
pub(crate) fn apply(daemon: &Daemon, config: &httpq_state::Config) {
    let problems = daemon.engine.tls().replace(
        &config.ssl_bindings,
        &CertStore::new(&daemon.state_dir),
        &daemon.state_dir.join("ccs"),
    );
    for (key, e) in problems {
        tracing::error!(binding = %key, error = %e, "SSL binding left out: handshakes it covers are refused until it is fixed");
    }
}

fn cert_json(info: &CertInfo, bindings: &[SslBinding]) -> Value {
    let used_by: Vec<String> = bindings
        .iter()
        .filter(|b| b.certhash.as_deref() == Some(info.thumbprint.as_str()))
        .map(|b| b.key.to_string())
        .collect();
    json!({
        "certhash": info.thumbprint.as_str(),
        "subject": info.subject,
        "issuer": info.issuer,
        "names": info.names,
        "not_before": info.not_before,
        "not_after": info.not_after,
        "key_type": info.key_type,
        "chain_length": info.chain_length,
        "bindings": used_by,
    })
}

fn binding_json(b: &SslBinding) -> Value {
    let f = &b.flags;
    let onoff = |on: bool| if on { "enable" } else { "disable" };
    json!({
        "key": b.key.to_string(),
        "certhash": b.certhash,
        "appid": b.appid,
        "clientcertnegotiation": onoff(f.client_cert_negotiation),
        "disablehttp2": onoff(f.disable_http2),
        "disablequic": onoff(f.disable_quic),
        "disablelegacytls": onoff(f.disable_legacy_tls),
        "disabletls12": onoff(f.disable_tls12),
        "disabletls13": onoff(f.disable_tls13),
        "clientcertrequired": onoff(f.client_cert_required),
        "clientca": b.client_ca_pem.as_deref().map(|pem| {
            let n = httpq_tls::check_client_ca(pem.as_bytes()).unwrap_or(0);
            format!("{n} CA certificate{}", if n == 1 { "" } else { "s" })
        }),
    })
}

/// The one binding key among `ipport=`, `hostnameport=`, `ccs=`.
fn key_of(args: &BTreeMap<String, String>) -> Result<BindingKey, (ErrorCode, String)> {
    let given: Vec<(&str, &String)> = ["ipport", "hostnameport", "ccs"]
        .iter()
        .filter_map(|k| args.get(*k).map(|v| (*k, v)))
        .collect();
    match given.as_slice() {
        [(kind, value)] => BindingKey::parse(kind, value).map_err(invalid),
        [] => Err(invalid(
            "name the binding with exactly one of ipport=IP:PORT, hostnameport=NAME:PORT or ccs=PORT",
        )),
        _ => Err(invalid(
            "give only one of ipport=, hostnameport= and ccs=: a binding has one key",
        )),
    }
}

fn flag(
    args: &BTreeMap<String, String>,
    key: &str,
    current: bool,
) -> Result<bool, (ErrorCode, String)> {
    match args.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(current),
        Some(v) if v == "enable" || v == "yes" || v == "true" => Ok(true),
        Some(v) if v == "disable" || v == "no" || v == "false" => Ok(false),
        Some(v) => Err(invalid(format!("{key}={v}: expected enable or disable"))),
    }
}

fn flags(
    args: &BTreeMap<String, String>,
    base: BindingFlags,
) -> Result<BindingFlags, (ErrorCode, String)> {
    Ok(BindingFlags {
        client_cert_negotiation: flag(args, "clientcertnegotiation", base.client_cert_negotiation)?,
        disable_http2: flag(args, "disablehttp2", base.disable_http2)?,
        disable_quic: flag(args, "disablequic", base.disable_quic)?,
        disable_legacy_tls: flag(args, "disablelegacytls", base.disable_legacy_tls)?,
        disable_tls12: flag(args, "disabletls12", base.disable_tls12)?,
        disable_tls13: flag(args, "disabletls13", base.disable_tls13)?,
        client_cert_required: flag(args, "clientcertrequired", base.client_cert_required)?,
    })
}

fn check_args(
    args: &BTreeMap<String, String>,
    allowed: &[&str],
) -> Result<(), (ErrorCode, String)> {
    for k in args.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(format!(
                "unknown argument {k}=; this command takes {}",
                allowed.join("=, ") + "="
            )));
        }
    }
    Ok(())
}

const BINDING_ARGS: &[&str] = &[
    "ipport",
    "hostnameport",
    "ccs",
    "certhash",
    "appid",
    "certstorename",
    "clientcertnegotiation",
    "disablehttp2",
    "disablequic",
    "disablelegacytls",
    "disabletls12",
    "disabletls13",
    "clientcertrequired",
    // The CLI reads clientcafile=PATH and sends its PEM ("" removes the CA).
    "client_ca_pem",
];

/// Runs a certificate or binding command; `None` when `command` is not one.
pub(crate) async fn run(
    daemon: &Daemon,
    command: &str,
    args: &BTreeMap<String, String>,
) -> Option<AdminOutcome> {
    let store = CertStore::new(&daemon.state_dir);
    Some(match command {
        "add cert" => add_cert(daemon, &store, args).await,
        "show cert" => {
            let bindings = daemon.state.lock().await.1.ssl_bindings.clone();
            let wanted = match args.get("certhash").map(|h| Thumbprint::parse(h)) {
                None => None,
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => return Some(Err(invalid(e))),
            };
            store
                .list()
                .map_err(|e| (ErrorCode::Internal, e.to_string()))
                .map(|list| {
                    let certs: Vec<Value> = list
                        .iter()
                        .filter(|c| wanted.as_ref().is_none_or(|w| *w == c.thumbprint))
                        .map(|c| cert_json(c, &bindings))
                        .collect();
                    json!({ "certificates": certs })
                })
        }
        "delete cert" => {
            let thumb = match args.get("certhash").map(|h| Thumbprint::parse(h)) {
                Some(Ok(t)) => t,
                Some(Err(e)) => return Some(Err(invalid(e))),
                None => return Some(Err(invalid("delete cert needs certhash=THUMBPRINT"))),
            };
            let state = daemon.state.lock().await;
            let users: Vec<String> = state
                .1
                .ssl_bindings
                .iter()
                .filter(|b| b.certhash.as_deref() == Some(thumb.as_str()))
                .map(|b| b.key.to_string())
                .collect();
            if !users.is_empty() {
                return Some(Err((
                    ErrorCode::AccessDenied,
                    format!(
                        "certificate {thumb} is in use by {}; delete or update those bindings first (httpq delete sslcert {})",
                        users.join(", "),
                        users[0]
                    ),
                )));
            }
            store
                .delete(&thumb)
                .map(|()| json!({ "certhash": thumb.as_str() }))
                .map_err(|e| match e {
                    httpq_tls::TlsError::NotFound(_) => (ErrorCode::NotFound, e.to_string()),
                    e => (ErrorCode::Internal, e.to_string()),
                })
        }
        "add sslcert" | "update sslcert" => {
            if let Err(e) = check_args(args, BINDING_ARGS) {
                return Some(Err(e));
            }
            let key = match key_of(args) {
                Ok(k) => k,
                Err(e) => return Some(Err(e)),
            };
            let update = command == "update sslcert";
            let existing = daemon
                .state
                .lock()
                .await
                .1
                .ssl_bindings
                .iter()
                .find(|b| b.key == key)
                .cloned();
            let base = match (&existing, update) {
                (Some(b), true) => b.clone(),
                (None, true) => {
                    return Some(Err((
                        ErrorCode::NotFound,
                        format!(
                            "{key} has no SSL certificate binding; add it with httpq add sslcert"
                        ),
                    )));
                }
                _ => SslBinding {
                    key: key.clone(),
                    certhash: None,
                    appid: None,
                    flags: BindingFlags::default(),
                    client_ca_pem: None,
                },
            };
            let certhash = match args.get("certhash").map(|h| Thumbprint::parse(h)) {
                Some(Ok(t)) => Some(t.as_str().to_owned()),
                Some(Err(e)) => return Some(Err(invalid(e))),
                None => base.certhash.clone(),
            };
            let is_ccs = matches!(key, BindingKey::Ccs { .. });
            match (&certhash, is_ccs) {
                (None, false) => {
                    return Some(Err(invalid(format!(
                        "{key}: needs certhash=THUMBPRINT (import the certificate with httpq add cert; httpq show cert lists thumbprints)"
                    ))));
                }
                (Some(_), true) => {
                    return Some(Err(invalid(
                        "ccs= bindings take their certificates from the central store directory (<state>/ccs/<host>.pem), not certhash=",
                    )));
                }
                (Some(h), false) => {
                    if !Thumbprint::parse(h).is_ok_and(|t| store.contains(&t)) {
                        return Some(Err((
                            ErrorCode::NotFound,
                            format!(
                                "no certificate {h} in the store: import it first with httpq add cert certfile=PEM keyfile=PEM"
                            ),
                        )));
                    }
                }
                (None, true) => {}
            }
            let flags = match flags(args, base.flags) {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            };
            if flags.disable_tls12 && flags.disable_tls13 {
                return Some(Err(invalid(
                    "disabletls12=enable and disabletls13=enable together leave no TLS version",
                )));
            }
            let client_ca_pem = match args.get("client_ca_pem") {
                None => base.client_ca_pem.clone(),
                Some(pem) if pem.is_empty() => None,
                Some(pem) => match httpq_tls::check_client_ca(pem.as_bytes()) {
                    Ok(_) => Some(pem.clone()),
                    Err(why) => return Some(Err(invalid(format!("clientcafile: {why}")))),
                },
            };
            if flags.client_cert_required && client_ca_pem.is_none() {
                return Some(Err(invalid(
                    "clientcertrequired=enable needs clientcafile=PEM: the CAs a client certificate must chain to",
                )));
            }
            let binding = SslBinding {
                key,
                certhash,
                appid: args.get("appid").cloned().or(base.appid),
                flags,
                client_ca_pem,
            };
            let out = binding_json(&binding);
            let result = commit(daemon, move |c| {
                if update {
                    c.update_ssl_binding(binding)
                } else {
                    c.add_ssl_binding(binding)
                }
                .map_err(|e| (ErrorCode::AlreadyExists, e.to_string()))
            })
            .await;
            result.map(|()| json!({ "binding": out, "applies": "to the next handshake" }))
        }
        "delete sslcert" => {
            if let Err(e) = check_args(args, &["ipport", "hostnameport", "ccs"]) {
                return Some(Err(e));
            }
            let key = match key_of(args) {
                Ok(k) => k,
                Err(e) => return Some(Err(e)),
            };
            let shown = key.to_string();
            commit(daemon, move |c| {
                c.delete_ssl_binding(&key)
                    .map(|_| ())
                    .map_err(|e| (ErrorCode::NotFound, e.to_string()))
            })
            .await
            .map(|()| json!({ "deleted": shown }))
        }
        "show sslcert" => {
            let wanted = if args.is_empty() {
                None
            } else {
                match key_of(args) {
                    Ok(k) => Some(k),
                    Err(e) => return Some(Err(e)),
                }
            };
            let state = daemon.state.lock().await;
            let list: Vec<Value> = state
                .1
                .ssl_bindings
                .iter()
                .filter(|b| wanted.as_ref().is_none_or(|w| *w == b.key))
                .map(binding_json)
                .collect();
            Ok(json!({ "bindings": list }))
        }
        _ => return None,
    })
}

async fn add_cert(
    daemon: &Daemon,
    store: &CertStore,
    args: &BTreeMap<String, String>,
) -> AdminOutcome {
    let (Some(cert), Some(key)) = (args.get("cert_pem"), args.get("key_pem")) else {
        return Err(invalid(
            "add cert needs certfile=PEM and keyfile=PEM (the CLI reads them and sends their contents)",
        ));
    };
    // Serialise with configuration changes: a concurrent delete cert cannot interleave.
    let _state = daemon.state.lock().await;
    match store.import(cert.as_bytes(), key.as_bytes()) {
        Ok(info) => Ok(cert_json(&info, &[])),
        Err(e @ httpq_tls::TlsError::Io { .. }) => Err((ErrorCode::Internal, e.to_string())),
        Err(e) => Err(invalid(e.to_string())),
    }
}
