//! A sans-IO check of the HTTP/2 frames a client sends, in front of the `h2` crate, for the
//! errors `h2` (0.4) answers with another code than RFC 9113 / RFC 7541 prescribe
//! (`PROTOCOL_ERROR` where the RFC says `FRAME_SIZE_ERROR`, `COMPRESSION_ERROR`,
//! `FLOW_CONTROL_ERROR` or `STREAM_CLOSED`) or accepts (a table-size update above the limit,
//! pseudo-header fields in trailers).
//!
//! [`Checker::feed`] takes the client's bytes as they arrive and says how many of them may go
//! on to `h2` and whether the connection must end with a GOAWAY and which code. Frames pass
//! through as soon as their 9-byte header is checked, except SETTINGS, HEADERS and
//! CONTINUATION, which are held until complete (at most one frame, 16 KiB by default) so their
//! payload can be checked. Every violation is a connection error (RFC 9113 §5.4.1 allows any
//! stream error to be treated as one), so nothing is left half-reset between the check and
//! `h2`.
//!
//! The HPACK check keeps no dynamic table: it flags what is invalid whatever the table holds
//! (index 0, an index beyond the static table plus the most entries 4096 bytes can hold, an
//! integer overflow, a size update above 4096 or after a field, bad Huffman padding or EOS),
//! and leaves the rest to `h2`.

use crate::hpack_huffman::CODES;

/// HTTP/2 error codes used here.
pub mod code {
    /// `PROTOCOL_ERROR`.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// `FLOW_CONTROL_ERROR`.
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    /// `STREAM_CLOSED`.
    pub const STREAM_CLOSED: u32 = 0x5;
    /// `FRAME_SIZE_ERROR`.
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    /// `COMPRESSION_ERROR`.
    pub const COMPRESSION_ERROR: u32 = 0x9;
}

const PREFACE_LEN: usize = 24;
const HEADER_LEN: usize = 9;
/// The decoder's table size: 4096, HTTP/2's default, which the server never raises.
const TABLE_SIZE: u64 = 4096;
/// SETTINGS_MAX_FRAME_SIZE as the server announces it (HTTP/2's default, 16 KiB), which also
/// bounds what the checker holds.
const MAX_FRAME: usize = 16_384;
/// Client streams remembered for the state checks: the most recent this many ids (odd, up to
/// the highest opened); older ones are forgotten (then `h2` alone judges them). Two bits each,
/// 256 bytes per connection however many streams it carries.
const WINDOW: u32 = 1024;

/// A connection error the client caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The GOAWAY code.
    pub code: u32,
    /// What was wrong, for the log.
    pub detail: &'static str,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct StreamSeen {
    /// The client ended its side (END_STREAM).
    ended: bool,
    /// A header block arrived (the next one is trailers).
    headers: bool,
}

/// What was seen of the last [`WINDOW`] client stream ids, two bits each in a ring indexed by
/// id: a fixed size and no hashing, however long the connection lives (decision 0004).
#[derive(Debug, Clone)]
struct Seen {
    bits: [u64; (WINDOW as usize * 2).div_ceil(64)],
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            bits: [0; (WINDOW as usize * 2).div_ceil(64)],
        }
    }
}

impl Seen {
    /// The bit index of `id`'s first bit, when `id` is a client stream within the window below
    /// `last` (the highest id opened).
    fn bit(last: u32, id: u32) -> Option<usize> {
        (id % 2 == 1 && id <= last && (last - id) / 2 < WINDOW)
            .then(|| ((id / 2) % WINDOW) as usize * 2)
    }

    fn get(&self, last: u32, id: u32) -> StreamSeen {
        let Some(b) = Self::bit(last, id) else {
            return StreamSeen::default();
        };
        let word = self.bits[b / 64] >> (b % 64);
        StreamSeen {
            ended: word & 1 != 0,
            headers: word & 2 != 0,
        }
    }

