//! HTTP/1.1 message syntax, sans-IO: the request-head parser with HTTP.sys's limits and strict
//! framing, the chunked-body decoder, and the response-head encoder.
//!
//! The head is tokenised by [`httparse`]; everything HTTP.sys decides on top of the tokens
//! (limits, framing, Host rules, reason phrases) is here. The engine feeds bytes in and acts on
//! the results; nothing here touches a socket.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use std::mem::MaybeUninit;

use crate::reason::{Reason, Rejection};

/// HTTP.sys's request-head parser limits (registry `HTTP\Parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Longest header line, and longest request target (`MaxFieldLength`, 16384).
    pub max_field_length: usize,
    /// Longest request line plus headers (`MaxRequestBytes`, 16384).
    pub max_request_bytes: usize,
    /// Most header lines in one request (ASP.NET's HttpSys: 1000).
    pub max_headers: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_field_length: 16384,
            max_request_bytes: 16384,
            max_headers: 1000,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes follow (0: no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target exactly as sent (not yet canonicalised), sharing the head's bytes.
    pub target: Bytes,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The headers, in order, duplicates kept.
    pub headers: HeaderMap,
    /// Body framing.
    pub framing: BodyFraming,
    /// Whether the connection may stay open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
    pub upgrade: bool,
}

/// Parses one request head from the front of `buf`. On success the head's bytes are split
/// off `buf` (what follows, a body or the next pipelined request, stays) and the target and
/// header values share them without copying.
///
/// Returns `Ok(None)` when more bytes are needed (and the limits still allow them).
///
/// # Errors
/// A [`Rejection`] with the HTTP.sys reason: the engine answers its status and closes.
pub fn parse_request_head(
    buf: &mut BytesMut,
    limits: &ParserLimits,
) -> Result<Option<RequestHead>, Rejection> {
    parse_request_head_reusing(buf, limits, &mut HeaderMap::new())
}

/// [`parse_request_head`], building the head's header map in `spare` (an earlier exchange's
/// map, or an empty one that holds no allocation): a connection that recycles its response's
/// map saves the two allocations of a new one per request, as hyper does. A complete head
/// takes `spare`, leaving an empty map in its place.
///
/// # Errors
/// As [`parse_request_head`].
pub fn parse_request_head_reusing(
    buf: &mut BytesMut,
    limits: &ParserLimits,
    spare: &mut HeaderMap,
) -> Result<Option<RequestHead>, Rejection> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    while buf.starts_with(b"\r\n") {
        buf.advance(2);
    }
    let Some(head_len) = find_head_end(buf)? else {
        if buf.len() > limits.max_request_bytes {
            return Err(request_too_long(limits));
        }
        return Ok(None);
    };
    if head_len > limits.max_request_bytes {
        return Err(request_too_long(limits));
    }
    let head = buf.split_to(head_len).freeze();
    // Stack room for typical requests; the rare request with more headers is parsed again
    // with room for exactly the limit.
    let mut small: [MaybeUninit<httparse::Header<'_>>; 64] = [const { MaybeUninit::uninit() }; 64];
    match parse_with(&head, limits, &mut small, spare) {
        Err(Some(r)) => Err(r),
        Ok(v) => Ok(Some(v)),
        Err(None) => {
            let mut big = Vec::with_capacity(limits.max_headers.saturating_add(1));
            big.resize_with(limits.max_headers.saturating_add(1), MaybeUninit::uninit);
            match parse_with(&head, limits, &mut big, spare) {
                Ok(v) => Ok(Some(v)),
                Err(Some(r)) => Err(r),
                Err(None) => Err(too_many_headers(limits)),
            }
        }
    }
}

/// Finds the end of the head (just past the empty line), checking on the way that every line
/// ends in CRLF: HTTP.sys refuses a bare CR or LF. It jumps from one CR or LF to the next
/// (`memchr2`, vectorised), so it costs per line, not per byte.
fn find_head_end(buf: &[u8]) -> Result<Option<usize>, Rejection> {
    let mut line_start = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr2(b'\r', b'\n', &buf[at..]) {
        let i = at + found;
        if buf[i] == b'\n' {
            // An LF not right after a CR (those are consumed with their CR below).
            return Err(bare_cr_lf());
        }
        match buf.get(i + 1) {
            // The CR is the last byte so far: the LF may still come.
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(bare_cr_lf()),
        }
        if i == line_start {
            return Ok(Some(i + 2));
        }
        line_start = i + 2;
        at = i + 2;
    }
    Ok(None)
}

fn bare_cr_lf() -> Rejection {
    Rejection::new(
        Reason::InvalidCrLf,
        "the request head contains a bare CR or LF; lines must end with CRLF",
    )
}

