//! [`ReplyScanner`]: finds where each reply ends in a redis-server's output stream (RESP2 and RESP3), without
//! buffering or decoding the replies, so the gateway can count them while it relays the bytes unchanged.
//!
//! The scanner is fed the stream in whatever pieces the socket delivers (a frame may be split anywhere, a piece may
//! hold many frames) and reports every complete top-level frame as a [`Frame`]: its type (after any RESP3
//! attribute), whether it is a null, and, for a top-level array or push, its first element when that is a short
//! string and its third element when that is an integer. That is all the gateway needs to tell a reply from a push
//! and a pub/sub confirmation from a message. Bulk string data is skipped by its length, never searched; only
//! header lines are looked at, a few bytes of each kept.
//!
//! Every RESP3 type is understood: `+ - : $ * _ # , ( ! = % ~ > |`. An attribute (`|`) is not a frame: it
//! annotates the value after it, which is the frame (or the element) reported. Streamed strings and aggregates
//! (`$?`, `*?`), which redis-server never sends, are a [`ProtocolError`].

use super::reply::{aggregate_elements, parse_len};
use super::resp::ProtocolError;

/// Longest header line kept (the rest of a longer simple string or error is skipped, not stored).
const LINE_CAP: usize = 64;
/// Longest string captured as a frame's first element (`punsubscribe` and `sunsubscribe` are 12).
pub(crate) const FIRST_CAP: usize = 16;
/// Deepest aggregate nesting followed.
const MAX_DEPTH: usize = 1024;

/// One complete top-level frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Frame {
    /// The value's type byte (`+ - : $ * _ # , ( ! = % ~ >`), after any attribute.
    pub(crate) kind: u8,
    /// `$-1`, `*-1` (or any negative length) or `_`.
    pub(crate) null: bool,
    first: [u8; FIRST_CAP],
    first_len: Option<u8>,
    /// The third element of a top-level array or push, when it is an integer.
    pub(crate) third: Option<i64>,
}

impl Frame {
    /// A simple error (`-`) or a bulk error (`!`).
    pub(crate) fn is_error(&self) -> bool {
        matches!(self.kind, b'-' | b'!')
    }

    /// A RESP3 push (`>`): out of band, not the reply to any request.
    pub(crate) fn is_push(&self) -> bool {
        self.kind == b'>'
    }

    /// A non-null array (`*`).
    pub(crate) fn is_array(&self) -> bool {
        self.kind == b'*' && !self.null
    }

    /// The first element of a top-level array or push, when it is a simple or bulk string of at most
    /// [`FIRST_CAP`] bytes.
    pub(crate) fn first(&self) -> Option<&[u8]> {
        self.first_len.map(|n| &self.first[..usize::from(n)])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a type byte.
    Type,
    /// Reading the line after this type byte.
    Line(u8),
    /// Skipping bulk data and its CRLF; `capture` when the data is the frame's first element.
    Data { remaining: u64, capture: bool },
}

#[derive(Debug, Clone, Copy)]
struct Level {
    /// Elements (or, for a map or attribute, keys plus values) still to come.
    remaining: u64,
    /// Elements completed so far.
    index: u64,
    attribute: bool,
}

/// Finds reply frame boundaries in a RESP2/RESP3 stream fed piece by piece. See the module docs.
#[derive(Debug)]
pub(crate) struct ReplyScanner {
    state: State,
    stack: Vec<Level>,
    line: [u8; LINE_CAP],
    line_len: usize,
    line_overflow: bool,
    frame: Frame,
}

impl Default for ReplyScanner {
    fn default() -> Self {
        Self {
            state: State::Type,
            stack: Vec::new(),
            line: [0; LINE_CAP],
            line_len: 0,
            line_overflow: false,
            frame: Frame::default(),
        }
    }
}

impl ReplyScanner {
    /// Whether the scanner is between frames (nothing partial pending).
    #[cfg(test)]
    pub(crate) fn at_boundary(&self) -> bool {
        self.state == State::Type && self.stack.is_empty()
    }

