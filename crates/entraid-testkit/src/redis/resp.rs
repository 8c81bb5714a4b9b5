//! RESP requests: a request parser that follows redis-server's own rules (multibulk and inline commands,
//! pipelined and partial input), and the command encoder. Replies are parsed in the `reply` module.
//!
//! The gateway frames requests with [`parse_request`]; replies flow back verbatim, their boundaries found by the
//! streaming scanner in the `scan` module (which decodes nothing).

use bytes::{BufMut as _, Bytes, BytesMut};

/// Largest bulk string redis-server accepts by default (`proto-max-bulk-len`, 512 MiB).
const MAX_BULK_LEN: i64 = 512 * 1024 * 1024;
/// Largest multibulk count redis-server accepts (`INT_MAX`).
const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;
/// Largest inline request redis-server accepts (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub(crate) const MAX_INLINE_LEN: usize = 64 * 1024;

/// Why a byte stream is not valid RESP. The message names the rule, never the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RESP protocol error: {0}")]
pub struct ProtocolError(pub(crate) &'static str);

/// One client request: its arguments and how many input bytes it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The arguments, command name first. Empty for an empty line or `*0` (redis-server ignores both).
    pub(crate) args: Vec<Bytes>,
    /// Whether the request was an inline command (a text line) rather than a multibulk array.
    pub(crate) inline: bool,
}

/// Parses one request from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a request, and `Ok(Some((request, used)))` otherwise. The
/// rules are redis-server's (`processMultibulkBuffer` / `processInlineBuffer`): a request starting with `*` is an
/// array of `$` bulk strings, anything else is an inline line split like `sdssplitargs`. Like redis-server, the two
/// bytes after a bulk string's data are skipped, not checked.
pub(crate) fn parse_request(buf: &Bytes) -> Result<Option<(Request, usize)>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf)
    } else {
        parse_inline(buf)
    }
}

pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// Parses a decimal integer the way redis-server's `string2ll` does (no `+`, no leading zeros, optional `-`).
fn parse_int(digits: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(digits).ok()?;
    if s.is_empty() || s.starts_with('+') {
        return None;
    }
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    if unsigned.len() > 1 && unsigned.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

fn parse_multibulk(buf: &Bytes) -> Result<Option<(Request, usize)>, ProtocolError> {
    let Some(end) = find_crlf(buf, 1) else {
        if buf.len() > MAX_INLINE_LEN {
            return Err(ProtocolError("too big mbulk count string"));
        }
        return Ok(None);
    };
    let count = parse_int(&buf[1..end])
        .filter(|n| *n <= MAX_MULTIBULK_LEN)
        .ok_or(ProtocolError("invalid multibulk length"))?;
    let mut pos = end + 2;
    if count <= 0 {
        return Ok(Some((
            Request {
                args: Vec::new(),
                inline: false,
            },
            pos,
        )));
    }
    // Do not trust the count for the allocation: it can be huge while the data is not there yet.
    let mut args = Vec::with_capacity(usize::try_from(count.min(64)).unwrap_or(64));
    for _ in 0..count {
        let Some(&first) = buf.get(pos) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError("expected '$'"));
        }
        let Some(end) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > MAX_INLINE_LEN {
                return Err(ProtocolError("too big bulk count string"));
            }
            return Ok(None);
        };
        let len = parse_int(&buf[pos + 1..end])
            .filter(|n| (0..=MAX_BULK_LEN).contains(n))
            .ok_or(ProtocolError("invalid bulk length"))?;
        let len = usize::try_from(len).map_err(|_| ProtocolError("invalid bulk length"))?;
        let data = end + 2;
        if buf.len() < data + len + 2 {
            return Ok(None);
        }
        args.push(buf.slice(data..data + len));
        pos = data + len + 2;
    }
    Ok(Some((
        Request {
            args,
            inline: false,
        },
        pos,
    )))
}

