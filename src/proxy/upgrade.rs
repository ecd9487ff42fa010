//! Protocol upgrades (RFC 9110 §7.8): which ones a route lets through, and the tunnel
//! once the upstream has switched.
//!
//! `Upgrade` is hop-by-hop: the pipeline removes it with the other hop-by-hop headers,
//! and only an upgrade the route allows is sent on again. A route allows the protocols
//! in its `upgrades` (`["websocket"]` by default); `h2c` is never allowed (config
//! refuses it): an h2c tunnel would carry any number of HTTP/2 requests past the
//! route's policy. A disallowed upgrade is not refused — RFC 9110 lets a server
//! ignore `Upgrade`, and `curl --http2` on `http://` asks for h2c on every request —
//! it is forwarded as a plain request without the upgrade headers. An upstream that
//! answers `101` to a request that asked no (allowed) upgrade, or switches to another
//! protocol than the one asked, gets its connection closed and the client a `502`:
//! nothing is ever tunnelled that the route did not allow.

use super::tunnels::{self, TunnelLimits, TunnelSlot};
use http::header::UPGRADE;
use http::{HeaderValue, Method, Response, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::config::Route;

/// The protocol name of an `Upgrade` entry (`websocket`, `foo/2` → `foo`), lower-cased.
fn protocol_name(v: &str) -> String {
    v.split('/')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The `Upgrade` value to send on, when the client asked for one protocol that this
/// route allows, over HTTP/1.1 (WebSocket also needs `GET`, RFC 6455 §4.1).
pub fn allowed(
    requested: Option<HeaderValue>,
    route: &Route,
    method: &Method,
    version: Version,
) -> Option<HeaderValue> {
    let value = requested?;
    if version != Version::HTTP_11 {
        return None;
    }
    let text = value.to_str().ok()?.trim();
    // One protocol only: a list would let the upstream pick one the route did not allow.
    if text.is_empty() || text.contains(',') {
        return None;
    }
    // protocol-name ["/" protocol-version], both tokens (RFC 9110 §7.8); WebSocket
    // has no version (RFC 6455 §4.1: exactly "websocket").
    let is_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let mut parts = text.splitn(2, '/');
    let (name_part, version) = (parts.next().unwrap_or(""), parts.next());
    if !is_token(name_part) || version.is_some_and(|v| !is_token(v)) {
        return None;
    }
    let name = name_part.to_ascii_lowercase();
    if name == "websocket" && version.is_some() {
        return None;
    }
    let full = text.to_ascii_lowercase();
    if name == "h2c" || !route.upgrades.iter().any(|u| *u == name || *u == full) {
        return None;
    }
    if name == "websocket" && method != Method::GET {
        return None;
    }
    Some(value)
}

/// Whether a `101` answer switched to the protocol that was asked for.
pub fn switched_as_asked<B>(resp: &Response<B>, asked: &HeaderValue) -> bool {
    let Some(got) = resp.headers().get(UPGRADE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let asked = asked.to_str().unwrap_or("");
    !got.contains(',') && protocol_name(got) == protocol_name(asked)
}

/// Joins the client's and the upstream's upgraded connections until either closes,
/// it idles or shutdown ends it (`proxy/tunnels.rs`); `slot` counts it meanwhile.
pub fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    upstream_name: String,
    slot: Option<TunnelSlot>,
    limits: TunnelLimits,
) {
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((c, u)) => {
                let why = tunnels::run(TokioIo::new(c), TokioIo::new(u), slot, limits).await;
                tracing::debug!(upstream = %upstream_name, why, "upgraded connection closed");
            }
            Err(e) => tracing::debug!(upstream = %upstream_name, error = %e, "upgrade failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(upgrades: &[&str]) -> Route {
        let mut r = Route::for_tests("/ws/**", None, &[], &[], &[]);
        r.upgrades = upgrades.iter().map(|s| s.to_string()).collect();
        r
    }

    fn ask(v: &'static str, r: &Route, m: Method) -> Option<HeaderValue> {
        allowed(Some(HeaderValue::from_static(v)), r, &m, Version::HTTP_11)
    }

    #[test]
    fn only_listed_protocols_pass() {
        let ws = route(&["websocket"]);
        assert!(ask("websocket", &ws, Method::GET).is_some());
        assert!(ask("WebSocket", &ws, Method::GET).is_some());
        assert!(
            ask("websocket", &ws, Method::POST).is_none(),
            "WebSocket is GET"
        );
        assert!(ask("h2c", &ws, Method::GET).is_none());
        assert!(ask("websocket, h2c", &ws, Method::GET).is_none());
        assert!(ask("h2c, websocket", &ws, Method::GET).is_none());
        assert!(ask("foo/1", &ws, Method::GET).is_none());
        assert!(ask("", &ws, Method::GET).is_none());
        assert!(
            ask("websocket/13", &ws, Method::GET).is_none(),
            "no version"
        );
        assert!(ask("websocket/x: 13", &ws, Method::GET).is_none());
        assert!(ask("web socket", &ws, Method::GET).is_none());
        let none = route(&[]);
        assert!(ask("websocket", &none, Method::GET).is_none());
        let foo = route(&["foo"]);
        assert!(ask("foo/1", &foo, Method::POST).is_some());
        assert!(ask("foo/1/2", &foo, Method::POST).is_none());
        assert!(ask("foo/", &foo, Method::POST).is_none());
        let h2 = allowed(
            Some(HeaderValue::from_static("websocket")),
            &ws,
            &Method::GET,
            Version::HTTP_2,
        );
        assert!(h2.is_none(), "Upgrade means nothing in HTTP/2");
    }

    #[test]
    fn a_switch_must_match_the_ask() {
        let resp = |v: &'static str| {
            Response::builder()
                .status(101)
                .header(UPGRADE, v)
                .body(())
                .expect("response")
        };
        let ws = HeaderValue::from_static("websocket");
        assert!(switched_as_asked(&resp("websocket"), &ws));
        assert!(switched_as_asked(&resp("WebSocket"), &ws));
        assert!(!switched_as_asked(&resp("h2c"), &ws));
        let no_header = Response::builder().status(101).body(()).expect("response");
        assert!(!switched_as_asked(&no_header, &ws));
    }
}
