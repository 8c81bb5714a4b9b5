//! [`RespValue`] and the RESP2/RESP3 reply parser, which serves the raw client ([`super::RespClient`]) used by
//! tests and benchmarks, with the reading of aggregate headers it shares with the gateway's reply scanner
//! (`scan`). Requests are parsed in the `resp` module.

use bytes::Bytes;

use super::resp::{MAX_INLINE_LEN, ProtocolError, find_crlf};

/// Deepest nesting of aggregate replies the reply parser follows.
const MAX_DEPTH: usize = 64;

/// A reply from a Redis server, RESP2 or RESP3.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RespValue {
    /// `+` simple string.
    Simple(String),
    /// `-` simple error, or `!` bulk error (the whole text, e.g. `WRONGPASS invalid ...`).
    Error(String),
    /// `:` integer.
    Integer(i64),
    /// `$` bulk string.
    Bulk(Bytes),
    /// `$-1`, `*-1` (RESP2) or `_` (RESP3) null.
    Null,
    /// `*` array.
    Array(Vec<RespValue>),
    /// `%` map (RESP3), in wire order.
    Map(Vec<(RespValue, RespValue)>),
    /// `~` set (RESP3), in wire order.
    Set(Vec<RespValue>),
    /// `>` push (RESP3): pub/sub messages, invalidations.
    Push(Vec<RespValue>),
    /// `#` boolean (RESP3).
    Boolean(bool),
    /// `,` double (RESP3), as sent.
    Double(String),
    /// `(` big number (RESP3), as sent.
    BigNumber(String),
    /// `=` verbatim string (RESP3): format (e.g. `txt`) and text.
    Verbatim(String, Bytes),
}

impl RespValue {
    /// The text of a simple string, bulk string or verbatim string (lossy UTF-8).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Simple(s) => Some(s.clone()),
            Self::Bulk(b) | Self::Verbatim(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The error text, if this is an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Self::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_items(&self) -> Option<&[RespValue]> {
        match self {
            Self::Array(v) | Self::Set(v) | Self::Push(v) => Some(v),
            _ => None,
        }
    }

    /// Looks a key up in a map reply, or in a RESP2 flat `[key, value, ...]` array.
    pub fn get(&self, key: &str) -> Option<&RespValue> {
        match self {
            Self::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_text().as_deref() == Some(key))
                .map(|(_, v)| v),
            Self::Array(items) => items
                .chunks_exact(2)
                .find(|kv| kv[0].as_text().as_deref() == Some(key))
                .map(|kv| &kv[1]),
            _ => None,
        }
    }
}

/// Parses one reply from the start of `buf`: `Ok(None)` when incomplete. RESP3 attributes (`|`) are read and
/// dropped, as clients that do not ask for them do.
pub(crate) fn parse_reply(buf: &Bytes) -> Result<Option<(RespValue, usize)>, ProtocolError> {
    parse_value(buf, 0, 0)
}

fn line_at(buf: &Bytes, pos: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    match find_crlf(buf, pos) {
        Some(end) => Ok(Some((&buf[pos..end], end + 2))),
        None if buf.len() - pos > MAX_INLINE_LEN => Err(ProtocolError("reply line too long")),
        None => Ok(None),
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn int_of(line: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError("invalid integer in reply"))
}

/// A length or count line of a reply: an optional `-` and decimal digits (no `+`, no spaces; `?`, RESP3's
/// streamed types, is refused).
pub(crate) fn parse_len(line: &[u8]) -> Result<i64, ProtocolError> {
    if line == b"?" {
        return Err(ProtocolError("streamed RESP3 types are not supported"));
    }
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError("invalid integer in reply"));
    }
    let value = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(ProtocolError("invalid integer in reply"))?;
    Ok(if negative { -value } else { value })
}

/// The header of an aggregate reply (`*`, `~`, `>`, `%` or `|` and its count line), as the reply parser and the
/// gateway's reply scanner both read it: `None` for a null (`*-1`), else how many elements follow (twice the count
/// for maps and attributes).
pub(crate) fn aggregate_elements(kind: u8, line: &[u8]) -> Result<Option<u64>, ProtocolError> {
    let count = parse_len(line)?;
    if count < 0 {
        return Ok(None);
    }
    let count = u64::try_from(count).map_err(|_| ProtocolError("invalid length"))?;
    if matches!(kind, b'%' | b'|') {
        count
            .checked_mul(2)
            .map(Some)
            .ok_or(ProtocolError("invalid length"))
    } else {
        Ok(Some(count))
    }
}

