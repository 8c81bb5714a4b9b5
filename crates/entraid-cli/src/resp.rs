//! A minimal RESP2 client for `entraid doctor`: one command at a time over any stream, so each step (AUTH,
//! PING, CLIENT UNBLOCK, ...) is timed and its exact reply (`-WRONGPASS ...`, `-NOPERM ...`) reaches the user.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};

/// Replies larger than this are refused (the doctor's commands answer a few bytes).
const MAX_BULK: usize = 1 << 20;
/// Arrays longer than this are refused.
const MAX_ARRAY: usize = 1 << 16;
/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 8;

/// Anything a RESP connection can run over: TCP or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`, `-WRONGPASS ...`, `-NOPERM ...`.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$3\r\nabc` (or nil).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (or nil).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The error text, when the reply is an error.
    pub(crate) fn error(&self) -> Option<&str> {
        match self {
            Self::Error(e) => Some(e),
            _ => None,
        }
    }

    /// A short, printable form (bulk strings as text, at most 80 characters).
    pub(crate) fn short(&self) -> String {
        let text = match self {
            Self::Simple(s) | Self::Error(s) => s.clone(),
            Self::Integer(i) => format!("(integer) {i}"),
            Self::Bulk(None) | Self::Array(None) => "(nil)".to_owned(),
            Self::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Self::Array(Some(items)) => format!("({} items)", items.len()),
        };
        text.chars().take(80).collect()
    }
}

/// A RESP2 connection.
pub(crate) struct Connection {
    io: BufStream<Box<dyn Stream>>,
}

impl Connection {
    /// Wraps a connected stream.
    pub(crate) fn new(stream: Box<dyn Stream>) -> Self {
        Self {
            io: BufStream::new(stream),
        }
    }

    /// Sends one command and reads its reply.
    pub(crate) async fn command(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        read_reply(&mut self.io, 0).await
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

async fn read_line<R: AsyncBufReadExt + Unpin>(io: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    // A line longer than MAX_BULK is refused rather than buffered without end.
    let n = (&mut *io)
        .take(MAX_BULK as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(invalid("a reply line without CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid("a reply line that is not UTF-8"))
}

fn length(text: &str, max: usize) -> io::Result<Option<usize>> {
    let n: i64 = text
        .parse()
        .map_err(|_| invalid(format!("bad length {text:?}")))?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| invalid("length out of range"))?;
    if n > max {
        return Err(invalid(format!("reply too large ({n})")));
    }
    Ok(Some(n))
}

fn read_reply<'a, R: AsyncBufReadExt + Unpin + Send>(
    io: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = io::Result<Reply>> + Send + 'a>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(invalid("reply nested too deeply"));
        }
        let line = read_line(io).await?;
        let Some(kind) = line.chars().next() else {
            return Err(invalid("an empty reply line"));
        };
        let rest = &line[kind.len_utf8()..];
        match kind {
            '+' => Ok(Reply::Simple(rest.to_owned())),
            '-' => Ok(Reply::Error(rest.to_owned())),
            ':' => rest
                .parse()
                .map(Reply::Integer)
                .map_err(|_| invalid(format!("bad integer {rest:?}"))),
            '$' => match length(rest, MAX_BULK)? {
                None => Ok(Reply::Bulk(None)),
                Some(n) => {
                    let mut data = vec![0; n + 2];
                    io.read_exact(&mut data).await?;
                    if !data.ends_with(b"\r\n") {
                        return Err(invalid("a bulk string without CRLF"));
                    }
                    data.truncate(n);
                    Ok(Reply::Bulk(Some(data)))
                }
            },
            '*' => match length(rest, MAX_ARRAY)? {
                None => Ok(Reply::Array(None)),
                Some(n) => {
                    let mut items = Vec::with_capacity(n.min(64));
                    for _ in 0..n {
                        items.push(read_reply(io, depth + 1).await?);
                    }
                    Ok(Reply::Array(Some(items)))
                }
            },
            other => Err(invalid(format!("unknown reply type {other:?}"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> io::Result<Reply> {
        let mut reader = tokio::io::BufReader::new(bytes);
        read_reply(&mut reader, 0).await
    }

    #[tokio::test]
    async fn reads_every_kind() {
        assert_eq!(
            parse(b"+PONG\r\n").await.unwrap(),
            Reply::Simple("PONG".into())
        );
        assert_eq!(
            parse(b"-NOPERM no\r\n").await.unwrap().error(),
            Some("NOPERM no")
        );
        assert_eq!(parse(b":7\r\n").await.unwrap(), Reply::Integer(7));
        assert_eq!(
            parse(b"$3\r\nabc\r\n").await.unwrap(),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n:1\r\n$1\r\nx\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Bulk(Some(b"x".to_vec()))
            ]))
        );
    }

    #[tokio::test]
    async fn refuses_bad_input_without_panicking() {
        for bad in [
            &b""[..],
            b"+no crlf",
            b"?x\r\n",
            b":x\r\n",
            b"$99999999999\r\n",
            b"$3\r\nab",
            b"*99999999\r\n",
            b"\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(parse(bad).await.is_err(), "{bad:?}");
        }
    }
}