    /// Records `seen` for `id`; ids outside the window are not recorded.
    fn set(&mut self, last: u32, id: u32, seen: StreamSeen) {
        let Some(b) = Self::bit(last, id) else {
            return;
        };
        let value = u64::from(seen.ended) | (u64::from(seen.headers) << 1);
        let word = &mut self.bits[b / 64];
        *word = (*word & !(3 << (b % 64))) | (value << (b % 64));
    }

    /// The highest id moves from `from` to `to`: the ids passed over (never opened, so closed)
    /// start with nothing seen, as does `to`. Consecutive client ids have consecutive slots,
    /// so this clears one run of bits (two where the ring wraps), a word at a time: whatever
    /// the jump, at most [`WINDOW`] / 32 + 2 words.
    fn advance(&mut self, from: u32, to: u32) {
        let first = if from % 2 == 1 { from + 2 } else { from + 1 };
        let passed = to.saturating_sub(first) / 2 + 1;
        if passed >= WINDOW {
            self.bits = Seen::default().bits;
            return;
        }
        let start = ((first / 2) % WINDOW) as usize * 2;
        let len = passed as usize * 2;
        let ring = WINDOW as usize * 2;
        let head = len.min(ring - start);
        self.clear(start, head);
        self.clear(0, len - head);
    }

    /// Clears `len` bits from bit `start` (within the ring).
    fn clear(&mut self, start: usize, len: usize) {
        let (mut at, end) = (start, start + len);
        while at < end {
            let (word, bit) = (at / 64, at % 64);
            let n = (64 - bit).min(end - at);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            self.bits[word] &= !mask;
            at += n;
        }
    }
}

/// The checker for one connection.
#[derive(Debug, Default, Clone)]
pub struct Checker {
    /// Bytes of the connection preface still to pass.
    preface_left: usize,
    /// Bytes of the current frame's payload still to pass (streamed frames).
    payload_left: usize,
    /// Bytes held: a partial frame header, or a whole held frame being collected.
    held: Vec<u8>,
    /// The header block being assembled (HEADERS + CONTINUATION payloads).
    block: Vec<u8>,
    block_stream: u32,
    block_end_stream: bool,
    streams: Seen,
    /// The highest client stream id seen in a HEADERS frame.
    last_stream: u32,
}

impl Checker {
    /// A checker for a connection that starts with the client preface.
    #[must_use]
    pub fn new() -> Self {
        Checker {
            preface_left: PREFACE_LEN,
            ..Checker::default()
        }
    }

    /// The highest stream id the client opened, for the GOAWAY.
    #[must_use]
    pub fn last_stream(&self) -> u32 {
        self.last_stream
    }