/// Parses a complete head. `Err(None)`: too many headers for `slots`.
fn parse_with<'b>(
    head: &'b Bytes,
    limits: &ParserLimits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    spare: &mut HeaderMap,
) -> Result<RequestHead, Option<Rejection>> {
    let mut req = httparse::Request::new(&mut []);
    let status =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, head, slots);
    match status {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => {
            return Err(Some(Rejection::new(
                Reason::BadRequest,
                "the request head is malformed",
            )));
        }
        Err(httparse::Error::TooManyHeaders) => {
            if slots.len() > limits.max_headers {
                return Err(Some(too_many_headers(limits)));
            }
            return Err(None);
        }
        Err(e) => return Err(Some(parse_error(e))),
    }
    if req.headers.len() > limits.max_headers {
        return Err(Some(too_many_headers(limits)));
    }
    let path = req.path.unwrap_or("");
    if path.len() > limits.max_field_length {
        return Err(Some(Rejection::new(
            Reason::UrlLength,
            format!(
                "the request target is {} bytes long; the limit (max_field_length) is {}",
                path.len(),
                limits.max_field_length
            ),
        )));
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes()).map_err(|_| {
        Some(Rejection::new(
            Reason::Verb,
            "the request method is not a valid token",
        ))
    })?;

    // Fallible: a configured max_headers above what a map can hold is refused, not a panic.
    let mut map = std::mem::take(spare);
    if !map.is_empty() {
        map.clear();
    }
    let headers = map.try_reserve(req.headers.len()).map(|()| map);
    let mut headers = headers.map_err(|_| {
        Some(Rejection::new(
            Reason::Header,
            format!(
                "the request has {} header lines, more than a header map can hold",
                req.headers.len()
            ),
        ))
    })?;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut expect_continue = false;
    let mut hosts = 0usize;
    for h in req.headers.iter() {
        let line_len = h.name.len() + 2 + h.value.len();
        if line_len > limits.max_field_length {
            return Err(Some(Rejection::new(
                Reason::FieldLength,
                format!(
                    "header {:?} is {line_len} bytes long; the limit (max_field_length) is {}",
                    h.name, limits.max_field_length
                ),
            )));
        }
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            Some(Rejection::new(
                Reason::Header,
                format!("header name {:?} is not a valid token", h.name),
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value)).map_err(|_| {
            Some(Rejection::new(
                Reason::Header,
                format!("header {:?} has a value with invalid bytes", h.name),
            ))
        })?;
        if name == header::CONTENT_LENGTH {
            if content_length.is_some() {
                return Err(Some(Rejection::new(
                    Reason::Number,
                    "the request has more than one Content-Length header",
                )));
            }
            content_length = Some(parse_content_length(h.value)?);
        } else if name == header::TRANSFER_ENCODING {
            te_seen = true;
            for coding in h.value.split(|b| *b == b',') {
                let coding = trim(coding);
                if coding.is_empty() {
                    continue;
                }
                if chunked {
                    // Anything after chunked makes the framing ambiguous.
                    return Err(Some(Rejection::new(
                        Reason::BadRequest,
                        "Transfer-Encoding lists a coding after \"chunked\"",
                    )));
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    return Err(Some(Rejection::new(
                        Reason::NotImplemented,
                        format!(
                            "transfer coding {:?} is not supported; only \"chunked\" is",
                            String::from_utf8_lossy(coding)
                        ),
                    )));
                }
            }
        } else if name == header::CONNECTION {
            for token in h.value.split(|b| *b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    conn_upgrade = true;
                }
            }
        } else if name == header::EXPECT {
            expect_continue = trim(h.value).eq_ignore_ascii_case(b"100-continue");
        } else if name == header::HOST {
            hosts += 1;
        }
        headers.append(name, value);
    }

    if te_seen && !chunked {
        return Err(Some(Rejection::new(
            Reason::BadRequest,
            "Transfer-Encoding is present but does not end in \"chunked\"",
        )));
    }
    if chunked && content_length.is_some() {
        return Err(Some(Rejection::new(
            Reason::Number,
            "the request has both Content-Length and Transfer-Encoding; the framing is ambiguous",
        )));
    }
    if chunked && version == Version::HTTP_10 {
        return Err(Some(Rejection::new(
            Reason::BadRequest,
            "Transfer-Encoding is not allowed in an HTTP/1.0 request",
        )));
    }
    if hosts > 1 {
        return Err(Some(Rejection::new(
            Reason::Hostname,
            "the request has more than one Host header",
        )));
    }
    if hosts == 0 && version == Version::HTTP_11 {
        return Err(Some(Rejection::new(
            Reason::Hostname,
            "an HTTP/1.1 request must carry a Host header",
        )));
    }
    let framing = if chunked {
        BodyFraming::Chunked
    } else {
        BodyFraming::Length(content_length.unwrap_or(0))
    };
    let keep_alive = match version {
        Version::HTTP_10 => conn_keep_alive && !conn_close,
        _ => !conn_close,
    };
    let upgrade = conn_upgrade && headers.contains_key(header::UPGRADE);
    Ok(RequestHead {
        method,
        target: head.slice_ref(path.as_bytes()),
        version,
        headers,
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::HTTP_11,
        upgrade,
    })
}

