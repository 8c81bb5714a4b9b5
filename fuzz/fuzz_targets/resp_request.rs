//! Any bytes as a client's request stream and as a server's reply stream: the testkit gateway's RESP request parser
//! (redis-server's rules, pipelined) and the raw client's reply parser, compiled here from the testkit's source.
//! Never a panic; every request parsed uses at least one byte and no more than are there.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/entraid-testkit/src/redis/reply.rs"]
mod reply;
#[path = "../../crates/entraid-testkit/src/redis/resp.rs"]
mod resp;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = Bytes::copy_from_slice(data);
    while let Ok(Some((_, used))) = resp::parse_request(&buf) {
        assert!(used > 0 && used <= buf.len());
        buf = buf.slice(used..);
    }
    let mut buf = Bytes::copy_from_slice(data);
    while let Ok(Some((_, used))) = reply::parse_reply(&buf) {
        assert!(used > 0 && used <= buf.len());
        buf = buf.slice(used..);
    }
});
