//! The payload primitives of `docs/wire-protocol.md` §3: fixed-width little-endian integers,
//! `bytes`, `str`, `opt<T>`, `headers` and `addr`.
//!
//! [`Reader`] checks every length against what is left of the payload before it takes or
//! allocates anything, so a peer cannot make the decoder allocate more than the frame it sent.
//! The `put_*` functions are the encoder side; the `*_len` functions give the exact encoded size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::decode::DecodeError;
use crate::frame::FrameType;

/// Smallest encoded header entry: a u16 name length and a u32 value length.
const MIN_HEADER_ENTRY: usize = 2 + 4;

/// The most fields one `headers` list may carry (wire spec §3): below the ~24,000 distinct
/// names an `http::HeaderMap` holds, and far above what any head needs (HTTP.sys's 16 KiB
/// request head holds ~4,000).
pub const MAX_HEADER_FIELDS: usize = 16_384;

/// The most fields a decoded map reserves room for before it sees them: a list of one name
/// repeated needs one entry, so a large count alone does not make the decoder allocate.
const RESERVE_FIELDS: usize = 64;

/// Address family tag for IPv4 in `addr`.
pub(crate) const FAMILY_V4: u8 = 4;
/// Address family tag for IPv6 in `addr`.
pub(crate) const FAMILY_V6: u8 = 6;

/// Consumes one frame payload from the front. Slices share the payload's buffer (no copies).
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(payload: Bytes) -> Self {
        Self { buf: payload }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16_le())
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32_le())
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64_le())
    }

    /// `n` raw bytes, zero-copy.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        self.need(n, field)?;
        Ok(self.buf.split_to(n))
    }

    /// Everything that is left, zero-copy (data frames).
    pub(crate) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }

    /// `bytes`: u32 length, then that many bytes.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)?;
        self.take(len as usize, field)
    }

    /// `str`: `bytes` that must be UTF-8.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let raw = self.bytes(field)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// The presence byte of `opt<T>`: 0 absent, 1 present, anything else is an error.
    pub(crate) fn present(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidValue {
                field,
                value: u64::from(other),
            }),
        }
    }

    /// A u16 element count, checked against the smallest possible element size so the
    /// returned capacity is always backed by payload bytes.
    pub(crate) fn count(
        &mut self,
        min_element: usize,
        field: &'static str,
    ) -> Result<usize, DecodeError> {
        let count = usize::from(self.u16(field)?);
        if count.saturating_mul(min_element) > self.remaining() {
            return Err(DecodeError::Truncated { field });
        }
        Ok(count)
    }

    /// `headers`: u16 count, then count × (u16-length name, u32-length value), straight into
    /// the map the head is used as (a name's values keep their order).
    pub(crate) fn headers(&mut self, field: &'static str) -> Result<HeaderMap, DecodeError> {
        let count = self.count(MIN_HEADER_ENTRY, field)?;
        if count > MAX_HEADER_FIELDS {
            return Err(DecodeError::TooManyHeaders { field, count });
        }
        // The map's own limit (its index table, which names built to collide can fill before
        // MAX_HEADER_FIELDS): an error, never `append`'s panic.
        let full = |_| DecodeError::HeaderMapFull { field };
        let mut headers = HeaderMap::try_with_capacity(count.min(RESERVE_FIELDS)).map_err(full)?;
        for _ in 0..count {
            let name_len = self.u16(field)?;
            let name = self.take(usize::from(name_len), field)?;
            let name = HeaderName::from_bytes(&name)
                .map_err(|_| DecodeError::InvalidHeaderName { field })?;
            let value = self.bytes(field)?;
            let value = HeaderValue::from_maybe_shared(value)
                .map_err(|_| DecodeError::InvalidHeaderValue { field })?;
            headers.try_append(name, value).map_err(full)?;
        }
        Ok(headers)
    }

    /// `addr`: u8 family (4 or 6), the address, u16 port.
    pub(crate) fn addr(&mut self, field: &'static str) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8(field)? {
            FAMILY_V4 => {
                let octets = self.u32_be_octets(field)?;
                IpAddr::V4(Ipv4Addr::from(octets))
            }
            FAMILY_V6 => {
                self.need(16, field)?;
                let mut octets = [0u8; 16];
                self.buf.copy_to_slice(&mut octets);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            other => {
                return Err(DecodeError::InvalidValue {
                    field,
                    value: u64::from(other),
                });
            }
        };
        let port = self.u16(field)?;
        Ok(SocketAddr::new(ip, port))
    }

    fn u32_be_octets(&mut self, field: &'static str) -> Result<[u8; 4], DecodeError> {
        self.need(4, field)?;
        let mut octets = [0u8; 4];
        self.buf.copy_to_slice(&mut octets);
        Ok(octets)
    }

    /// Ends the payload: any unread byte is an error.
    pub(crate) fn finish(self, ty: FrameType) -> Result<(), DecodeError> {
        if !self.buf.is_empty() {
            return Err(DecodeError::TrailingBytes {
                ty,
                extra: self.buf.len(),
            });
        }
        Ok(())
    }
}