fn too_many_headers(limits: &ParserLimits) -> Rejection {
    Rejection::new(
        Reason::Header,
        format!(
            "the request has more than {} header lines (max_headers)",
            limits.max_headers
        ),
    )
}

fn request_too_long(limits: &ParserLimits) -> Rejection {
    Rejection::new(
        Reason::RequestLength,
        format!(
            "the request line and headers exceed {} bytes (max_request_bytes)",
            limits.max_request_bytes
        ),
    )
}

fn parse_error(e: httparse::Error) -> Rejection {
    match e {
        httparse::Error::Version => Rejection::new(
            Reason::VersionNotSupported,
            "the HTTP version is not supported; use HTTP/1.0 or HTTP/1.1",
        ),
        httparse::Error::Token => {
            Rejection::new(Reason::Verb, "the request method is not a valid token")
        }
        httparse::Error::HeaderName => Rejection::new(
            Reason::Header,
            "a header name is malformed (or a line is folded, which is not allowed)",
        ),
        httparse::Error::HeaderValue => {
            Rejection::new(Reason::Header, "a header value contains invalid bytes")
        }
        httparse::Error::NewLine | httparse::Error::Status => {
            Rejection::new(Reason::InvalidCrLf, "a line is not terminated by CRLF")
        }
        _ => Rejection::new(Reason::Url, "the request line is malformed"),
    }
}

/// HTTP.sys requires CRLF everywhere: a bare CR or a bare LF is refused.
fn check_line_endings(head: &[u8]) -> Result<(), Option<Rejection>> {
    let mut prev = 0u8;
    for &b in head {
        let bad = (b == b'\n' && prev != b'\r') || (prev == b'\r' && b != b'\n');
        if bad {
            return Err(Some(Rejection::new(
                Reason::InvalidCrLf,
                "the request head contains a bare CR or LF; lines must end with CRLF",
            )));
        }
        prev = b;
    }
    Ok(())
}

fn parse_content_length(v: &[u8]) -> Result<u64, Option<Rejection>> {
    let bad = || {
        Some(Rejection::new(
            Reason::Number,
            format!(
                "Content-Length {:?} is not a single decimal number",
                String::from_utf8_lossy(v)
            ),
        ))
    };
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    v.iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(bad)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// One step of chunked decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkedEvent {
    /// Body bytes.
    Data(Bytes),
    /// The final chunk and trailer section were read; the trailers (maybe empty).
    End(HeaderMap),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size { digits: u8, value: u64 },
    Extension(Ext),
    SizeLf,
    Data { remaining: u64 },
    DataCr,
    DataLf,
    Trailers,
    Done,
}