    /// Takes the next bytes from the client. Returns how many more bytes of the client's
    /// stream may go on to `h2` (counted from the first byte not yet released: frames are held
    /// until complete, so this can be less than `data`, or include bytes of earlier calls) and
    /// a violation if one was found: then nothing after those bytes may be delivered.
    pub fn feed(&mut self, mut data: &[u8]) -> (usize, Option<Violation>) {
        let mut out = 0usize;
        while !data.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(data.len());
                out += n;
                self.preface_left -= n;
                data = &data[n..];
                continue;
            }
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                out += n;
                self.payload_left -= n;
                data = &data[n..];
                continue;
            }
            // Collect a frame header, then (for held types) the whole frame.
            if self.held.len() < HEADER_LEN {
                let n = (HEADER_LEN - self.held.len()).min(data.len());
                self.held.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.held.len() < HEADER_LEN {
                    break;
                }
                if let Err(v) = self.check_header() {
                    return (out, Some(v));
                }
                if !self.is_held_type() {
                    self.payload_left = self.frame_len();
                    out += self.held.len();
                    self.held.clear();
                    continue;
                }
            }
            let want = HEADER_LEN + self.frame_len();
            let n = (want - self.held.len()).min(data.len());
            self.held.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.held.len() < want {
                break;
            }
            if let Err(v) = self.check_frame() {
                return (out, Some(v));
            }
            out += self.held.len();
            self.held.clear();
        }
        (out, None)
    }

    fn frame_len(&self) -> usize {
        (usize::from(self.held[0]) << 16)
            | (usize::from(self.held[1]) << 8)
            | usize::from(self.held[2])
    }

    fn kind(&self) -> u8 {
        self.held[3]
    }

    fn flags(&self) -> u8 {
        self.held[4]
    }

    fn stream(&self) -> u32 {
        u32::from_be_bytes([self.held[5], self.held[6], self.held[7], self.held[8]]) & 0x7FFF_FFFF
    }

    fn is_held_type(&self) -> bool {
        matches!(self.kind(), 0x1 | 0x4 | 0x9)
    }

    /// Checks that need only the 9-byte header.
    fn check_header(&mut self) -> Result<(), Violation> {
        let len = self.frame_len();
        let size = |detail| Violation {
            code: code::FRAME_SIZE_ERROR,
            detail,
        };
        if len > MAX_FRAME {
            return Err(size("frame larger than SETTINGS_MAX_FRAME_SIZE"));
        }
        match self.kind() {
            // PRIORITY: 5 bytes (a stream error in the RFC; a connection error here).
            0x2 if len != 5 => Err(size("PRIORITY frame whose length is not 5")),
            // RST_STREAM: 4 bytes.
            0x3 if len != 4 => Err(size("RST_STREAM frame whose length is not 4")),
            // SETTINGS: a multiple of 6; empty with ACK.
            0x4 if self.flags() & 0x1 != 0 && len != 0 => {
                Err(size("SETTINGS acknowledgement with a payload"))
            }
            0x4 if len % 6 != 0 => Err(size("SETTINGS frame whose length is not a multiple of 6")),
            // PING: 8 bytes.
            0x6 if len != 8 => Err(size("PING frame whose length is not 8")),
            // WINDOW_UPDATE: 4 bytes.
            0x8 if len != 4 => Err(size("WINDOW_UPDATE frame whose length is not 4")),
            // DATA on a stream the client already ended.
            0x0 => {
                let id = self.stream();
                let seen = self.streams.get(self.last_stream, id);
                if seen.ended {
                    return Err(Violation {
                        code: code::STREAM_CLOSED,
                        detail: "DATA after the client ended the stream",
                    });
                }
                if self.flags() & 0x1 != 0 && seen.headers {
                    let ended = StreamSeen {
                        ended: true,
                        ..seen
                    };
                    self.streams.set(self.last_stream, id, ended);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Checks of a whole held frame (SETTINGS, HEADERS, CONTINUATION).
    fn check_frame(&mut self) -> Result<(), Violation> {
        let payload = &self.held[HEADER_LEN..];
        match self.kind() {
            0x4 => {
                for setting in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                    if id == 0x4 && value > 0x7FFF_FFFF {
                        return Err(Violation {
                            code: code::FLOW_CONTROL_ERROR,
                            detail: "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        });
                    }
                }
                Ok(())
            }
            0x1 => {
                let flags = self.flags();
                let id = self.stream();
                // Padding and priority fields; a malformed frame is left to h2.
                let mut body = payload;
                if flags & 0x8 != 0 {
                    let Some((&pad, rest)) = body.split_first() else {
                        return Ok(());
                    };
                    if usize::from(pad) > rest.len() {
                        return Ok(());
                    }
                    body = &rest[..rest.len() - usize::from(pad)];
                }
                if flags & 0x20 != 0 {
                    if body.len() < 5 {
                        return Ok(());
                    }
                    body = &body[5..];
                }
                if id != 0 && id % 2 == 1 {
                    if self.streams.get(self.last_stream, id).ended {
                        return Err(Violation {
                            code: code::STREAM_CLOSED,
                            detail: "HEADERS after the client ended the stream",
                        });
                    }
                    if id > self.last_stream {
                        self.streams.advance(self.last_stream, id);
                        self.last_stream = id;
                    }
                }
                self.block.clear();
                self.block.extend_from_slice(body);
                self.block_stream = id;
                self.block_end_stream = flags & 0x1 != 0;
                if flags & 0x4 != 0 {
                    self.end_block()
                } else {
                    Ok(())
                }
            }
            0x9 => {
                if self.stream() != self.block_stream {
                    // h2 answers this one correctly (PROTOCOL_ERROR).
                    return Ok(());
                }
                let flags = self.flags();
                let body = self.held[HEADER_LEN..].to_vec();
                self.block.extend_from_slice(&body);
                if flags & 0x4 != 0 {
                    self.end_block()
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// A complete header block: HPACK check, trailers check, stream bookkeeping.
    fn end_block(&mut self) -> Result<(), Violation> {
        let id = self.block_stream;
        let seen = self.streams.get(self.last_stream, id);
        scan_block(&self.block, seen.headers)
            .map_err(|(code, detail)| Violation { code, detail })?;
        let now = StreamSeen {
            headers: true,
            ended: seen.ended || self.block_end_stream,
        };
        self.streams.set(self.last_stream, id, now);
        Ok(())
    }
}

type ScanError = (u32, &'static str);

fn compression(detail: &'static str) -> ScanError {
    (code::COMPRESSION_ERROR, detail)
}

/// Reads an HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn integer(buf: &[u8], pos: &mut usize, n: u8) -> Result<u64, ScanError> {
    let max = (1u64 << n) - 1;
    let first = u64::from(*buf.get(*pos).ok_or(compression("truncated integer"))?) & max;
    *pos += 1;
    if first < max {
        return Ok(first);
    }
    let mut value = max;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(compression("truncated integer"))?;
        *pos += 1;
        value = value
            .checked_add(u64::from(b & 0x7f) << shift)
            .filter(|v| *v <= u64::from(u32::MAX))
            .ok_or(compression("integer overflow"))?;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            return Err(compression("integer overflow"));
        }
    }
}

/// Reads a string literal; returns its decoded bytes only when `want` (Huffman is always
/// validated).
fn string(buf: &[u8], pos: &mut usize, want: bool) -> Result<Vec<u8>, ScanError> {
    let huffman = buf.get(*pos).is_some_and(|b| b & 0x80 != 0);
    let len = usize::try_from(integer(buf, pos, 7)?).map_err(|_| compression("string too long"))?;
    let end = pos
        .checked_add(len)
        .filter(|e| *e <= buf.len())
        .ok_or(compression("string runs past the block"))?;
    let raw = &buf[*pos..end];
    *pos = end;
    if huffman {
        huffman_decode(raw, want)
    } else {
        Ok(if want { raw.to_vec() } else { Vec::new() })
    }
}

/// Canonical-code tables for decoding, built once from RFC 7541's code list.
struct Canon {
    /// For each bit length: (first code, first index into `symbols`, count).
    by_len: [(u32, u16, u16); 31],
    symbols: [u16; 257],
}

fn canon() -> &'static Canon {
    static CANON: std::sync::OnceLock<Canon> = std::sync::OnceLock::new();
    CANON.get_or_init(|| {
        let mut order: Vec<u16> = (0..257u16).collect();
        order.sort_by_key(|&s| (CODES[usize::from(s)].1, CODES[usize::from(s)].0));
        let mut by_len = [(0u32, 0u16, 0u16); 31];
        let mut symbols = [0u16; 257];
        for (i, &s) in order.iter().enumerate() {
            symbols[i] = s;
            let (code, len) = CODES[usize::from(s)];
            let e = &mut by_len[usize::from(len)];
            if e.2 == 0 {
                *e = (code, u16::try_from(i).unwrap_or(0), 0);
            }
            e.2 += 1;
        }
        Canon { by_len, symbols }
    })
}

fn huffman_decode(raw: &[u8], want: bool) -> Result<Vec<u8>, ScanError> {
    let c = canon();
    let mut out = Vec::new();
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in raw {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return Err(compression("invalid Huffman code"));
            }
            let (first, index, count) = c.by_len[len];
            if count > 0 && code >= first && code - first < u32::from(count) {
                let sym = c.symbols[usize::from(index) + (code - first) as usize];
                if sym == 256 {
                    return Err(compression("EOS in a Huffman string"));
                }
                if want {
                    out.push(u8::try_from(sym).unwrap_or(0));
                }
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the start of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(compression("invalid Huffman padding"));
    }
    Ok(out)
}

/// The most entries a 4096-byte table holds (each costs at least 32 bytes).
const MAX_DYNAMIC: u64 = TABLE_SIZE / 32;
/// Static-table indices of pseudo-header fields (`:authority` … `:status`).
const STATIC_PSEUDO: std::ops::RangeInclusive<u64> = 1..=14;

/// Scans one header block (RFC 7541 §6). `trailers`: pseudo-header fields are not allowed.
fn scan_block(block: &[u8], trailers: bool) -> Result<(), ScanError> {
    let mut pos = 0;
    let mut seen_field = false;
    let pseudo = (code::PROTOCOL_ERROR, "pseudo-header field in trailers");
    while pos < block.len() {
        let b = block[pos];
        if b & 0x80 != 0 {
            // Indexed field.
            let index = integer(block, &mut pos, 7)?;
            if index == 0 {
                return Err(compression("indexed field with index 0"));
            }
            if index > 61 + MAX_DYNAMIC {
                return Err(compression("index beyond the header tables"));
            }
            if trailers && STATIC_PSEUDO.contains(&index) {
                return Err(pseudo);
            }
            seen_field = true;
        } else if b & 0xE0 == 0x20 {
            // Dynamic table size update: only before the first field, never above the limit.
            if seen_field {
                return Err(compression("table size update after a field"));
            }
            if integer(block, &mut pos, 5)? > TABLE_SIZE {
                return Err(compression(
                    "table size update above SETTINGS_HEADER_TABLE_SIZE",
                ));
            }
        } else {
            // Literal field: with incremental indexing (6-bit index), or without / never
            // indexed (4-bit index).
            let n = if b & 0xC0 == 0x40 { 6 } else { 4 };
            let index = integer(block, &mut pos, n)?;
            if index == 0 {
                let name = string(block, &mut pos, trailers)?;
                if trailers && name.first() == Some(&b':') {
                    return Err(pseudo);
                }
            } else {
                if index > 61 + MAX_DYNAMIC {
                    return Err(compression("index beyond the header tables"));
                }
                if trailers && STATIC_PSEUDO.contains(&index) {
                    return Err(pseudo);
                }
            }
            string(block, &mut pos, false)?;
            seen_field = true;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn checker() -> Checker {
        let mut c = Checker::new();
        let (out, v) = c.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!((out, v), (24, None));
        c
    }

    #[test]
    fn valid_frames_pass_whole_in_any_split() {
        // A GET (":method GET", ":path /", ":scheme http" indexed, literal authority), then a
        // DATA frame, fed one byte at a time.
        let block = [0x82, 0x84, 0x86, 0x41, 0x03, b'a', b'.', b'b'];
        let mut bytes = frame(0x1, 0x4, 1, &block);
        bytes.extend(frame(0x0, 0x1, 1, b"hello"));
        bytes.extend(frame(0x6, 0, 0, b"12345678"));
        let mut c = checker();
        let mut passed = 0;
        for (i, b) in bytes.iter().enumerate() {
            let (out, v) = c.feed(std::slice::from_ref(b));
            assert!(v.is_none());
            passed += out;
            assert!(passed <= i + 1, "never more than was given");
        }
        assert_eq!(passed, bytes.len());
        assert_eq!(c.last_stream(), 1);
    }

    #[test]
    fn a_long_connection_keeps_the_newest_streams_and_forgets_the_oldest() {
        let block = [0x82, 0x84, 0x86, 0x41, 0x03, b'a', b'.', b'b'];
        let opened = 3 * WINDOW + 7;
        let mut c = checker();
        for n in 0..opened {
            let (_, v) = c.feed(&frame(0x1, 0x5, 2 * n + 1, &block));
            assert!(v.is_none());
        }
        let newest = 2 * (opened - 1) + 1;
        assert_eq!(c.last_stream(), newest);
        // The newest streams are remembered as ended: DATA or HEADERS on them is STREAM_CLOSED.
        for id in [newest, newest - 2 * (WINDOW - 1)] {
            let mut d = c.clone();
            let (_, v) = d.feed(&frame(0x0, 0x1, id, b"x"));
            assert_eq!(v.map(|v| v.code), Some(code::STREAM_CLOSED), "DATA on {id}");
            let mut d = c.clone();
            let (_, v) = d.feed(&frame(0x1, 0x5, id, &block));
            assert_eq!(
                v.map(|v| v.code),
                Some(code::STREAM_CLOSED),
                "HEADERS on {id}"
            );
        }
        // Streams before the window are forgotten: the checker leaves them to `h2`.
        for id in [1, newest - 2 * WINDOW] {
            let mut d = c.clone();
            let (_, v) = d.feed(&frame(0x0, 0x1, id, b"x"));
            assert!(v.is_none(), "{id}: {v:?}");
        }
        // What the checker holds does not grow with the streams it saw.
        assert_eq!(std::mem::size_of_val(&c.streams), WINDOW as usize * 2 / 8);
    }

    #[test]
    fn ids_a_client_skipped_are_not_taken_for_streams_it_ended() {
        let block = [0x82, 0x84, 0x86, 0x41, 0x03, b'a', b'.', b'b'];
        // Streams 1 to 2 * WINDOW - 1 end; the client then opens 2 * WINDOW + 5, skipping
        // 2 * WINDOW + 1 and + 3, whose slots held the ended streams 1 and 3 (a jump short of
        // the whole ring: the slots are cleared one run at a time), and + 5 reuses 5's.
        let mut c = checker();
        for n in 0..WINDOW {
            let (_, v) = c.feed(&frame(0x1, 0x5, 2 * n + 1, &block));
            assert!(v.is_none());
        }
        let (_, v) = c.feed(&frame(0x1, 0x4, 2 * WINDOW + 5, &block));
        assert!(v.is_none());
        for id in [2 * WINDOW + 1, 2 * WINDOW + 3] {
            let mut d = c.clone();
            let (_, v) = d.feed(&frame(0x0, 0x1, id, b"x"));
            assert!(v.is_none(), "{id}: {v:?}");
        }
        // The ended streams still in the window keep their answer.
        let (_, v) = c.clone().feed(&frame(0x0, 0x1, 2 * WINDOW - 1, b"x"));
        assert_eq!(v.map(|v| v.code), Some(code::STREAM_CLOSED));
        // The open stream takes data, then trailers (a literal field, no pseudo-header) that
        // end it; data after them is STREAM_CLOSED.
        let open = 2 * WINDOW + 5;
        let (_, v) = c.feed(&frame(0x0, 0x0, open, b"x"));
        assert!(v.is_none());
        let (_, v) = c.feed(&frame(0x1, 0x5, open, &[0x40, 0x01, b'x', 0x01, b'y']));
        assert!(v.is_none(), "{v:?}");
        let (_, v) = c.feed(&frame(0x0, 0x1, open, b"x"));
        assert_eq!(v.map(|v| v.code), Some(code::STREAM_CLOSED));
    }

    #[test]
    fn any_jump_of_ids_clears_exactly_the_ids_passed_over() {
        // Every jump length across the ring boundary, against a plain model.
        for jump in [1u32, 2, 31, 32, 33, 511, 1000, 1022, 1023, 1024, 1025, 3000] {
            let mut seen = Seen::default();
            let mut last = 0;
            let mut model = std::collections::BTreeMap::new();
            let mut id = 1;
            for _ in 0..3 {
                for k in 0..WINDOW {
                    let i = id + 2 * k;
                    seen.advance(last, i);
                    last = i;
                    let s = StreamSeen {
                        ended: true,
                        headers: true,
                    };
                    seen.set(last, i, s);
                    model.insert(i, s);
                }
                let to = last + 2 * jump;
                seen.advance(last, to);
                last = to;
                id = to + 2;
                for (&i, &want) in &model {
                    let got = seen.get(last, i);
                    let in_window = i <= last && (last - i) / 2 < WINDOW;
                    let want = if in_window {
                        want
                    } else {
                        StreamSeen::default()
                    };
                    assert_eq!(got, want, "jump {jump}, id {i}, last {last}");
                }
                for i in (last - 2 * (jump - 1).min(WINDOW - 1)..=last).step_by(2) {
                    assert_eq!(seen.get(last, i), StreamSeen::default(), "passed {i}");
                }
            }
        }
    }

    #[test]
    fn fixed_size_frames_with_other_lengths_are_frame_size_errors() {
        for (kind, len) in [(0x6u8, 7usize), (0x8, 5), (0x3, 3), (0x2, 6)] {
            let mut c = checker();
            let (out, v) = c.feed(&frame(
                kind,
                0,
                u32::from(kind != 0x6 && kind != 0x8),
                &vec![0; len],
            ));
            assert_eq!(out, 0);
            assert_eq!(v.unwrap().code, code::FRAME_SIZE_ERROR, "type {kind}");
        }
    }

    #[test]
    fn hpack_errors_are_compression_errors() {
        for block in [
            &[0x80][..],                                     // index 0
            &[0xff, 0x40][..],                               // index 191
            &[0x3f, 0x80, 0x20][..],                         // size update 4127
            &[0x82, 0x20][..],                               // size update after a field
            &[0x40, 0x81, 0x00, 0x81, 0x00][..],             // Huffman padding of zeros
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..], // integer overflow
        ] {
            let mut c = checker();
            let (_, v) = c.feed(&frame(0x1, 0x5, 1, block));
            assert_eq!(
                v.map(|v| v.code),
                Some(code::COMPRESSION_ERROR),
                "{block:x?}"
            );
        }
        // A correct Huffman string ("www.example.com", RFC 7541 C.4.1) passes.
        let huff = [
            0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut c = checker();
        let (out, v) = c.feed(&frame(0x1, 0x5, 1, &huff));
        assert!(v.is_none());
        assert_eq!(out, 9 + huff.len());
    }

    #[test]
    fn stream_state_and_trailers() {
        let mut c = checker();
        // HEADERS with END_STREAM, then DATA on the same stream.
        assert!(c.feed(&frame(0x1, 0x5, 1, &[0x82, 0x84])).1.is_none());
        assert_eq!(
            c.feed(&frame(0x0, 0, 1, b"x")).1.unwrap().code,
            code::STREAM_CLOSED
        );
        // Trailers with a pseudo-header (":path /" indexed, 0x84).
        let mut c = checker();
        assert!(c.feed(&frame(0x1, 0x4, 3, &[0x83, 0x84])).1.is_none());
        assert!(c.feed(&frame(0x0, 0, 3, b"abc")).1.is_none());
        let v = c.feed(&frame(0x1, 0x5, 3, &[0x84])).1.unwrap();
        assert_eq!(v.code, code::PROTOCOL_ERROR);
        // SETTINGS_INITIAL_WINDOW_SIZE too large.
        let mut c = checker();
        let v = c.feed(&frame(0x4, 0, 0, &[0, 4, 0x80, 0, 0, 0])).1.unwrap();
        assert_eq!(v.code, code::FLOW_CONTROL_ERROR);
    }
}