pub(crate) fn put_bytes(dst: &mut BytesMut, value: &[u8]) {
    // Widths are checked before encoding starts (`Frame::check_widths`).
    dst.put_u32_le(value.len() as u32);
    dst.put_slice(value);
}

pub(crate) fn put_opt_bytes(dst: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        None => dst.put_u8(0),
        Some(value) => {
            dst.put_u8(1);
            put_bytes(dst, value);
        }
    }
}

pub(crate) fn put_headers(dst: &mut BytesMut, headers: &HeaderMap) {
    dst.put_u16_le(headers.len() as u16);
    for (name, value) in headers {
        let name = name.as_str().as_bytes();
        dst.put_u16_le(name.len() as u16);
        dst.put_slice(name);
        put_bytes(dst, value.as_bytes());
    }
}

pub(crate) fn put_addr(dst: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            dst.put_u8(FAMILY_V4);
            dst.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            dst.put_u8(FAMILY_V6);
            dst.put_slice(&ip.octets());
        }
    }
    dst.put_u16_le(addr.port());
}

pub(crate) fn bytes_len(value: &[u8]) -> usize {
    4 + value.len()
}

pub(crate) fn opt_bytes_len(value: Option<&[u8]>) -> usize {
    1 + value.map_or(0, bytes_len)
}

pub(crate) fn headers_len(headers: &HeaderMap) -> usize {
    2 + headers
        .iter()
        .map(|(name, value)| 2 + name.as_str().len() + bytes_len(value.as_bytes()))
        .sum::<usize>()
}

pub(crate) fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use super::*;

    fn reader(bytes: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn addr_round_trips_both_families() {
        for addr in ["192.0.2.7:443", "[2001:db8::7]:8443", "0.0.0.0:0"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = BytesMut::new();
            put_addr(&mut out, &addr);
            assert_eq!(out.len(), addr_len(&addr));
            let mut r = reader(&out);
            assert_eq!(r.addr("a").unwrap(), addr);
            r.finish(FrameType::PING).unwrap();
        }
        // Addresses are in network order, the port little-endian.
        let mut out = BytesMut::new();
        put_addr(&mut out, &"192.0.2.7:443".parse().unwrap());
        assert_eq!(&out[..], &[4, 192, 0, 2, 7, 0xbb, 0x01]);
    }

    #[test]
    fn counts_must_be_backed_by_payload() {
        // 3 elements of at least 6 bytes need 18 bytes; 17 are there.
        let mut bytes = 3u16.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 17]);
        assert_eq!(
            reader(&bytes).count(MIN_HEADER_ENTRY, "h"),
            Err(DecodeError::Truncated { field: "h" })
        );
        bytes.push(0);
        assert_eq!(reader(&bytes).count(MIN_HEADER_ENTRY, "h"), Ok(3));
    }

    #[test]
    fn presence_byte() {
        assert!(!reader(&[0]).present("o").unwrap());
        assert!(reader(&[1]).present("o").unwrap());
        assert_eq!(
            reader(&[2]).present("o"),
            Err(DecodeError::InvalidValue {
                field: "o",
                value: 2
            })
        );
    }

    #[test]
    fn lengths_are_checked_before_taking() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        assert_eq!(
            reader(&bytes).bytes("b"),
            Err(DecodeError::Truncated { field: "b" })
        );
    }

    #[test]
    fn headers_encode_exactly_their_length() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-b", HeaderValue::from_static("2"));
        headers.append("x-a", HeaderValue::from_static(""));
        let mut out = BytesMut::new();
        put_headers(&mut out, &headers);
        assert_eq!(out.len(), headers_len(&headers));
        let back = reader(&out).headers("h").unwrap();
        assert_eq!(back, headers);
        // A name's values keep their order.
        let values: Vec<_> = back.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", ""]);
    }

    /// A `headers` list of `count` fields, each as small as one can be.
    fn fields(count: usize, distinct: bool) -> Vec<u8> {
        let mut bytes = u16::try_from(count).unwrap().to_le_bytes().to_vec();
        for i in 0..count {
            let name = if distinct {
                format!("x{i}")
            } else {
                "x".to_owned()
            };
            bytes.extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
        }
        bytes
    }

    /// A peer may announce up to 65,535 fields. Past MAX_HEADER_FIELDS the list is refused
    /// with an error that names it, whether its names are distinct or one name repeated
    /// (the old decoder's `HeaderMap::with_capacity(count)` panicked past ~24,000); up to it,
    /// both decode.
    #[test]
    fn more_fields_than_a_list_may_carry_are_refused_not_a_panic() {
        for distinct in [true, false] {
            for count in [MAX_HEADER_FIELDS + 1, 33_000, usize::from(u16::MAX)] {
                assert_eq!(
                    reader(&fields(count, distinct)).headers("response_head.headers"),
                    Err(DecodeError::TooManyHeaders {
                        field: "response_head.headers",
                        count
                    }),
                    "{count} fields, distinct names: {distinct}"
                );
            }
            let map = reader(&fields(MAX_HEADER_FIELDS, distinct))
                .headers("h")
                .unwrap();
            assert_eq!(map.len(), MAX_HEADER_FIELDS);
        }
    }
}