fn parse_value(
    buf: &Bytes,
    pos: usize,
    depth: usize,
) -> Result<Option<(RespValue, usize)>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError("reply nested too deeply"));
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, next)) = line_at(buf, pos + 1)? else {
        return Ok(None);
    };
    let value = match kind {
        b'+' => RespValue::Simple(text(line)),
        b'-' => RespValue::Error(text(line)),
        b':' => RespValue::Integer(int_of(line)?),
        b'_' => RespValue::Null,
        b'#' => match line {
            b"t" => RespValue::Boolean(true),
            b"f" => RespValue::Boolean(false),
            _ => return Err(ProtocolError("invalid boolean")),
        },
        b',' => RespValue::Double(text(line)),
        b'(' => RespValue::BigNumber(text(line)),
        b'$' | b'!' | b'=' => {
            let len = int_of(line)?;
            if len < 0 {
                return Ok(Some((RespValue::Null, next)));
            }
            let len = usize::try_from(len).map_err(|_| ProtocolError("invalid bulk length"))?;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            let data = buf.slice(next..next + len);
            let end = next + len + 2;
            let value = match kind {
                b'$' => RespValue::Bulk(data),
                b'!' => RespValue::Error(text(&data)),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(ProtocolError("invalid verbatim string"));
                    }
                    RespValue::Verbatim(text(&data[..3]), data.slice(4..))
                }
            };
            return Ok(Some((value, end)));
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(elements) = aggregate_elements(kind, line)? else {
                return Ok(Some((RespValue::Null, next)));
            };
            let mut items = Vec::with_capacity(usize::try_from(elements.min(1024)).unwrap_or(1024));
            let mut pos = next;
            for _ in 0..elements {
                let Some((item, after)) = parse_value(buf, pos, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                pos = after;
            }
            let value = match kind {
                b'*' => RespValue::Array(items),
                b'~' => RespValue::Set(items),
                b'>' => RespValue::Push(items),
                b'%' => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    RespValue::Map(pairs)
                }
                // An attribute annotates the value that follows it: return that value.
                _ => return parse_value(buf, pos, depth + 1),
            };
            return Ok(Some((value, pos)));
        }
        _ => return Err(ProtocolError("unknown reply type")),
    };
    Ok(Some((value, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_resp2_and_resp3() {
        let wire = Bytes::from_static(
            b"+OK\r\n-ERR x\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n_\r\n#t\r\n,1.5\r\n(123\r\n\
              =7\r\ntxt:abc\r\n!5\r\nERR y\r\n%1\r\n+proto\r\n:3\r\n~1\r\n+s\r\n>2\r\n+message\r\n+m\r\n\
              |1\r\n+key\r\n+val\r\n:7\r\n",
        );
        let mut pos = 0;
        let mut values = Vec::new();
        while pos < wire.len() {
            let (v, used) = parse_reply(&wire.slice(pos..)).unwrap().unwrap();
            values.push(v);
            pos += used;
        }
        assert_eq!(values[0], RespValue::Simple("OK".into()));
        assert_eq!(values[1].as_error(), Some("ERR x"));
        assert_eq!(values[2], RespValue::Integer(42));
        assert_eq!(values[3].as_text().as_deref(), Some("abc"));
        assert_eq!(values[4], RespValue::Null);
        assert_eq!(values[5].as_items().unwrap().len(), 2);
        assert_eq!(values[6], RespValue::Null);
        assert_eq!(values[7], RespValue::Boolean(true));
        assert_eq!(values[8], RespValue::Double("1.5".into()));
        assert_eq!(values[9], RespValue::BigNumber("123".into()));
        assert_eq!(values[10].as_text().as_deref(), Some("abc"));
        assert_eq!(values[11].as_error(), Some("ERR y"));
        assert_eq!(values[12].get("proto"), Some(&RespValue::Integer(3)));
        assert!(matches!(values[13], RespValue::Set(_)));
        assert!(matches!(values[14], RespValue::Push(_)));
        assert_eq!(values[15], RespValue::Integer(7));
        assert_eq!(values.len(), 16);
        for cut in 0..wire.len() {
            let partial = wire.slice(..cut);
            // A prefix either parses a complete first value or asks for more; it never errors.
            let _ = parse_reply(&partial).unwrap();
        }
        assert!(parse_reply(&Bytes::from_static(b"?x\r\n")).is_err());
    }
}

#[cfg(test)]
pub(crate) mod proptests {
    //! Property tests (in the normal suite, modest case counts): the reply parser on arbitrary bytes never panics
    //! and never uses more bytes than it has; encoded replies round-trip, whole or cut short.

    use proptest::prelude::*;

    use super::*;
    use crate::redis::resp::proptests::config;

    /// Any RESP2/RESP3 reply value, a few levels deep (no attributes: they are dropped on parse).
    pub(crate) fn any_reply() -> impl Strategy<Value = RespValue> {
        let leaf = prop_oneof![
            "[ -~]{0,12}".prop_map(RespValue::Simple),
            "ERR [ -~]{0,12}".prop_map(RespValue::Error),
            any::<i64>().prop_map(RespValue::Integer),
            prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| RespValue::Bulk(b.into())),
            Just(RespValue::Null),
            any::<bool>().prop_map(RespValue::Boolean),
            "-?[0-9]{1,5}\\.[0-9]{1,5}|inf|-inf|nan".prop_map(RespValue::Double),
            "-?[0-9]{1,40}".prop_map(RespValue::BigNumber),
            ("[a-z]{3}", prop::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(f, b)| RespValue::Verbatim(f, b.into())),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(RespValue::Array),
                prop::collection::vec(inner.clone(), 0..4).prop_map(RespValue::Set),
                prop::collection::vec(inner.clone(), 0..4).prop_map(RespValue::Push),
                prop::collection::vec((inner.clone(), inner), 0..3).prop_map(RespValue::Map),
            ]
        })
    }

    /// The wire form of a reply (`null_as_bulk`: RESP2's `$-1` rather than RESP3's `_`).
    pub(crate) fn encode_reply(value: &RespValue, null_as_bulk: bool, out: &mut Vec<u8>) {
        let line = |out: &mut Vec<u8>, kind: u8, text: &[u8]| {
            out.push(kind);
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        };
        let items = |out: &mut Vec<u8>, kind: u8, items: &[RespValue]| {
            line(out, kind, items.len().to_string().as_bytes());
            for item in items {
                encode_reply(item, null_as_bulk, out);
            }
        };
        match value {
            RespValue::Simple(s) => line(out, b'+', s.as_bytes()),
            RespValue::Error(s) => line(out, b'-', s.as_bytes()),
            RespValue::Integer(i) => line(out, b':', i.to_string().as_bytes()),
            RespValue::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            RespValue::Null if null_as_bulk => line(out, b'$', b"-1"),
            RespValue::Null => line(out, b'_', b""),
            RespValue::Boolean(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
            RespValue::Double(s) => line(out, b',', s.as_bytes()),
            RespValue::BigNumber(s) => line(out, b'(', s.as_bytes()),
            RespValue::Verbatim(format, data) => {
                line(out, b'=', (data.len() + 4).to_string().as_bytes());
                out.extend_from_slice(format.as_bytes());
                out.push(b':');
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            RespValue::Array(v) => items(out, b'*', v),
            RespValue::Set(v) => items(out, b'~', v),
            RespValue::Push(v) => items(out, b'>', v),
            RespValue::Map(pairs) => {
                line(out, b'%', pairs.len().to_string().as_bytes());
                for (k, v) in pairs {
                    encode_reply(k, null_as_bulk, out);
                    encode_reply(v, null_as_bulk, out);
                }
            }
        }
    }
    proptest! {
        #![proptest_config(config())]

        #[test]
        fn replies_of_any_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..160)) {
            let mut buf = Bytes::from(data);
            while let Ok(Some((_, used))) = parse_reply(&buf) {
                prop_assert!(used > 0 && used <= buf.len());
                buf = buf.slice(used..);
            }
        }

        /// Encoded replies round-trip (RESP3 nulls, or RESP2's `$-1`), and any prefix is incomplete.
        #[test]
        fn replies_round_trip(value in any_reply(), resp2_null in any::<bool>(), cut in any::<prop::sample::Index>()) {
            let mut wire = Vec::new();
            encode_reply(&value, resp2_null, &mut wire);
            let wire = Bytes::from(wire);
            let (parsed, used) = parse_reply(&wire).unwrap().unwrap();
            prop_assert_eq!(parsed, value);
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(parse_reply(&wire.slice(..cut.index(wire.len()))), Ok(None));
        }
    }
}