    /// Scans `data`, calling `on_frame` for every top-level frame it completes, in order. After an error the
    /// scanner's state is unspecified: stop feeding it.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        on_frame: &mut impl FnMut(&Frame),
    ) -> Result<(), ProtocolError> {
        while let Some(&byte) = data.first() {
            match self.state {
                State::Type => {
                    if !b"+-:$*_#,(!=%~>|".contains(&byte) {
                        return Err(ProtocolError("unknown reply type"));
                    }
                    data = &data[1..];
                    self.line_len = 0;
                    self.line_overflow = false;
                    self.state = State::Line(byte);
                }
                State::Line(kind) => match data.iter().position(|&b| b == b'\n') {
                    None => {
                        self.store(data);
                        data = &[];
                    }
                    Some(nl) => {
                        self.store(&data[..nl]);
                        data = &data[nl + 1..];
                        self.state = State::Type;
                        self.line_done(kind, on_frame)?;
                    }
                },
                State::Data { remaining, capture } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    if capture {
                        // The data, not the CRLF after it.
                        let data_left =
                            usize::try_from(remaining.saturating_sub(2)).unwrap_or(usize::MAX);
                        self.capture(&data[..take.min(data_left)]);
                    }
                    data = &data[take..];
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.state = State::Type;
                        self.value_done(on_frame);
                    } else {
                        self.state = State::Data { remaining, capture };
                    }
                }
            }
        }
        Ok(())
    }

    fn store(&mut self, part: &[u8]) {
        let room = LINE_CAP - self.line_len;
        let n = room.min(part.len());
        self.line[self.line_len..self.line_len + n].copy_from_slice(&part[..n]);
        self.line_len += n;
        if part.len() > n {
            self.line_overflow = true;
        }
    }

    /// The header line without its trailing `\r`, or `None` if it was too long to keep.
    fn line(&self) -> Option<&[u8]> {
        if self.line_overflow {
            return None;
        }
        let line = &self.line[..self.line_len];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Whether the value starting now is element `index` of a top-level array or push.
    fn at_element(&self, index: u64) -> bool {
        matches!(self.frame.kind, b'*' | b'>')
            && self.stack.len() == 1
            && !self.stack[0].attribute
            && self.stack[0].index == index
    }

    /// Adds bulk data to the captured first element (only its first `FIRST_CAP` bytes fit, and only data of at
    /// most `FIRST_CAP` bytes is captured at all).
    fn capture(&mut self, part: &[u8]) {
        let have = usize::from(self.frame.first_len.unwrap_or(0));
        let n = (FIRST_CAP - have).min(part.len());
        self.frame.first[have..have + n].copy_from_slice(&part[..n]);
        // `have + n <= FIRST_CAP`, which fits a u8.
        self.frame.first_len = Some(u8::try_from(have + n).unwrap_or(u8::MAX));
    }

    fn begin_value(&mut self, kind: u8, null: bool) {
        if self.stack.is_empty() && kind != b'|' {
            self.frame.kind = kind;
            self.frame.null = null;
        }
    }

    fn line_done(
        &mut self,
        kind: u8,
        on_frame: &mut impl FnMut(&Frame),
    ) -> Result<(), ProtocolError> {
        match kind {
            b'+' | b'-' | b',' | b'(' | b'#' | b'_' => {
                let first = kind == b'+' && self.at_element(0);
                if first
                    && let Some(line) = self.line()
                    && line.len() <= FIRST_CAP
                {
                    let mut text = [0; FIRST_CAP];
                    text[..line.len()].copy_from_slice(line);
                    let len = u8::try_from(line.len()).ok();
                    self.frame.first = text;
                    self.frame.first_len = len;
                }
                self.begin_value(kind, kind == b'_');
                self.value_done(on_frame);
            }
            b':' => {
                let value = parse_len(self.line().ok_or(ProtocolError("reply line too long"))?)?;
                if self.at_element(2) {
                    self.frame.third = Some(value);
                }
                self.begin_value(kind, false);
                self.value_done(on_frame);
            }
            b'$' | b'!' | b'=' => {
                let len = parse_len(self.line().ok_or(ProtocolError("reply line too long"))?)?;
                if len < 0 {
                    self.begin_value(kind, true);
                    self.value_done(on_frame);
                    return Ok(());
                }
                let capture = kind == b'$' && self.at_element(0) && len <= FIRST_CAP as i64;
                if capture {
                    self.frame.first_len = Some(0);
                }
                self.begin_value(kind, false);
                let len = u64::try_from(len).map_err(|_| ProtocolError("invalid bulk length"))?;
                self.state = State::Data {
                    remaining: len + 2,
                    capture,
                };
            }
            _ => {
                // Aggregates: * ~ > % |
                let line = self.line().ok_or(ProtocolError("reply line too long"))?;
                let Some(elements) = aggregate_elements(kind, line)? else {
                    self.begin_value(kind, true);
                    self.value_done(on_frame);
                    return Ok(());
                };
                self.begin_value(kind, false);
                if elements == 0 {
                    if kind != b'|' {
                        self.value_done(on_frame);
                    }
                    return Ok(());
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(ProtocolError("reply nested too deeply"));
                }
                self.stack.push(Level {
                    remaining: elements,
                    index: 0,
                    attribute: kind == b'|',
                });
            }
        }
        Ok(())
    }

    /// A value (not an attribute) is complete: count it in its parent, completing parents in turn.
    fn value_done(&mut self, on_frame: &mut impl FnMut(&Frame)) {
        loop {
            let Some(level) = self.stack.last_mut() else {
                on_frame(&self.frame);
                self.frame = Frame::default();
                return;
            };
            level.remaining -= 1;
            level.index += 1;
            if level.remaining > 0 {
                return;
            }
            let done = self.stack.pop();
            if done.is_some_and(|l| l.attribute) {
                // An attribute is not an element of its parent: the value after it is.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(wire: &[u8], piece: usize) -> Result<Vec<Frame>, ProtocolError> {
        let mut scanner = ReplyScanner::default();
        let mut frames = Vec::new();
        for chunk in wire.chunks(piece.max(1)) {
            scanner.feed(chunk, &mut |f| frames.push(*f))?;
        }
        Ok(frames)
    }

    fn scan(wire: &[u8]) -> Vec<Frame> {
        let frames = scan_in_pieces(wire, wire.len()).unwrap();
        // Any split gives the same frames.
        for piece in [1, 2, 3, 5, 7, 13] {
            assert_eq!(
                scan_in_pieces(wire, piece).unwrap(),
                frames,
                "piece {piece}"
            );
        }
        frames
    }

    fn kinds(frames: &[Frame]) -> Vec<u8> {
        frames.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn every_resp3_type_is_one_frame() {
        let wire = b"+OK\r\n-ERR x\r\n:42\r\n:-7\r\n$3\r\nabc\r\n$0\r\n\r\n$-1\r\n*-1\r\n_\r\n#t\r\n,1.5\r\n,inf\r\n\
              (12345678901234567890123\r\n!5\r\nERR y\r\n=7\r\ntxt:abc\r\n*0\r\n%0\r\n~0\r\n>0\r\n\
              *2\r\n$1\r\na\r\n:1\r\n%1\r\n+proto\r\n:3\r\n~2\r\n+a\r\n+b\r\n";
        let frames = scan(wire);
        assert_eq!(kinds(&frames), b"+-::$$$*_#,,(!=*%~>*%~");
        let nulls: Vec<bool> = frames.iter().map(|f| f.null).collect();
        assert_eq!(
            nulls,
            [
                false, false, false, false, false, false, true, true, true, false, false, false,
                false, false, false, false, false, false, false, false, false, false
            ]
        );
        assert!(frames[1].is_error() && frames[13].is_error());
        assert!(frames[18].is_push());
        assert!(frames[19].is_array() && !frames[7].is_array());
        assert!(ReplyScanner::default().at_boundary());
    }

    #[test]
    fn nested_aggregates_are_one_frame() {
        // An EXEC-like reply: arrays in maps in arrays, with a null, an error and a push as elements.
        let wire = b"*4\r\n%2\r\n$1\r\nk\r\n*2\r\n*1\r\n:1\r\n~1\r\n_\r\n+f\r\n#f\r\n-ERR inner\r\n>2\r\n+a\r\n+b\r\n*0\r\n+after\r\n";
        let frames = scan(wire);
        assert_eq!(kinds(&frames), b"*+");
        assert!(!frames[0].is_error() && !frames[0].is_push());
    }

    #[test]
    fn attributes_precede_the_value_they_annotate() {
        // A top-level attribute, then a push; an attribute inside an array does not count as an element.
        let wire = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n\
              *3\r\n|1\r\n+ttl\r\n:3600\r\n$9\r\nsubscribe\r\n|0\r\n$1\r\nc\r\n:2\r\n|0\r\n+OK\r\n";
        let frames = scan(wire);
        assert_eq!(kinds(&frames), b">*+");
        assert_eq!(frames[0].first(), Some(&b"message"[..]));
        assert_eq!(frames[0].third, None);
        assert_eq!(frames[1].first(), Some(&b"subscribe"[..]));
        assert_eq!(frames[1].third, Some(2));
    }

    #[test]
    fn pushes_and_confirmations_are_described() {
        let wire = b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:5\r\n\
              >4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npx\r\n$5\r\nhello\r\n*2\r\n+pong\r\n$0\r\n\r\n\
              *3\r\n$17\r\nlonger-than-cap-x\r\n:1\r\n:2\r\n*3\r\n:1\r\n:2\r\n$1\r\nx\r\n";
        let frames = scan(wire);
        assert_eq!(kinds(&frames), b">*>***");
        assert_eq!(frames[0].first(), Some(&b"unsubscribe"[..]));
        assert_eq!(frames[0].third, Some(0));
        assert_eq!(frames[1].first(), Some(&b"psubscribe"[..]));
        assert_eq!(frames[1].third, Some(5));
        assert_eq!(frames[2].first(), Some(&b"pmessage"[..]));
        assert_eq!(frames[2].third, None);
        assert_eq!(frames[3].first(), Some(&b"pong"[..]));
        assert_eq!(frames[4].first(), None);
        assert_eq!(frames[4].third, Some(2));
        assert_eq!((frames[5].first(), frames[5].third), (None, None));
    }

    #[test]
    fn big_bulk_strings_split_across_reads() {
        let big = vec![b'x'; 3 * 1024 * 1024 + 17];
        let mut wire = format!("${}\r\n", big.len()).into_bytes();
        wire.extend_from_slice(&big);
        wire.extend_from_slice(b"\r\n*2\r\n$");
        wire.extend_from_slice(big.len().to_string().as_bytes());
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&big);
        wire.extend_from_slice(b"\r\n:1\r\n+OK\r\n");
        for piece in [1000, 16 * 1024, 64 * 1024 + 3] {
            let mut scanner = ReplyScanner::default();
            let mut frames = Vec::new();
            for (i, chunk) in wire.chunks(piece).enumerate() {
                scanner.feed(chunk, &mut |f| frames.push(*f)).unwrap();
                // Nothing is reported before the data it ends with has been fed.
                let fed = (i + 1) * piece;
                let first_end = format!("${}\r\n", big.len()).len() + big.len() + 2;
                assert_eq!(
                    !frames.is_empty(),
                    fed >= first_end,
                    "piece {piece} fed {fed}"
                );
            }
            assert_eq!(kinds(&frames), b"$*+", "piece {piece}");
            assert!(scanner.at_boundary());
        }
    }

    #[test]
    fn partial_frames_report_nothing_until_complete() {
        let wire = b"*2\r\n$3\r\nabc\r\n%1\r\n+k\r\n:1\r\n";
        let mut scanner = ReplyScanner::default();
        let mut count = 0;
        for (i, byte) in wire.iter().enumerate() {
            scanner
                .feed(std::slice::from_ref(byte), &mut |_| count += 1)
                .unwrap();
            assert_eq!(count, usize::from(i == wire.len() - 1), "byte {i}");
            assert_eq!(scanner.at_boundary(), i == wire.len() - 1, "byte {i}");
        }
    }

    #[test]
    fn long_simple_strings_are_skipped_not_stored() {
        let mut wire = b"+".to_vec();
        wire.extend(std::iter::repeat_n(b'a', 100_000));
        wire.extend_from_slice(b"\r\n-");
        wire.extend(std::iter::repeat_n(b'e', 100_000));
        wire.extend_from_slice(b"\r\n:1\r\n");
        let frames = scan_in_pieces(&wire, 4096).unwrap();
        assert_eq!(kinds(&frames), b"+-:");
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b"?x\r\n"[..],
            b"$abc\r\n",
            b"*?\r\n",
            b"$?\r\n",
            b":1.5\r\n",
            b"*+1\r\n",
            b"$--1\r\n",
        ] {
            let mut scanner = ReplyScanner::default();
            assert!(scanner.feed(bad, &mut |_| {}).is_err(), "{bad:?}");
        }
        let mut long_len = b"$".to_vec();
        long_len.extend(std::iter::repeat_n(b'1', 100));
        long_len.extend_from_slice(b"\r\n");
        assert!(
            ReplyScanner::default()
                .feed(&long_len, &mut |_| {})
                .is_err()
        );
        let mut deep = Vec::new();
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(b"*1\r\n");
        }
        assert!(ReplyScanner::default().feed(&deep, &mut |_| {}).is_err());
    }
}