/// Where the decoder is inside a chunk's extensions (RFC 9112 §7.1.1):
/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, where a name is a
/// token and a value a token or a quoted-string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Whitespace that must be followed by `;`.
    BeforeSemicolon,
    /// After `;`: whitespace, then a name.
    BeforeName,
    Name,
    /// Whitespace after a name: `=` or `;` follows.
    AfterName,
    /// After `=`: whitespace, then a value.
    BeforeValue,
    TokenValue,
    Quoted,
    QuotedPair,
    /// After the closing quote: whitespace, `;` or the end of the line.
    AfterQuoted,
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Ext {
    /// The state after `b`; `None` when `b` cannot come here (CR is handled by the caller).
    fn next(self, b: u8) -> Option<Ext> {
        let ws = b == b' ' || b == b'\t';
        Some(match (self, b) {
            (Ext::BeforeSemicolon | Ext::AfterQuoted, _) if ws => Ext::BeforeSemicolon,
            (Ext::BeforeName, _) if ws => Ext::BeforeName,
            (Ext::Name | Ext::AfterName, _) if ws => Ext::AfterName,
            (Ext::BeforeValue, _) if ws => Ext::BeforeValue,
            (Ext::TokenValue, _) if ws => Ext::BeforeSemicolon,
            (
                Ext::BeforeSemicolon
                | Ext::Name
                | Ext::AfterName
                | Ext::TokenValue
                | Ext::AfterQuoted,
                b';',
            ) => Ext::BeforeName,
            (Ext::BeforeName | Ext::Name, _) if is_tchar(b) => Ext::Name,
            (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
            (Ext::BeforeValue | Ext::TokenValue, _) if is_tchar(b) => Ext::TokenValue,
            (Ext::BeforeValue, b'"') => Ext::Quoted,
            (Ext::Quoted, b'"') => Ext::AfterQuoted,
            (Ext::Quoted, b'\\') => Ext::QuotedPair,
            // qdtext: HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text.
            (Ext::Quoted, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF) => {
                Ext::Quoted
            }
            // quoted-pair: HTAB, SP, VCHAR, obs-text.
            (Ext::QuotedPair, b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF) => Ext::Quoted,
            _ => return None,
        })
    }

    /// Whether the line may end here.
    fn may_end(self) -> bool {
        matches!(self, Ext::Name | Ext::TokenValue | Ext::AfterQuoted)
    }
}

/// Sans-IO decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1), strict:
/// CRLF only, at most 16 hex digits, chunk extensions ignored but bounded, trailers bounded by
/// `max_request_bytes` and parsed as headers.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    ext_len: usize,
    pending: u64,
    limits: ParserLimits,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    #[must_use]
    pub fn new(limits: ParserLimits) -> Self {
        ChunkedDecoder {
            state: ChunkState::Size {
                digits: 0,
                value: 0,
            },
            ext_len: 0,
            pending: 0,
            limits,
        }
    }

    /// Whether the terminating chunk and trailers have been consumed.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes framing from `src` and returns the next event, or `None` when more input is
    /// needed. Data is split off `src` without copying; at most `max_data` bytes at a time.
    ///
    /// # Errors
    /// A malformed chunk (reason `BadRequest`/`Number`), or trailers that exceed the limits.
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
        max_data: usize,
    ) -> Result<Option<ChunkedEvent>, Rejection> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(None),
                ChunkState::Data { remaining } => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(src.len())
                        .min(max_data.max(1));
                    let data = src.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data { remaining: left }
                    };
                    return Ok(Some(ChunkedEvent::Data(data)));
                }
                ChunkState::Trailers => {
                    // The trailer section ends with an empty line; parse it as headers.
                    let Some(end) = find_trailer_end(src) else {
                        if src.len() > self.limits.max_request_bytes {
                            return Err(Rejection::new(
                                Reason::RequestLength,
                                "the chunked trailer section exceeds max_request_bytes",
                            ));
                        }
                        return Ok(None);
                    };
                    let block = src.split_to(end);
                    let trailers = parse_trailers(&block, &self.limits)?;
                    self.state = ChunkState::Done;
                    return Ok(Some(ChunkedEvent::End(trailers)));
                }
                _ => {}
            }
            if src.is_empty() {
                return Ok(None);
            }
            let b = src[0];
            src.advance(1);
            self.state = match self.state {
                ChunkState::Size { digits, value } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 16 {
                            return Err(Rejection::new(
                                Reason::Number,
                                "a chunk size has more than 16 hex digits",
                            ));
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0);
                        ChunkState::Size {
                            digits: digits + 1,
                            value: (value << 4) | u64::from(d),
                        }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => {
                        self.ext_len = 1;
                        self.pending_size(value);
                        ChunkState::Extension(if b == b';' {
                            Ext::BeforeName
                        } else {
                            Ext::BeforeSemicolon
                        })
                    }
                    b'\r' if digits > 0 => {
                        self.pending_size(value);
                        ChunkState::SizeLf
                    }
                    _ => {
                        return Err(Rejection::new(
                            Reason::Number,
                            "a chunk size is not a hexadecimal number",
                        ));
                    }
                },
                ChunkState::Extension(ext) => match b {
                    b'\r' if ext.may_end() => ChunkState::SizeLf,
                    b'\n' => return Err(bare_lf()),
                    _ => {
                        self.ext_len += 1;
                        if self.ext_len > self.limits.max_field_length {
                            return Err(Rejection::new(
                                Reason::FieldLength,
                                "a chunk extension exceeds max_field_length",
                            ));
                        }
                        match ext.next(b) {
                            Some(next) => ChunkState::Extension(next),
                            None => {
                                return Err(Rejection::new(
                                    Reason::BadRequest,
                                    "a chunk extension does not follow RFC 9112 §7.1.1 (; name, optionally = token or \"quoted string\")",
                                ));
                            }
                        }
                    }
                },
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(bare_lf());
                    }
                    let size = self.take_size();
                    if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data { remaining: size }
                    }
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(Rejection::new(
                            Reason::BadRequest,
                            "chunk data is longer than its declared size",
                        ));
                    }
                    ChunkState::DataLf
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(bare_lf());
                    }
                    ChunkState::Size {
                        digits: 0,
                        value: 0,
                    }
                }
                s @ (ChunkState::Data { .. } | ChunkState::Trailers | ChunkState::Done) => s,
            };
        }
    }

    fn pending_size(&mut self, value: u64) {
        self.pending = value;
    }

    fn take_size(&mut self) -> u64 {
        std::mem::take(&mut self.pending)
    }
}

