//! Upgraded connections (WebSocket tunnels) of a gateway: how many are open
//! (`server.max_tunnels`: one more upgrade is refused with `503` before it reaches
//! the upstream), when each was last used (`server.tunnel_idle_timeout`: a tunnel
//! with no byte either way for that long is closed), and shutdown (a tunnel gets
//! `server.shutdown_drain` from the moment the listeners stop, then is closed).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// The tunnels of one gateway.
#[derive(Debug)]
pub struct Tunnels {
    open: AtomicUsize,
    ended: Notify,
    closing: watch::Sender<bool>,
}

impl Tunnels {
    pub fn new() -> Arc<Tunnels> {
        Arc::new(Tunnels {
            open: AtomicUsize::new(0),
            ended: Notify::new(),
            closing: watch::channel(false).0,
        })
    }

    /// A slot for one more tunnel, unless `max` are open.
    pub fn reserve(self: &Arc<Tunnels>, max: usize) -> Option<TunnelSlot> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(TunnelSlot(self.clone()))
    }

    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Shutdown: every tunnel closes once `drain` has passed from now.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Waits until no tunnel is open.
    pub async fn all_closed(&self) {
        loop {
            let ended = self.ended.notified();
            if self.open() == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// One tunnel's place in the count; given back when dropped.
#[derive(Debug)]
pub struct TunnelSlot(Arc<Tunnels>);

impl Drop for TunnelSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.ended.notify_waiters();
    }
}

/// How long a tunnel may live.
#[derive(Debug, Clone, Copy)]
pub struct TunnelLimits {
    pub idle: Duration,
    pub drain: Duration,
}

/// An upgraded connection that records when bytes last moved through it.
struct Metered<T> {
    io: T,
    since: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Metered<T> {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Copies both ways until either side closes, the tunnel is idle for `limits.idle`,
/// or `limits.drain` after shutdown began. `slot` is held for as long.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    slot: Option<TunnelSlot>,
    limits: TunnelLimits,
) -> &'static str
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let since = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut c = Metered {
        io: client,
        since,
        last: last.clone(),
    };
    let mut u = Metered {
        io: upstream,
        since,
        last: last.clone(),
    };
    let mut closing = slot.as_ref().map(|s| s.0.closing.subscribe());
    let shutdown = async {
        match closing.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|c| *c).await;
                tokio::time::sleep(limits.drain).await;
            }
            None => std::future::pending().await,
        }
    };
    let idle = async {
        loop {
            let quiet = since
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= limits.idle {
                return;
            }
            tokio::time::sleep(limits.idle - quiet + Duration::from_millis(5)).await;
        }
    };
    let why = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut c, &mut u) => if r.is_ok() { "closed" } else { "error" },
        () = idle => "idle",
        () = shutdown => "shutdown",
    };
    drop(slot);
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_closes_and_gives_its_slot_back() {
        let tunnels = Tunnels::new();
        let slot = tunnels.reserve(1).expect("a slot");
        assert!(tunnels.reserve(1).is_none(), "the cap is one");
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let limits = TunnelLimits {
            idle: Duration::from_secs(60),
            drain: Duration::from_secs(10),
        };
        let task = tokio::spawn(run(client, upstream, Some(slot), limits));
        // Traffic keeps it open past one idle period.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            client_peer.write_all(b"ping").await.expect("write");
            let mut buf = [0u8; 4];
            upstream_peer.read_exact(&mut buf).await.expect("read");
        }
        assert!(!task.is_finished());
        assert_eq!(task.await.expect("join"), "idle");
        assert_eq!(tunnels.open(), 0);
        assert!(tunnels.reserve(1).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_a_busy_tunnel_after_the_drain_time() {
        let tunnels = Tunnels::new();
        let slot = tunnels.reserve(10).expect("a slot");
        let (client, _client_peer) = tokio::io::duplex(64);
        let (upstream, _upstream_peer) = tokio::io::duplex(64);
        let limits = TunnelLimits {
            idle: Duration::from_secs(3600),
            drain: Duration::from_secs(10),
        };
        let started = Instant::now();
        let task = tokio::spawn(run(client, upstream, Some(slot), limits));
        tokio::time::sleep(Duration::from_secs(5)).await;
        tunnels.close_all();
        assert_eq!(task.await.expect("join"), "shutdown");
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        tunnels.all_closed().await;
    }
}
