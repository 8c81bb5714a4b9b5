//! A small raw RESP client for tests and benchmarks: send commands (one at a time or pipelined), read RESP2 and
//! RESP3 replies and pushes, over TCP or TLS. It adds nothing of its own: no AUTH, no HELLO, no retries.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::Error;
use super::reply::{RespValue, parse_reply};
use super::resp::encode_command;

/// A byte stream the client can talk over (TCP, TLS, or an in-memory pipe).
pub trait RespStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RespStream for T {}

/// A raw RESP connection. `Debug` shows the peer only.
pub struct RespClient {
    stream: Box<dyn RespStream>,
    peer: Option<SocketAddr>,
    read_buf: BytesMut,
    pending: Bytes,
    write_buf: BytesMut,
}

impl fmt::Debug for RespClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RespClient")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl RespClient {
    /// Connects over plain TCP (with `TCP_NODELAY`).
    pub async fn connect(addr: SocketAddr) -> Result<Self, Error> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut client = Self::from_stream(tcp);
        client.peer = Some(addr);
        Ok(client)
    }

    /// Connects over TLS, verifying the server as `server_name` with `config` (e.g. the test CA's client config).
    pub async fn connect_tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Self, Error> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| Error::Tls(format!("invalid server name {server_name:?}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Tls(format!("TLS handshake with {addr}: {e}")))?;
        let mut client = Self::from_stream(tls);
        client.peer = Some(addr);
        Ok(client)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: impl RespStream + 'static) -> Self {
        Self {
            stream: Box::new(stream),
            peer: None,
            read_buf: BytesMut::with_capacity(16 * 1024),
            pending: Bytes::new(),
            write_buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Sends one command and reads its reply.
    pub async fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<RespValue, Error> {
        self.send(args).await?;
        self.read_reply().await
    }

    /// Sends one command without reading anything.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), Error> {
        self.write_buf.clear();
        encode_command(args, &mut self.write_buf);
        self.stream.write_all(&self.write_buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends every command in one write, then reads one reply per command.
    pub async fn pipeline<C, A>(&mut self, commands: &[C]) -> Result<Vec<RespValue>, Error>
    where
        C: AsRef<[A]>,
        A: AsRef<[u8]>,
    {
        self.write_buf.clear();
        for command in commands {
            encode_command(command.as_ref(), &mut self.write_buf);
        }
        self.stream.write_all(&self.write_buf).await?;
        self.stream.flush().await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    /// Writes raw bytes (inline commands, partial frames, protocol errors).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads the next reply or push. Fails with [`Error::Closed`] when the server closed the connection.
    pub async fn read_reply(&mut self) -> Result<RespValue, Error> {
        loop {
            if !self.pending.is_empty() {
                match parse_reply(&self.pending) {
                    Ok(Some((value, used))) => {
                        self.pending.advance(used);
                        return Ok(value);
                    }
                    Ok(None) => {
                        let tail = std::mem::take(&mut self.pending);
                        self.read_buf = match tail.try_into_mut() {
                            Ok(unique) => unique,
                            Err(shared) => BytesMut::from(shared.chunk()),
                        };
                    }
                    Err(e) => return Err(Error::Protocol(e.to_string())),
                }
            }
            if self.read_buf.capacity() - self.read_buf.len() < 4096 {
                self.read_buf.reserve(16 * 1024);
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(Error::Closed);
            }
            self.pending = self.read_buf.split().freeze();
        }
    }

    /// Reads until the server closes the connection, discarding anything it sends; returns the number of replies
    /// read first.
    pub async fn read_until_closed(&mut self) -> Result<usize, Error> {
        let mut replies = 0;
        loop {
            match self.read_reply().await {
                Ok(_) => replies += 1,
                Err(Error::Closed) => return Ok(replies),
                Err(Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return Ok(replies);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The address connected to, when connected by address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}