#[cfg(test)]
mod proptests {
    //! Property tests (in the normal suite, modest case counts): on arbitrary bytes the scanner never panics and
    //! finds the same frames however the stream is split; on a stream of encoded replies it reports one frame per
    //! reply, of the reply's type, in order, and ends at a boundary.

    use proptest::prelude::*;

    use super::super::reply::proptests::{any_reply, encode_reply};
    use super::super::resp::proptests::config;
    use super::*;

    fn frames(wire: &[u8], piece: usize) -> (Vec<Frame>, bool) {
        let mut scanner = ReplyScanner::default();
        let mut found = Vec::new();
        for chunk in wire.chunks(piece.max(1)) {
            if scanner.feed(chunk, &mut |f| found.push(*f)).is_err() {
                return (found, true);
            }
        }
        (found, false)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_bytes_scan_the_same_however_split(data in prop::collection::vec(any::<u8>(), 0..200), piece in 1usize..17) {
            prop_assert_eq!(frames(&data, data.len()), frames(&data, piece));
        }

        /// Near-RESP input (headers with any lengths, attributes, streamed markers) scans the same however split.
        #[test]
        fn near_resp_scans_the_same_however_split(
            data in "([-+:$*_#,(!=%~>|][-?0-9]{0,20}\r?\n?|[a-z]{0,4}\r\n){0,10}",
            piece in 1usize..9,
        ) {
            prop_assert_eq!(frames(data.as_bytes(), data.len()), frames(data.as_bytes(), piece));
        }

        #[test]
        fn one_frame_per_reply(values in prop::collection::vec(any_reply(), 1..5), resp2_null in any::<bool>(), piece in 1usize..17) {
            let mut wire = Vec::new();
            let mut kinds = Vec::new();
            for value in &values {
                let start = wire.len();
                encode_reply(value, resp2_null, &mut wire);
                kinds.push(wire[start]);
            }
            let mut scanner = ReplyScanner::default();
            let mut found = Vec::new();
            for chunk in wire.chunks(piece) {
                scanner.feed(chunk, &mut |f| found.push(*f)).unwrap();
            }
            prop_assert!(scanner.at_boundary());
            prop_assert_eq!(found.iter().map(|f| f.kind).collect::<Vec<_>>(), kinds);
            for (frame, value) in found.iter().zip(&values) {
                prop_assert_eq!(frame.null, *value == crate::redis::RespValue::Null);
            }
        }
    }
}