fn bare_lf() -> Rejection {
    Rejection::new(
        Reason::InvalidCrLf,
        "the chunked body has a bare CR or LF; lines must end with CRLF",
    )
}

/// The trailer section is either an empty line (`\r\n`) or header lines ending in `\r\n\r\n`.
fn find_trailer_end(src: &[u8]) -> Option<usize> {
    if src.starts_with(b"\r\n") {
        return Some(2);
    }
    src.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_trailers(block: &[u8], limits: &ParserLimits) -> Result<HeaderMap, Rejection> {
    let mut map = HeaderMap::new();
    if block == b"\r\n" {
        return Ok(map);
    }
    check_line_endings(block).map_err(|r| r.unwrap_or_else(bare_lf))?;
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers.clamp(1, 1000)];
    let parsed = httparse::parse_headers(block, &mut slots)
        .map_err(|_| Rejection::new(Reason::Header, "the chunked trailer section is malformed"))?;
    let httparse::Status::Complete((_, headers)) = parsed else {
        return Err(Rejection::new(
            Reason::Header,
            "the chunked trailer section is incomplete",
        ));
    };
    for h in headers {
        if h.name.len() + 2 + h.value.len() > limits.max_field_length {
            return Err(Rejection::new(
                Reason::FieldLength,
                format!("trailer {:?} exceeds max_field_length", h.name),
            ));
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Err(Rejection::new(
                Reason::Header,
                format!("trailer {:?} is malformed", h.name),
            ));
        };
        map.append(name, value);
    }
    Ok(map)
}

/// Whether the connection stays open after a response, and how to say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 keep-alive, the default: nothing to say.
    KeepAlive,
    /// An HTTP/1.0 client asked for keep-alive: answer `Connection: keep-alive`.
    KeepAliveHttp10,
    /// The connection closes after this response: `Connection: close`.
    Close,
}

impl Persistence {
    /// The persistence for a response to a request of `version`.
    #[must_use]
    pub fn for_response(keep_alive: bool, version: Version) -> Self {
        match (keep_alive, version) {
            (false, _) => Persistence::Close,
            (true, Version::HTTP_10) => Persistence::KeepAliveHttp10,
            (true, _) => Persistence::KeepAlive,
        }
    }
}

/// How a response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body is sent (HEAD, 1xx, 204, 304), whatever the headers say.
    NoBody,
    /// `Content-Length` bytes follow.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body runs until the connection closes (HTTP/1.0 peers with an unknown length).
    CloseDelimited,
}

