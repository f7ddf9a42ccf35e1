//! Feeds arbitrary bytes to the frame decoder. Every frame that decodes must re-encode to
//! bytes that decode to the same frame; nothing may panic (wire-protocol.md §13).
#![no_main]

use bytes::BytesMut;
use httpq_wire::{Decoder, MAX_FRAME_SIZE_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the decoder's limit, so small limits are exercised too.
    let (max_frame_size, input) = match data.split_first() {
        Some((&0, rest)) => (MAX_FRAME_SIZE_LIMIT, rest),
        Some((&selector, rest)) => (u32::from(selector) * 257, rest),
        None => (0, data),
    };
    let mut decoder = Decoder::new(max_frame_size);
    let mut src = BytesMut::from(input);
    for result in decoder.frames(&mut src) {
        let Ok(frame) = result else { break };
        let mut encoded = BytesMut::new();
        frame.encode(&mut encoded);
        assert_eq!(encoded.len(), frame.encoded_len());
        let again = Decoder::new(u32::MAX)
            .decode(&mut encoded)
            .expect("a re-encoded frame must decode");
        assert_eq!(again.as_ref(), Some(&frame));
        assert!(encoded.is_empty(), "re-encoded frame left bytes over");
    }
});
