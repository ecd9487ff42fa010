//! What the two floors of `bench/` share (`hyper_floor.rs`, `raw_floor.rs`): the
//! `LISTEN_ADDR UPSTREAM_ADDR` arguments, one current-thread tokio runtime, and the
//! accept loop handing each client connection to `serve` in a task of its own.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Serves until SIGINT (a background job of a script starts with SIGINT ignored, so
/// the floor handles it itself).
pub fn run<F, Fut>(name: &str, serve: F) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>| -> std::io::Result<SocketAddr> {
        a.and_then(|a| a.parse().ok()).ok_or_else(|| {
            std::io::Error::other(format!("usage: {name} LISTEN_ADDR UPSTREAM_ADDR"))
        })
    };
    let (listen, upstream) = (parse(args.next())?, parse(args.next())?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve(tcp, upstream));
        }
    })
}
