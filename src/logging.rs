//! Log setup for `run`: application logs and the access log, each with its own
//! filter, format and writer.
//!
//! Kept apart from `main.rs` because the access log's sink (a rotated file or stdout,
//! through a non-blocking writer) must be handed to the library before serving.

use std::path::Path;

use anyhow::Context;

/// Application logs on stdout (level from `RUST_LOG`, else `server.log_level`; JSON
/// unless `PORTCULLIS_LOG_FORMAT`/`server.log_format` say "text") and the access log
/// (target `portcullis::access`) on stdout or, with `server.access_log_file`, in a
/// rotated file through a non-blocking writer. The returned guard flushes the access
/// writer when dropped.
pub(crate) fn init_logging(
    server: &portcullis::config::ServerConfig,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::filter::{filter_fn, EnvFilter};
    use tracing_subscriber::prelude::*;
    const ACCESS: &str = "portcullis::access";
    let app_filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("PORTCULLIS_LOG_FORMAT")
        .map(|v| v != "text")
        .unwrap_or(server.log_format != "text");
    let app = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let app = if json {
        app.json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        app.boxed()
    };
    let app = app
        .with_filter(app_filter)
        .with_filter(filter_fn(|m| m.target() != ACCESS));
    // Access lines are formatted by portcullis itself (middleware/access_log.rs) and
    // written through a non-blocking, lossy writer whose queue is bounded in bytes
    // (server.access_log_buffer): to the rotated file, or to stdout.
    let queue = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(portcullis::middleware::access_log::queue_batches(
            server.access_log_buffer,
        ));
    let (writer, guard) = match &server.access_log_file {
        Some(path) => {
            use tracing_appender::rolling::{RollingFileAppender, Rotation};
            let rotation = match server.access_log_rotation.as_str() {
                "hourly" => Rotation::HOURLY,
                "minutely" => Rotation::MINUTELY,
                "never" => Rotation::NEVER,
                _ => Rotation::DAILY,
            };
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .context("access_log_file has no file name")?;
            queue.finish(RollingFileAppender::new(rotation, dir, name))
        }
        None => queue.finish(std::io::stdout()),
    };
    portcullis::middleware::access_log::set_sink(writer);
    tracing_subscriber::registry().with(app).init();
    Ok(guard)
}
