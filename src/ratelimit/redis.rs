//! The Redis backend of `[rate_limits]`: every decision is one Lua script run
//! atomically on the server (GCRA on the server's clock), so replicas share one budget.
//!
//! Keys are `portcullis:rl:POLICY:KEY`, KEY at most 66 bytes (long keys are digests,
//! [`crate::ratelimit::Key`]). A second script gives one request back (a login that
//! succeeded, [`super::Policy::refund`]). A Redis that fails or answers later than
//! `redis_timeout` is reported to the caller, which applies the policy's `on_error`.
//! The connection and every call run on the background runtime (`crate::runtime`).

use std::sync::Arc;

use crate::ratelimit::{Decision, Key, Rate};

use super::OnError;

/// GCRA in Redis: `KEYS[1]` holds the theoretical arrival time (µs, server clock);
/// `ARGV[1]` is the emission interval and `ARGV[2]` the burst tolerance, both in µs.
/// Returns `{1, 0}` (allowed) or `{0, wait_us}`.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"#;

/// Gives one emission interval (`ARGV[1]`, µs) back to `KEYS[1]`; a state back in the
/// past is "fresh" and deleted. Returns 1 when something was given back.
const REFUND_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
tat = tat - tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return 1
"#;

/// The shared Redis client of the policies with one [`super::RedisSpec`]. Its
/// connection and every script call run on the background runtime, never on the
/// worker that happened to make the first decision.
pub struct RedisBackend {
    inner: Arc<Inner>,
    bg: tokio::runtime::Handle,
    last_warning: std::sync::atomic::AtomicU64,
}

struct Inner {
    client: redis::Client,
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    /// Until when no new connection is attempted (µs since the epoch), after a failure.
    retry_after_us: std::sync::atomic::AtomicU64,
    timeout: std::time::Duration,
    script: redis::Script,
    refund: redis::Script,
}

impl std::fmt::Debug for RedisBackend {
    // The URL may hold a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Whether `url` is a Redis URL (parsing only: what `check` and validation use).
pub fn check_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo as _;
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| format!("not a Redis URL: {e}"))
}

impl RedisBackend {
    /// A client for `spec` whose I/O runs on `bg`; nothing connects until the first
    /// decision.
    pub fn new(
        spec: &super::RedisSpec,
        bg: tokio::runtime::Handle,
    ) -> Result<RedisBackend, String> {
        let client =
            redis::Client::open(spec.url.as_str()).map_err(|e| format!("not a Redis URL: {e}"))?;
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                client,
                conn: tokio::sync::OnceCell::new(),
                retry_after_us: std::sync::atomic::AtomicU64::new(0),
                timeout: spec.timeout,
                script: redis::Script::new(GCRA_LUA),
                refund: redis::Script::new(REFUND_LUA),
            }),
            bg,
            last_warning: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Runs `work` on the background runtime within the timeout.
    async fn on_bg<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let timeout = self.inner.timeout;
        let task = self.bg.spawn(async move {
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| Err(format!("Redis did not answer within {timeout:?}")))
        });
        task.await
            .unwrap_or_else(|e| Err(format!("Redis task failed: {e}")))
    }

    /// One GCRA decision for `policy`/`key`, atomically in Redis.
    pub async fn decide(
        &self,
        policy: &str,
        key: Key,
        rate: Rate,
        burst: u32,
    ) -> Result<Decision, String> {
        let interval = interval_us(rate);
        let tolerance = interval.saturating_mul(u64::from(burst.saturating_sub(1)));
        let redis_key = format!("portcullis:rl:{policy}:{}", key.as_text());
        let inner = self.inner.clone();
        self.on_bg(async move {
            let mut conn = inner.connection().await?;
            let (allowed, wait): (i64, i64) = inner
                .script
                .key(redis_key)
                .arg(interval)
                .arg(tolerance)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| format!("Redis decision failed: {e}"))?;
            Ok(if allowed == 1 {
                Decision::Allow
            } else {
                Decision::Limit {
                    retry_after: std::time::Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
                }
            })
        })
        .await
    }

    /// Gives one request back to `policy`/`key`.
    pub async fn refund(&self, policy: &str, key: Key, rate: Rate) -> Result<(), String> {
        let redis_key = format!("portcullis:rl:{policy}:{}", key.as_text());
        let inner = self.inner.clone();
        self.on_bg(async move {
            let mut conn = inner.connection().await?;
            let _: i64 = inner
                .refund
                .key(redis_key)
                .arg(interval_us(rate))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| format!("Redis refund failed: {e}"))?;
            Ok(())
        })
        .await
    }
    /// Logs a backend failure, at most once per 10 s.
    pub(super) fn warn(&self, policy: &str, on_error: OnError, error: &str) {
        use std::sync::atomic::Ordering;
        let now = now_us();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) > 10_000_000
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(policy, error, on_error = ?on_error, "rate-limit backend failed; applying on_error");
        }
    }
}

impl Inner {
    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        use std::sync::atomic::Ordering;
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        if now_us() < self.retry_after_us.load(Ordering::Relaxed) {
            return Err("Redis unreachable (retrying in a moment)".into());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let made = self
            .conn
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await;
        match made {
            Ok(c) => Ok(c.clone()),
            Err(e) => {
                self.retry_after_us
                    .store(now_us() + 1_000_000, Ordering::Relaxed);
                Err(format!("Redis connection failed: {e}"))
            }
        }
    }
}

/// The emission interval of `rate` in µs (at least 1).
fn interval_us(rate: Rate) -> u64 {
    u64::try_from((rate.per / rate.count).as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}
