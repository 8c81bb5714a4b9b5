//! Any bytes as a redis-server's output stream, fed to the testkit gateway's streaming reply scanner whole and in
//! pieces of every size from 1 to 16 (chosen by the first byte): never a panic, and the frames found, and whether
//! the stream is an error, do not depend on how it was split. Compiled here from the testkit's source.
#![no_main]
#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/entraid-testkit/src/redis/reply.rs"]
mod reply;
#[path = "../../crates/entraid-testkit/src/redis/resp.rs"]
mod resp;
#[path = "../../crates/entraid-testkit/src/redis/scan.rs"]
mod scan;

use libfuzzer_sys::fuzz_target;

fn frames(wire: &[u8], piece: usize) -> (Vec<scan::Frame>, bool) {
    let mut scanner = scan::ReplyScanner::default();
    let mut found = Vec::new();
    for chunk in wire.chunks(piece.max(1)) {
        if scanner.feed(chunk, &mut |f| found.push(*f)).is_err() {
            return (found, true);
        }
    }
    (found, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, wire)) = data.split_first() else {
        return;
    };
    let whole = frames(wire, wire.len());
    let pieces = frames(wire, usize::from(first % 16) + 1);
    assert_eq!(whole, pieces);
});
