//! Sans-IO core of httpq: everything about HTTP.sys's semantics that can be decided without a
//! socket or a clock.
//!
//! - [`url_prefix`]: HTTP.sys `UrlPrefix` strings (`http://+:80/app/`).
//! - [`acl`]: URL ACLs (reservations): who may register which prefixes.
//! - [`router`]: the URL-group table and HTTP.sys routing precedence.
//! - [`canonical`]: request-target canonicalisation and URL limits, done before routing.
//! - [`h1`]: the HTTP/1.1 request-head parser with HTTP.sys's parser limits, the chunked
//!   decoder and the response-head encoder.
//! - [`queue`]: request-queue admission and `Http503Verbosity`.
//! - [`options`]: every option with HTTP.sys's default, and their environment form.
//! - [`reason`]: HTTP.sys error-log reason phrases.
//! - [`logging`]: W3C log fields, rollover and file names.
//!
//! Nothing here depends on tokio, and nothing reads the clock: time is always an argument.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod canonical;
pub mod h1;
pub mod h2check;
mod hpack_huffman;
pub mod logging;
pub mod options;
pub mod queue;
pub mod reason;
pub mod router;
pub mod url_prefix;

pub use reason::{Reason, Rejection};
pub use router::{Route, RouteRequest, Router};
pub use url_prefix::{Host, Scheme, UrlPrefix, UrlPrefixError};