fn parse_inline(buf: &Bytes) -> Result<Option<(Request, usize)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE_LEN {
            return Err(ProtocolError("too big inline request"));
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    let args = split_args(line).ok_or(ProtocolError("unbalanced quotes in request"))?;
    Ok(Some((
        Request {
            args: args.into_iter().map(Bytes::from).collect(),
            inline: true,
        },
        nl + 1,
    )))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Splits an inline command line like redis-server's `sdssplitargs`: spaces separate arguments, `"..."` supports
/// `\n \r \t \b \a \\ \"` and `\xHH` escapes, `'...'` supports `\'`; a closing quote must be followed by a space or
/// the end. Returns `None` on unbalanced quotes.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        // A NUL ends the line, as it ends the C string redis-server's `sdssplitargs` reads (found by the
        // property tests: the loop below stops at a NUL without moving, so it must not be reached there).
        if i >= line.len() || line[i] == 0 {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let c = *line.get(i)?;
                if c == b'\\'
                    && line.get(i + 1) == Some(&b'x')
                    && let (Some(h), Some(l)) = (
                        line.get(i + 2).copied().and_then(hex_value),
                        line.get(i + 3).copied().and_then(hex_value),
                    )
                {
                    current.push(h * 16 + l);
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    current.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_sq {
                let c = *line.get(i)?;
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    i += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                match line.get(i) {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => current.push(c),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

/// Appends a command, as a RESP array of bulk strings, to `out`.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.put_u8(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.put_u8(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}
/// Whether a request's argument is the command or keyword `name` (ASCII, case-insensitive, as redis-server reads
/// command names).
pub(crate) fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(input: &[u8]) -> Result<Option<(Request, usize)>, ProtocolError> {
        parse_request(&Bytes::copy_from_slice(input))
    }

    fn args(r: &Request) -> Vec<&[u8]> {
        r.args.iter().map(|a| a.as_ref()).collect()
    }

    #[test]
    fn multibulk_pipelined_and_partial() {
        let mut wire = BytesMut::new();
        encode_command(&["SET", "k", "v\r\nwith crlf"], &mut wire);
        encode_command(&["GET", "k"], &mut wire);
        let wire = wire.freeze();
        let (first, used) = parse_request(&wire).unwrap().unwrap();
        assert_eq!(args(&first), [&b"SET"[..], b"k", b"v\r\nwith crlf"]);
        let (second, used2) = parse_request(&wire.slice(used..)).unwrap().unwrap();
        assert_eq!(args(&second), [&b"GET"[..], b"k"]);
        assert_eq!(used + used2, wire.len());
        // Every strict prefix is incomplete, never an error.
        for cut in 0..used {
            assert_eq!(
                parse_request(&wire.slice(..cut)).unwrap(),
                None,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn inline_commands_and_quotes() {
        let (r, used) = req(b"PING\r\nGET x").unwrap().unwrap();
        assert!(r.inline);
        assert_eq!(args(&r), [&b"PING"[..]]);
        assert_eq!(used, 6);
        let (r, _) = req(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\n").unwrap().unwrap();
        assert_eq!(args(&r), [&b"set"[..], b"a b", b"c'd", b"A\n"]);
        assert_eq!(req(b"GET x").unwrap(), None);
        assert_eq!(
            req(b"set \"open\r\n").unwrap_err(),
            ProtocolError("unbalanced quotes in request")
        );
        assert_eq!(
            req(b"set \"a\"b\r\n").unwrap_err(),
            ProtocolError("unbalanced quotes in request")
        );
        let (empty, used) = req(b"\r\n").unwrap().unwrap();
        assert!(empty.args.is_empty());
        assert_eq!(used, 2);
    }

    #[test]
    fn multibulk_errors_like_redis() {
        assert_eq!(
            req(b"*x\r\n").unwrap_err(),
            ProtocolError("invalid multibulk length")
        );
        assert_eq!(
            req(b"*1\r\n:1\r\n").unwrap_err(),
            ProtocolError("expected '$'")
        );
        assert_eq!(
            req(b"*1\r\n$-5\r\n").unwrap_err(),
            ProtocolError("invalid bulk length")
        );
        assert_eq!(
            req(b"*1\r\n$99999999999\r\n").unwrap_err(),
            ProtocolError("invalid bulk length")
        );
        assert!(req(&vec![b'a'; MAX_INLINE_LEN + 1]).is_err());
        let (empty, used) = req(b"*0\r\n").unwrap().unwrap();
        assert!(empty.args.is_empty() && used == 4);
        // A huge declared count with no data is incomplete, not an allocation.
        assert_eq!(req(b"*2000000000\r\n").unwrap(), None);
    }
}

#[cfg(test)]
pub(crate) mod proptests {
    //! Property tests (in the normal suite, modest case counts): the request parser on arbitrary bytes never
    //! panics and never uses more bytes than it has; encoded commands round-trip, pipelined, whole or cut short.
    //! The reply parser's properties are in `reply.rs`; the fuzz targets in `fuzz/` run both parsers longer.

    use proptest::prelude::*;

    use super::*;
    use crate::redis::reply::parse_reply;

    pub(crate) fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Regression: an inline request with a NUL byte looped for ever, pushing empty arguments.
        #[test]
        fn a_nul_ends_an_inline_line(before in "[a-z]{1,5}( [a-z]{1,5})?", after in "[a-z \x00]{0,8}") {
            let line = format!("{before}\0{after}");
            let expected: Vec<Vec<u8>> = before.split(' ').map(|w| w.as_bytes().to_vec()).collect();
            prop_assert_eq!(split_args(line.as_bytes()), Some(expected.clone()));
            let (request, used) = parse_request(&Bytes::from(format!("{line}\r\n"))).unwrap().unwrap();
            prop_assert_eq!(request.args.iter().map(|a| a.to_vec()).collect::<Vec<_>>(), expected);
            prop_assert_eq!(used, line.len() + 2);
        }

        #[test]
        fn requests_of_any_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..160)) {
            let mut buf = Bytes::from(data);
            while let Ok(Some((_, used))) = parse_request(&buf) {
                prop_assert!(used > 0 && used <= buf.len());
                buf = buf.slice(used..);
            }
        }

        /// Near-RESP input: headers with any numbers, CRs and LFs where they may or may not belong.
        #[test]
        fn near_resp_requests_never_panic(data in "([*$][-+]?[0-9]{0,20}\r?\n?|[a-zA-Z \"'\\\\x]{0,6}\r?\n?){0,8}") {
            let _ = parse_request(&Bytes::from(data.clone()));
            let _ = parse_reply(&Bytes::from(data));
        }

        /// Encoded commands round-trip, pipelined; any prefix of the stream is "incomplete", never an error.
        #[test]
        fn commands_round_trip_pipelined(
            commands in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..5),
                1..4,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = BytesMut::new();
            for command in &commands {
                encode_command(command, &mut wire);
            }
            let wire = wire.freeze();
            let mut buf = wire.clone();
            for command in &commands {
                let (request, used) = parse_request(&buf).unwrap().unwrap();
                prop_assert!(!request.inline);
                prop_assert_eq!(
                    request.args.iter().map(|a| a.to_vec()).collect::<Vec<_>>(),
                    command.clone()
                );
                buf = buf.slice(used..);
            }
            prop_assert!(buf.is_empty());
            // A stream cut inside the first command is incomplete.
            let mut first = BytesMut::new();
            encode_command(&commands[0], &mut first);
            let cut = cut.index(first.len());
            prop_assert_eq!(parse_request(&wire.slice(..cut)), Ok(None));
        }
    }
}
