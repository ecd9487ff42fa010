//! One JSON line per request on the `portcullis::access` target (the layer that
//! gathers it is `layer/access_log.rs`; this module formats and writes it).
//!
//! The line is written when the response body has been sent (or the client went
//! away), so that it carries the bytes sent and the whole duration: fields
//! `request_id`, `client_ip` (after the trusted-proxy rule), `method`, `path`
//! (canonical), `query` (allow-listed parameters only), `route`, `upstream`, `status`,
//! `reason` (for denials: `no_route`, `invalid_token`, `insufficient_scope`,
//! `rate_limited`…), `subject`, `client_id`, `duration_us`, `upstream_us` (until the
//! upstream's response head), `bytes_in` (request body bytes read), `bytes_out`.
//! Never a header value, a token, a password, or a query value not allow-listed.
//!
//! Where the lines go (stdout or a rotated file, through a non-blocking writer) is set
//! up in `logging.rs` with [`set_sink`]; the line is then formatted here, straight
//! into the worker's batch (`json_line.rs`; no tracing formatter — the generic JSON
//! formatter cost ~10 µs per request).
//! Without a sink (the library embedded elsewhere, tests), lines are `tracing` events
//! on the `portcullis::access` target with the same fields.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::json_line::{push_hex, push_ip, push_num, push_str, push_timestamp};
use crate::body::Body;

/// The fields of a line beyond the request's own: gathered once, from the answer's
/// facts, by the access-log layer (`layer/access_log.rs`).
#[derive(Debug, Default)]
pub struct Fields {
    pub path: Option<Arc<str>>,
    pub query: Option<String>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub reason: Option<&'static str>,
    pub upstream_us: Option<u64>,
    /// Request body bytes read so far (shared with the body that counts them).
    pub bytes_in: Option<Arc<AtomicU64>>,
}

impl Fields {
    fn bytes_in(&self) -> u64 {
        self.bytes_in
            .as_ref()
            .map_or(0, |b| b.load(Ordering::Relaxed))
    }
}

/// The allow-listed `name=value` pairs of a query string, in order.
pub fn allowed_query(query: &str, allow: &[String]) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            allow.iter().any(|a| a == name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The access log's destination, when the binary set one.
static SINK: std::sync::OnceLock<tracing_appender::non_blocking::NonBlocking> =
    std::sync::OnceLock::new();

/// Sends every access line to `writer` from now on.
pub fn set_sink(writer: tracing_appender::non_blocking::NonBlocking) {
    let _ = SINK.set(writer);
}

/// Lines are batched per worker thread and handed to the writer 32 KiB at a time, or
/// by [`flush_thread`] (every 250 ms and at shutdown, from the worker's own loop): one
/// hand-off per line cost a cross-thread wake-up and a write(2) each (~12 µs/request).
const BATCH_BYTES: usize = 32 * 1024;

thread_local! {
    static BATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The writer's queue holds this many batches: `server.access_log_buffer` bytes
/// (each batch is at most 32 KiB plus one line).
pub fn queue_batches(buffer_bytes: u64) -> usize {
    usize::try_from(buffer_bytes / BATCH_BYTES as u64)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Hands `batch` to the writer; when its queue is full the batch is dropped (the
/// writer is lossy: a slow disk never stalls a request) and its lines are counted in
/// `portcullis_access_log_dropped_lines_total`.
fn hand_off(sink: &tracing_appender::non_blocking::NonBlocking, batch: &[u8]) {
    use std::io::Write as _;
    let errors = sink.error_counter();
    let before = errors.dropped_lines();
    let _ = sink.clone().write_all(batch);
    if errors.dropped_lines() != before {
        let lines = batch.iter().filter(|&&b| b == b'\n').count();
        crate::metrics::metrics()
            .access_log_dropped
            .inc_by(u64::try_from(lines).unwrap_or(u64::MAX));
    }
}

/// Hands this thread's batched lines to the writer.
pub fn flush_thread() {
    let Some(sink) = SINK.get() else { return };
    BATCH.with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            if !b.is_empty() {
                hand_off(sink, &b);
                b.clear();
            }
        }
    });
}

/// The line being formatted into the batch: a panic half-way through takes its bytes
/// back out, so that the next line does not continue a fragment.
struct Partial<'a> {
    batch: &'a mut Vec<u8>,
    start: usize,
}

impl Drop for Partial<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.batch.truncate(self.start);
        }
    }
}

/// Formats one line (`write`) straight into this thread's batch (or, when the batch
/// is busy, into a buffer of its own, handed off at once).
fn write_line(
    sink: &tracing_appender::non_blocking::NonBlocking,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let mut write = Some(write);
    BATCH.with(|b| {
        // Taken only once the batch is ours: otherwise the line goes the slow way below.
        let Ok(mut b) = b.try_borrow_mut() else {
            return;
        };
        let Some(write) = write.take() else { return };
        {
            let line = Partial {
                start: b.len(),
                batch: &mut b,
            };
            write(&mut *line.batch);
        }
        if b.len() >= BATCH_BYTES {
            hand_off(sink, &b);
            b.clear();
        }
    });
    if let Some(write) = write {
        let mut line = Vec::with_capacity(1024);
        write(&mut line);
        hand_off(sink, &line);
    }
}

/// Everything the line needs once the body is done.
#[derive(Debug)]
pub struct Line {
    pub request_id: String,
    pub client_ip: std::net::IpAddr,
    pub method: http::Method,
    pub status: u16,
    pub started: Instant,
    pub info: Fields,
    /// The request's W3C trace id, when tracing is on.
    pub trace_id: Option<[u8; 16]>,
}

