//! The request-head deadline (`server.header_read_timeout`) and its `408`.
//!
//! hyper enforces the deadline for HTTP/1 heads but closes the connection without a
//! word, and hyper-util's protocol detection (which reads the first bytes of a
//! connection to tell HTTP/1 from HTTP/2, for as long as they match the HTTP/2
//! preface) has no deadline at all: a client that connects and sends nothing, or
//! `P`, or the whole preface and nothing after it, would hold its connection forever.
//! So:
//! - the connection task (`server.rs`) gives every connection the deadline to bring
//!   its first request, whatever the protocol, and closes it otherwise; after that,
//!   hyper's own HTTP/1 head deadline applies to each further request;
//! - [`WatchedIo`] also bounds slow readers: a write that makes no progress for
//!   `server.write_timeout` (the client stopped reading and the send buffer is full)
//!   fails, and the connection is closed;
//! - [`WatchedIo`] wraps the socket and remembers whether bytes arrived since the
//!   gateway last wrote. When a head deadline passes (the task's, or hyper's, whose
//!   error `is_timeout()`), the task marks the connection and drops it; if a request
//!   had begun (bytes read, nothing answered), the drop writes a `408` before the
//!   socket closes. A silent or idle keep-alive connection is closed without a word:
//!   a `408` nobody asked for could be read as the answer to the client's next
//!   request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
content-type: application/json\r\n\
cache-control: no-store\r\n\
connection: close\r\n\
content-length: 90\r\n\r\n\
{\"error\":\"request_timeout\",\"error_description\":\"the request head did not arrive in time\"}\n";

/// A client socket that answers `408` when dropped after a head deadline passed
/// mid-request.
#[derive(Debug)]
pub struct WatchedIo {
    stream: TcpStream,
    /// Bytes were read since the last write: a request is (partly) in.
    unanswered: bool,
    timed_out: Arc<AtomicBool>,
    /// Whether the canned `408` may be written (plain connections: over TLS the
    /// socket carries records, and the connection is closed without a word).
    answer: bool,
    /// `server.write_timeout`: how long a write may make no progress.
    write_timeout: Duration,
    /// Started when a write could not proceed (the client does not read).
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WatchedIo {
    /// Wraps `stream`; the returned flag is set by the connection task when hyper
    /// reports a head timeout, before it drops the connection.
    pub fn new(
        stream: TcpStream,
        answer: bool,
        write_timeout: Duration,
    ) -> (WatchedIo, Arc<AtomicBool>) {
        let timed_out = Arc::new(AtomicBool::new(false));
        let io = WatchedIo {
            stream,
            unanswered: false,
            timed_out: timed_out.clone(),
            answer,
            write_timeout,
            stalled: None,
        };
        (io, timed_out)
    }
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        if self.answer && self.unanswered && self.timed_out.load(Ordering::Relaxed) {
            // Non-blocking: the answer is small and the send buffer empty (nothing was
            // written since the request began). If it does not fit, the client gets
            // the close alone, as it would without this.
            let _ = self.stream.try_write(REQUEST_TIMEOUT);
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.unanswered = true;
        }
        res
    }
}

impl WatchedIo {
    /// A write that returned `Pending` starts the stall timer; progress stops it; the
    /// timer firing fails the write (the connection is then closed by hyper).
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.stalled = None;
            return res;
        }
        let timeout = self.write_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for server.write_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unanswered = false;
        let res = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch_write(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unanswered = false;
        let res = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch_write(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch_write(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_answer_is_well_framed() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert_eq!(body.len(), len);
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"], "request_timeout");
    }
}