/// Whether a response with this status may carry a body: 1xx, 204 and 304 never do
/// (RFC 9110 §6.4.1), on any HTTP version.
#[must_use]
pub fn status_allows_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Chooses the framing of a response and whether the connection can stay open.
///
/// `body_len` is the body's exact length when known. A `Content-Length` the application set
/// itself is honoured (the engine then checks the body matches it).
#[must_use]
pub fn response_framing(
    request_method: &Method,
    request_version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    body_len: Option<u64>,
) -> ResponseFraming {
    if !status_allows_body(status) {
        return ResponseFraming::NoBody;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if *request_method == Method::HEAD {
        return ResponseFraming::NoBody;
    }
    match declared.or(body_len) {
        Some(n) => ResponseFraming::Length(n),
        None if request_version == Version::HTTP_11 => ResponseFraming::Chunked,
        None => ResponseFraming::CloseDelimited,
    }
}

/// Writes a response head: status line, the application's headers (minus the framing headers
/// the engine owns), `Date`, framing and `Connection`.
///
/// `head_length` is the Content-Length to announce for a HEAD response, when known.
#[allow(clippy::too_many_arguments)]
pub fn encode_response_head(
    dst: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    framing: ResponseFraming,
    head_length: Option<u64>,
    persistence: Persistence,
    date: &[u8],
) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.extend_from_slice(b"\r\n");
    let mut has_date = false;
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        has_date |= name == header::DATE;
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    if !has_date {
        dst.extend_from_slice(b"date: ");
        dst.extend_from_slice(date);
        dst.extend_from_slice(b"\r\n");
    }
    let mut itoa = [0u8; 20];
    match framing {
        ResponseFraming::Length(n) => {
            dst.extend_from_slice(b"content-length: ");
            dst.extend_from_slice(fmt_u64(n, &mut itoa));
            dst.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::NoBody => {
            if let Some(n) = head_length {
                if status != StatusCode::NO_CONTENT && !status.is_informational() {
                    dst.extend_from_slice(b"content-length: ");
                    dst.extend_from_slice(fmt_u64(n, &mut itoa));
                    dst.extend_from_slice(b"\r\n");
                }
            }
        }
        ResponseFraming::CloseDelimited => {}
    }
    if persistence == Persistence::Close || framing == ResponseFraming::CloseDelimited {
        dst.extend_from_slice(b"connection: close\r\n");
    } else if persistence == Persistence::KeepAliveHttp10 {
        dst.extend_from_slice(b"connection: keep-alive\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Writes the size line of one chunk.
pub fn encode_chunk_size(dst: &mut BytesMut, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 18];
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    dst.extend_from_slice(&buf[i..]);
}

/// Writes the last chunk and the trailer section.
pub fn encode_last_chunk(dst: &mut BytesMut, trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    if let Some(t) = trailers {
        for (name, value) in t {
            dst.extend_from_slice(name.as_str().as_bytes());
            dst.extend_from_slice(b": ");
            dst.extend_from_slice(value.as_bytes());
            dst.extend_from_slice(b"\r\n");
        }
    }
    dst.extend_from_slice(b"\r\n");
}

/// A minimal response the listener writes itself (errors), with a plain-text reason.
#[must_use]
pub fn listener_response(status: u16, body: &str, date: &[u8]) -> Vec<u8> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut out = BytesMut::with_capacity(160 + body.len());
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    encode_response_head(
        &mut out,
        status,
        &headers,
        ResponseFraming::Length(body.len() as u64),
        None,
        Persistence::Close,
        date,
    );
    out.extend_from_slice(body.as_bytes());
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time scan `find_head_end` replaced: the reference it must agree with.
    fn find_head_end_bytewise(buf: &[u8]) -> Result<Option<usize>, ()> {
        let mut line_start = 0;
        let mut prev = 0u8;
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                if prev != b'\r' {
                    return Err(());
                }
                if i == line_start + 1 {
                    return Ok(Some(i + 1));
                }
                line_start = i + 1;
            } else if prev == b'\r' {
                return Err(());
            }
            prev = b;
        }
        Ok(None)
    }

    proptest::proptest! {
        #[test]
        fn the_head_end_scan_agrees_with_a_byte_at_a_time_scan(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'a'),
                    proptest::strategy::Just(b':'),
                ],
                0..64,
            )
        ) {
            let ours = find_head_end(&bytes).map_err(|_| ());
            proptest::prop_assert_eq!(ours, find_head_end_bytewise(&bytes));
        }
    }

    fn parse(s: &str) -> Result<Option<RequestHead>, Rejection> {
        parse_request_head(&mut BytesMut::from(s), &ParserLimits::default())
    }

    fn parse_limited(s: &str, limits: &ParserLimits) -> Result<Option<RequestHead>, Rejection> {
        parse_request_head(&mut BytesMut::from(s), limits)
    }

    fn reason(s: &str) -> Reason {
        parse(s).expect_err("must be rejected").reason
    }

    #[test]
    fn a_recycled_map_holds_only_the_new_heads_headers() {
        let limits = ParserLimits::default();
        // The last response's map, not emptied by whoever handed it back.
        let mut old = HeaderMap::with_capacity(16);
        old.insert(
            header::SET_COOKIE,
            HeaderValue::from_static("session=victim"),
        );
        old.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        let capacity = old.capacity();
        let mut spare = old;
        let mut buf = BytesMut::from("GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
        // An incomplete head leaves the spare map where it is.
        let mut partial = BytesMut::from("GET / HTTP/1.1\r\nHost: a\r\n");
        assert!(
            parse_request_head_reusing(&mut partial, &limits, &mut spare)
                .expect("a valid partial head")
                .is_none()
        );
        assert_eq!(
            spare.len(),
            2,
            "an incomplete head leaves the spare map alone"
        );
        let head = parse_request_head_reusing(&mut buf, &limits, &mut spare)
            .expect("a valid head")
            .expect("a complete head");
        assert_eq!(spare.capacity(), 0, "a complete head takes the spare map");
        let names: Vec<_> = head.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["host", "accept"]);
        assert_eq!(head.framing, BodyFraming::Length(0));
        assert_eq!(
            head.headers.capacity(),
            capacity,
            "the allocation is reused"
        );
    }

    #[test]
    fn parses_a_simple_get() {
        let mut input = BytesMut::from("\r\nGET /a?b HTTP/1.1\r\nHost: x\r\n\r\nrest");
        let h = parse_request_head(&mut input, &ParserLimits::default())
            .expect("ok")
            .expect("complete");
        assert_eq!(&h.target[..], b"/a?b");
        assert_eq!(&input[..], b"rest");
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.framing, BodyFraming::Length(0));
        assert!(h.keep_alive);
    }

    #[test]
    fn partial_head_needs_more() {
        assert!(parse("GET / HTTP/1.1\r\nHo").expect("ok").is_none());
    }

    #[test]
    fn framing_ambiguities_are_rejected() {
        assert_eq!(
            reason(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Reason::Number
        );
        assert_eq!(
            reason("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            Reason::Number
        );
        assert_eq!(
            reason("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n"),
            Reason::Number
        );
        assert_eq!(
            reason("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,1\r\n\r\n"),
            Reason::Number
        );
        assert_eq!(
            reason("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Reason::NotImplemented
        );
        assert_eq!(
            reason("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Reason::BadRequest
        );
    }

    #[test]
    fn line_ending_and_folding_are_strict() {
        assert_eq!(
            reason("GET / HTTP/1.1\r\nHost: x\nA: b\r\n\r\n"),
            Reason::InvalidCrLf
        );
        assert_eq!(
            reason("GET / HTTP/1.1\r\nHost: x\rA: b\r\n\r\n"),
            Reason::InvalidCrLf
        );
        assert_eq!(
            reason("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n"),
            Reason::Header
        );
        assert_eq!(
            reason("GET / HTTP/1.1\r\nHost: x\r\nA: b\x01c\r\n\r\n"),
            Reason::Header
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(reason("GET / HTTP/1.1\r\n\r\n"), Reason::Hostname);
        assert_eq!(
            reason("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Reason::Hostname
        );
        assert!(parse("GET / HTTP/1.0\r\n\r\n").expect("ok").is_some());
    }

    #[test]
    fn limits() {
        let limits = ParserLimits {
            max_field_length: 100,
            max_request_bytes: 300,
            max_headers: 3,
        };
        let long = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n",
            "v".repeat(120)
        );
        assert_eq!(
            parse_limited(&long, &limits)
                .expect_err("long field")
                .reason,
            Reason::FieldLength
        );
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}", "v".repeat(400));
        assert_eq!(
            parse_limited(&big, &limits).expect_err("too long").reason,
            Reason::RequestLength
        );
        let many = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            parse_limited(many, &limits).expect_err("many").reason,
            Reason::Header
        );
        let url = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(120));
        assert_eq!(
            parse_limited(&url, &limits).expect_err("url").reason,
            Reason::UrlLength
        );
    }

    #[test]
    fn more_than_64_headers_use_the_slow_path() {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..200 {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(parse(&s).expect("ok").expect("complete").headers.len(), 201);
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..1000 {
            s.push_str(&format!("X{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(reason(&s), Reason::Header);
    }

    #[test]
    fn version_and_keep_alive() {
        assert_eq!(
            reason("GET / HTTP/2.0\r\n\r\n"),
            Reason::VersionNotSupported
        );
        let h = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!h.keep_alive);
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, HeaderMap, usize), Rejection> {
        let mut d = ChunkedDecoder::new(ParserLimits::default());
        let mut src = BytesMut::from(input);
        let mut body = Vec::new();
        loop {
            match d.decode(&mut src, 3)? {
                Some(ChunkedEvent::Data(b)) => body.extend_from_slice(&b),
                Some(ChunkedEvent::End(t)) => return Ok((body, t, src.len())),
                None => panic!("incomplete"),
            }
        }
    }

    #[test]
    fn chunked_decodes_with_extensions_and_trailers() {
        let (body, trailers, rest) =
            decode_all(b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\nNEXT").expect("ok");
        assert_eq!(body, b"hello world");
        assert_eq!(trailers.get("t").map(|v| v.as_bytes()), Some(&b"v"[..]));
        assert_eq!(rest, 4);
    }

    #[test]
    fn chunk_extensions_follow_the_rfc_grammar() {
        for ok in [
            &b"5;x\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; x = y\r\nhello\r\n0\r\n\r\n",
            b"5;a=b;c;d=\"q \\\" \xe9\"\r\nhello\r\n0;last\r\n\r\n",
            b"5\t;\tx\r\nhello\r\n0\r\n\r\n",
        ] {
            let (body, _, _) = decode_all(ok)
                .unwrap_or_else(|e| panic!("{:?} must decode: {e:?}", String::from_utf8_lossy(ok)));
            assert_eq!(body, b"hello");
        }
        for bad in [
            &b"5 junk\"\x01\r\nhello\r\n0\r\n\r\n"[..],
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;x=\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5;x=\"open\r\nhello\r\n0\r\n\r\n",
            b"5;x=y z\r\nhello\r\n0\r\n\r\n",
            b"5;x\x00\r\nhello\r\n0\r\n\r\n",
            b"5;(x)\r\nhello\r\n0\r\n\r\n",
        ] {
            let err = decode_all(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(err.reason, Reason::BadRequest, "{err:?}");
        }
    }

    #[test]
    fn chunked_byte_by_byte() {
        let input = b"A\r\n0123456789\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new(ParserLimits::default());
        let mut src = BytesMut::new();
        let mut body = Vec::new();
        let mut done = false;
        for &b in input {
            src.extend_from_slice(&[b]);
            while let Some(ev) = d.decode(&mut src, 64).expect("valid") {
                match ev {
                    ChunkedEvent::Data(b) => body.extend_from_slice(&b),
                    ChunkedEvent::End(_) => done = true,
                }
            }
        }
        assert!(done && d.is_done());
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn chunked_rejects_bad_framing() {
        assert!(decode_all(b"5\r\nhelloX\r\n0\r\n\r\n").is_err());
        assert!(decode_all(b"zz\r\n").is_err());
        assert!(decode_all(b"5\nhello\r\n0\r\n\r\n").is_err());
        assert!(decode_all(b"11111111111111111\r\n").is_err());
        assert!(decode_all(b"\r\n").is_err());
    }

    #[test]
    fn response_head_encoding() {
        let mut out = BytesMut::new();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("bogus"));
        encode_response_head(
            &mut out,
            StatusCode::OK,
            &h,
            ResponseFraming::Length(5),
            None,
            Persistence::KeepAlive,
            b"D",
        );
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: D\r\ncontent-length: 5\r\n\r\n"
        );
        let mut out = BytesMut::new();
        let persistence = Persistence::for_response(true, Version::HTTP_10);
        encode_response_head(
            &mut out,
            StatusCode::NO_CONTENT,
            &h,
            ResponseFraming::NoBody,
            None,
            persistence,
            b"D",
        );
        assert!(out.ends_with(b"connection: keep-alive\r\n\r\n"));
        let mut out = BytesMut::new();
        encode_chunk_size(&mut out, 255);
        encode_last_chunk(&mut out, None);
        assert_eq!(&out[..], b"ff\r\n0\r\n\r\n");
    }

    #[test]
    fn framing_choice() {
        let h = HeaderMap::new();
        let f = |m: Method, v, s: u16, len| {
            response_framing(&m, v, StatusCode::from_u16(s).expect("status"), &h, len)
        };
        assert_eq!(
            f(Method::GET, Version::HTTP_11, 200, Some(3)),
            ResponseFraming::Length(3)
        );
        assert_eq!(
            f(Method::GET, Version::HTTP_11, 200, None),
            ResponseFraming::Chunked
        );
        assert_eq!(
            f(Method::GET, Version::HTTP_10, 200, None),
            ResponseFraming::CloseDelimited
        );
        assert_eq!(
            f(Method::HEAD, Version::HTTP_11, 200, Some(3)),
            ResponseFraming::NoBody
        );
        assert_eq!(
            f(Method::GET, Version::HTTP_11, 204, Some(0)),
            ResponseFraming::NoBody
        );
        assert_eq!(
            f(Method::GET, Version::HTTP_11, 304, None),
            ResponseFraming::NoBody
        );
    }

    proptest::proptest! {
        /// No input, however malformed, makes the head parser or the chunked decoder panic.
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let limits = ParserLimits { max_field_length: 64, max_request_bytes: 256, max_headers: 4 };
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = parse_request_head(&mut buf, &limits);
            let mut prefixed = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]);
            prefixed.extend_from_slice(&bytes);
            let _ = parse_request_head(&mut prefixed, &ParserLimits::default());
            let mut dec = ChunkedDecoder::new(limits);
            let mut src = BytesMut::from(&bytes[..]);
            while let Ok(Some(ev)) = dec.decode(&mut src, 7) {
                if matches!(ev, ChunkedEvent::End(_)) {
                    break;
                }
            }
        }

        /// Chunked encoding of any data decodes back to it, whatever the read boundaries.
        #[test]
        fn chunked_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40), 0..8), split in 1usize..16) {
            let mut wire = BytesMut::new();
            for c in &chunks {
                encode_chunk_size(&mut wire, c.len());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            encode_last_chunk(&mut wire, None);
            let mut dec = ChunkedDecoder::new(ParserLimits::default());
            let mut src = BytesMut::new();
            let mut out = Vec::new();
            let mut ended = false;
            for piece in wire.chunks(split) {
                src.extend_from_slice(piece);
                while let Some(ev) = dec.decode(&mut src, 5).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))? {
                    match ev {
                        ChunkedEvent::Data(d) => out.extend_from_slice(&d),
                        ChunkedEvent::End(_) => ended = true,
                    }
                }
            }
            proptest::prop_assert!(ended);
            proptest::prop_assert_eq!(out, chunks.concat());
        }
    }
}