impl Line {
    fn emit(&self, bytes_out: u64) {
        let i = &self.info;
        let duration = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Some(sink) = SINK.get() {
            write_line(sink, |out| self.write_json(out, duration, bytes_out));
            return;
        }
        tracing::info!(
            target: "portcullis::access",
            request_id = self.request_id.as_str(),
            trace_id = self.trace_id.map(|t| crate::telemetry::hex(&t)).unwrap_or_default(),
            client_ip = self.client_ip.to_string().as_str(),
            method = self.method.as_str(),
            path = i.path.as_deref().unwrap_or(""),
            query = i.query.as_deref().unwrap_or(""),
            route = i.route.as_deref().unwrap_or(""),
            upstream = i.upstream.as_deref().unwrap_or(""),
            status = self.status,
            reason = i.reason.unwrap_or(""),
            subject = i.subject.as_deref().unwrap_or(""),
            client_id = i.client_id.as_deref().unwrap_or(""),
            duration_us = duration,
            upstream_us = i.upstream_us.unwrap_or(0),
            bytes_in = i.bytes_in(),
            bytes_out = bytes_out,
        );
    }

    /// The line as JSON, appended to `out`.
    fn write_json(&self, out: &mut Vec<u8>, duration: u64, bytes_out: u64) {
        let i = &self.info;
        out.extend_from_slice(b"{\"timestamp\":\"");
        push_timestamp(out, std::time::SystemTime::now());
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"portcullis::access\"");
        push_str(out, "request_id", &self.request_id);
        if let Some(t) = &self.trace_id {
            push_hex(out, "trace_id", t);
        }
        push_ip(out, "client_ip", self.client_ip);
        push_str(out, "method", self.method.as_str());
        push_str(out, "path", i.path.as_deref().unwrap_or(""));
        push_str(out, "query", i.query.as_deref().unwrap_or(""));
        push_str(out, "route", i.route.as_deref().unwrap_or(""));
        push_str(out, "upstream", i.upstream.as_deref().unwrap_or(""));
        push_num(out, "status", u64::from(self.status));
        push_str(out, "reason", i.reason.unwrap_or(""));
        push_str(out, "subject", i.subject.as_deref().unwrap_or(""));
        push_str(out, "client_id", i.client_id.as_deref().unwrap_or(""));
        push_num(out, "duration_us", duration);
        push_num(out, "upstream_us", i.upstream_us.unwrap_or(0));
        push_num(out, "bytes_in", i.bytes_in());
        push_num(out, "bytes_out", bytes_out);
        out.extend_from_slice(b"}\n");
    }
}

/// A response body that counts what it sends and writes the access line when it is
/// finished or dropped.
#[derive(Debug)]
pub struct Logged {
    inner: Body,
    sent: u64,
    line: Option<Line>,
}

impl Logged {
    pub fn new(inner: Body, line: Line) -> Logged {
        Logged {
            inner,
            sent: 0,
            line: Some(line),
        }
    }

    fn finish(&mut self) {
        if let Some(line) = self.line.take() {
            line.emit(self.sent);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that blocks until the test lets it go: the queue fills up.
    struct Stuck(std::sync::mpsc::Receiver<()>);

    impl std::io::Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_batches_and_counts_their_lines() {
        let (release, stuck) = std::sync::mpsc::channel();
        let (sink, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(queue_batches(64 << 10))
            .finish(Stuck(stuck));
        assert_eq!(queue_batches(64 << 10), 2);
        let dropped = || crate::metrics::metrics().access_log_dropped.get();
        let before = dropped();
        // Two batches queued (and perhaps one more taken by the stuck writer): the
        // rest are dropped.
        for _ in 0..8 {
            hand_off(&sink, b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
        }
        let counted = dropped() - before;
        assert!(
            (3 * 5..=3 * 6).contains(&counted) && counted % 3 == 0,
            "three lines per dropped batch: {counted}"
        );
        drop(release);
        drop(guard);
    }

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_written_while_the_batch_is_busy_is_handed_off_on_its_own() {
        let kept = Kept::default();
        let (sink, guard) = tracing_appender::non_blocking(kept.clone());
        BATCH.with(|b| {
            let _busy = b.borrow_mut();
            write_line(&sink, |out| out.extend_from_slice(b"{\"a\":1}\n"));
        });
        drop(guard);
        assert_eq!(kept.0.lock().expect("lock").as_slice(), b"{\"a\":1}\n");
    }

    #[test]
    fn a_panic_while_formatting_leaves_no_fragment_in_the_batch() {
        let kept = Kept::default();
        let (sink, guard) = tracing_appender::non_blocking(kept.clone());
        std::thread::spawn(move || {
            write_line(&sink, |out| out.extend_from_slice(b"{\"a\":1}\n"));
            let half = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                write_line(&sink, |out| {
                    out.extend_from_slice(b"{\"timestamp\":\"");
                    panic!("formatting failed");
                })
            }));
            assert!(half.is_err());
            write_line(&sink, |out| out.extend_from_slice(b"{\"b\":2}\n"));
            BATCH.with(|b| assert_eq!(b.borrow().as_slice(), b"{\"a\":1}\n{\"b\":2}\n"));
        })
        .join()
        .expect("the thread's own checks");
        drop(guard);
    }

    #[test]
    fn only_allow_listed_query_parameters_are_kept() {
        let allow = vec!["page".to_string(), "limit".to_string()];
        assert_eq!(
            allowed_query("page=2&token=secret&limit=10", &allow).as_deref(),
            Some("page=2&limit=10")
        );
        assert_eq!(allowed_query("access_token=abc", &allow), None);
        assert_eq!(
            allowed_query("pagex=1&page", &allow).as_deref(),
            Some("page")
        );
        assert_eq!(allowed_query("", &[]), None);
    }
}
