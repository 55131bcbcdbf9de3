//! `cargo bench -p ringkv-core --bench frames`: the wire cost of replication.
//!
//! The coordinator of every write ships the key's sibling set to N−1
//! replicas as a [`Message::Replicate`]; the transport encodes it with
//! postcard behind a u32 big-endian length prefix, and every replica decodes
//! it. These benches do exactly that, without sockets.

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use ringkv_core::message::Message;

mod support;

fn main() {
    divan::main();
}

/// A replicate of one 100-byte version (three-entry context) of a 16-byte
/// key: the message of a typical single-version write.
fn replicate() -> Message {
    Message::Replicate {
        req: 42,
        key: b"key:000000000042".to_vec(),
        siblings: support::siblings(1),
    }
}

/// Length prefix then postcard body, as the transport writes a frame.
fn encode(message: &Message) -> Vec<u8> {
    let body = postcard::to_stdvec(message).expect("encode");
    let len = u32::try_from(body.len()).expect("frame fits a u32 prefix");
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Check the length prefix, then decode the postcard body.
fn decode(frame: &[u8]) -> Message {
    let (prefix, body) = frame.split_at(4);
    let len = u32::from_be_bytes(prefix.try_into().expect("4-byte prefix"));
    assert_eq!(len as usize, body.len(), "one whole frame");
    postcard::from_bytes(body).expect("decode")
}

/// Encode one replicate into a framed buffer (throughput in frame bytes).
#[divan::bench]
fn encode_replicate(bencher: Bencher) {
    let message = replicate();
    let bytes = BytesCount::of_slice(&encode(&message));
    bencher
        .counter(bytes)
        .bench_local(|| encode(black_box(&message)));
}

/// Decode one framed replicate back into a `Message`.
#[divan::bench]
fn decode_replicate(bencher: Bencher) {
    let message = replicate();
    let frame = encode(&message);
    assert_eq!(decode(&frame), message, "round trip");
    bencher
        .counter(BytesCount::of_slice(&frame))
        .bench_local(|| decode(black_box(&frame)));
}
