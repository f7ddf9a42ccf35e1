//! Property tests: every frame type survives encode → split anywhere → decode, and the
//! decoder neither panics nor over-allocates on arbitrary input.

use bytes::BytesMut;
use httpq_wire::{DecodeError, Decoder, Flags, FrameType, HEADER_LEN, MAX_FRAME_SIZE_LIMIT};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::strategy::{frame, one_of_each};
use crate::{decode_in_pieces, encode_all};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every case holds one frame of every type, in a random order, cut at random points.
    #[test]
    fn every_frame_type_round_trips_at_any_split(
        frames in one_of_each().prop_shuffle(),
        pieces in vec(1usize..64, 1..32),
    ) {
        let bytes = encode_all(&frames);
        let decoded = decode_in_pieces(&bytes, &pieces, MAX_FRAME_SIZE_LIMIT);
        prop_assert_eq!(&decoded, &frames);
        // And the bytes are canonical: re-encoding gives them back exactly.
        prop_assert_eq!(encode_all(&decoded), bytes);
    }

    /// Random sequences (repeats, any order), fed one byte at a time or in large reads.
    #[test]
    fn frame_sequences_round_trip(
        frames in vec(frame(), 0..12),
        pieces in prop_oneof![Just(vec![1usize]), vec(1usize..4096, 1..4)],
    ) {
        let bytes = encode_all(&frames);
        prop_assert_eq!(decode_in_pieces(&bytes, &pieces, MAX_FRAME_SIZE_LIMIT), frames);
    }

    /// Any frame's payload is at most its encoded size, so a decoder limited to exactly that
    /// payload size accepts it, and one byte less rejects it before buffering the payload.
    #[test]
    fn limit_is_exact(frame in frame()) {
        let bytes = encode_all(std::slice::from_ref(&frame));
        let payload = u32::try_from(bytes.len() - HEADER_LEN).unwrap();
        prop_assert_eq!(decode_in_pieces(&bytes, &[bytes.len()], payload), vec![frame]);
        if payload > 0 {
            let mut header_only = BytesMut::from(&bytes[..HEADER_LEN]);
            let err = Decoder::new(payload - 1).decode(&mut header_only).unwrap_err();
            prop_assert_eq!(err, DecodeError::FrameTooLarge { length: payload, max: payload - 1 });
        }
    }

    /// Arbitrary bytes never panic the decoder; whatever decodes re-encodes to a frame that
    /// decodes to itself.
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..2048),
        max in prop_oneof![Just(65_536u32), 0u32..256],
    ) {
        check_decoder_on(&bytes, max);
    }

    /// Deeper coverage: a valid header of a known type with a random payload, so the payload
    /// parsers see garbage rather than the header checks rejecting it.
    #[test]
    fn decoder_never_panics_on_random_payloads(
        ty in proptest::sample::select(FrameType::ALL.to_vec()),
        flags in 0u8..=3,
        stream in prop_oneof![Just(0u64), 1u64..4],
        payload in vec(any::<u8>(), 0..512),
    ) {
        let bytes = crate::raw(ty.0, flags, 0, stream, &payload);
        check_decoder_on(&bytes, 65_536);
    }

    /// Valid frames with a few bytes flipped.
    #[test]
    fn decoder_never_panics_on_mutated_frames(
        frames in vec(frame(), 1..4),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode_all(&frames);
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= value;
        }
        check_decoder_on(&bytes, MAX_FRAME_SIZE_LIMIT);
    }

    /// A length over the limit is rejected as soon as the header is complete, whatever the
    /// type, and the buffer does not grow.
    #[test]
    fn oversized_length_fails_before_buffering(
        ty in any::<u8>(),
        flags in prop_oneof![Just(0u8), Just(Flags::IGNORABLE.0), 0u8..=3],
        stream in any::<u64>(),
        max in 0u32..=MAX_FRAME_SIZE_LIMIT,
        excess in 1u64..=u64::from(u32::MAX),
    ) {
        let length = u32::try_from((u64::from(max) + excess).min(u64::from(u32::MAX))).unwrap();
        prop_assume!(length > max);
        let mut src = BytesMut::with_capacity(HEADER_LEN);
        src.extend_from_slice(&[ty, flags, 0, 0]);
        src.extend_from_slice(&length.to_le_bytes());
        src.extend_from_slice(&stream.to_le_bytes());
        let capacity = src.capacity();
        let err = Decoder::new(max).decode(&mut src).unwrap_err();
        prop_assert_eq!(err, DecodeError::FrameTooLarge { length, max });
        prop_assert_eq!(src.capacity(), capacity);
        prop_assert_eq!(src.len(), HEADER_LEN);
    }

    /// A partial frame within the limit makes the decoder reserve at most about the frame.
    #[test]
    fn partial_frame_reserves_only_the_frame(
        length in 0u32..=65_536,
        have in 0usize..64,
    ) {
        let mut src = BytesMut::new();
        src.extend_from_slice(&[FrameType::REQUEST_BODY.0, 0, 0, 0]);
        src.extend_from_slice(&length.to_le_bytes());
        src.extend_from_slice(&1u64.to_le_bytes());
        src.extend_from_slice(&vec![0u8; have.min(length as usize)]);
        let complete = src.len() == HEADER_LEN + length as usize;
        let result = Decoder::new(65_536).decode(&mut src).unwrap();
        prop_assert_eq!(result.is_some(), complete);
        prop_assert!(src.capacity() <= 2 * (HEADER_LEN + length as usize) + 64);
    }
}

/// The check the fuzz target makes, for arbitrary input.
fn check_decoder_on(bytes: &[u8], max: u32) {
    let mut decoder = Decoder::new(max);
    let mut src = BytesMut::from(bytes);
    for frame in decoder.frames(&mut src) {
        let Ok(frame) = frame else { break };
        let mut again = BytesMut::new();
        frame.encode(&mut again);
        let decoded = Decoder::new(u32::MAX).decode(&mut again).unwrap();
        assert_eq!(decoded.as_ref(), Some(&frame));
        assert!(again.is_empty());
    }
}
