//! `GET /metrics` on the admin listener after a scripted mix of allowed, denied and
//! limited requests, parsed by the Prometheus project's Python client (its
//! OpenMetrics parser, which refuses malformed exposition), checked for the
//! OpenTelemetry names and Portcullis' own, with labels from the configuration only.

use std::process::Command;

use serde_json::Value;

use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;
use crate::token::config as token_config;

/// Parses the exposition with `prometheus_client` and prints every sample as JSON.
const PARSE: &str = r##"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic
text = sys.stdin.read()
out = {}
for fam in text_string_to_metric_families(text):
    out[fam.name] = {"type": fam.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value} for s in fam.samples]}
# The classic text parser (what a Prometheus 0.0.4 scraper runs) reads it too.
assert sum(1 for _ in classic(text.replace("# EOF\n", ""))) > 0
print(json.dumps(out))
"##;

fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    fam["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().expect("number"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_mix_of_allowed_denied_and_limited_requests() {
    let up = RawUpstream::start(Answer::Ok).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}/m.db", dir.path().display());
    let extra = "[[routes]]\nname = \"metrics-public\"\npath = \"/public/**\"\nupstream = \"up\"\nauth = \"none\"\n\
                 [[routes]]\nname = \"metrics-limited\"\npath = \"/limited/**\"\nupstream = \"up\"\nauth = \"none\"\nrate_limit = \"metrics-tight\"\n\
                 [rate_limits.metrics-tight]\nkey = \"ip\"\nrate = \"1/1h\"\n";
    // An upstream and an issuer that do not answer: an upstream error and a failed
    // JWKS fetch.
    let closed = closed_port().await;
    let down = format!(
        "[[upstreams]]\nname = \"metrics-down\"\nurl = \"http://{closed}\"\n\
         [[routes]]\nname = \"metrics-down\"\npath = \"/down/**\"\nupstream = \"metrics-down\"\nauth = \"none\"\n\
         [[issuers]]\nissuer = \"http://{closed}/idp\"\njwks_url = \"http://{closed}/jwks\"\naudiences = [\"api\"]\n"
    );
    let toml = format!(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\n{}",
        token_config(&store, "", &format!("{extra}{down}"))
    );
    let gw = gateway(&toml, Some(up.addr)).await;
    let a = gw.addr;
    for _ in 0..3 {
        assert_eq!(get(a, "/public/x", &[]).await.status, 200);
    }
    assert_eq!(get(a, "/items/1", &[]).await.status, 401);
    assert_eq!(
        get(a, "/items/1", &["Authorization: Bearer nope"])
            .await
            .status,
        401
    );
    assert_eq!(get(a, "/nowhere", &[]).await.status, 404);
    assert_eq!(get(a, "/limited/a", &[]).await.status, 200);
    assert_eq!(get(a, "/limited/a", &[]).await.status, 429);
    let token = |body: &str| {
        format!(
            "POST /token HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let bad = raw(
        a,
        &token("grant_type=password&username=johndoe&password=wrong"),
    )
    .await;
    assert_eq!(bad.status, 400);
    let good = raw(
        a,
        &token("grant_type=password&username=johndoe&password=secret"),
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.body);
    let access = good.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let auth = format!("Authorization: Bearer {access}");
    assert_eq!(get(a, "/items/1", &[&auth]).await.status, 200);
    let post = raw(
        a,
        &format!("POST /items/1 HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(post.status, 403);
    assert_eq!(get(a, "/down/x", &[]).await.status, 502);

    let admin = gw.admin_addr.expect("admin");
    // The issuer's first fetch runs in the background: scrape once it has failed.
    let failed = format!(
        "portcullis_jwks_fetches_total{{issuer=\"http://{closed}/idp\",result=\"failure\"}}"
    );
    let mut scrape = get(admin, "/metrics", &[]).await;
    for _ in 0..200 {
        if scrape.body.contains(&failed) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        scrape = get(admin, "/metrics", &[]).await;
    }
    assert_eq!(scrape.status, 200);
    assert!(scrape
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/openmetrics-text")));
    assert!(!scrape.body.contains(&access), "a token in the metrics");
    assert!(!scrape.body.contains("johndoe"), "a subject in the metrics");
    assert!(!scrape.body.contains("/items/1"), "a path in the metrics");

    let py = crate::clients::python();
    let body = scrape.body.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new(py)
            .args(["-c", PARSE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write");
        child.wait_with_output().expect("python ends")
    })
    .await
    .expect("parse");
    assert!(
        parsed.status.success(),
        "the exposition does not parse: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let f: Value = serde_json::from_slice(&parsed.stdout).expect("json");

    let req = "http_server_request_duration_seconds";
    assert_eq!(f[req]["type"], "histogram");
    let count = |route: &str, method: &str, status: &str| {
        sample(
            &f,
            req,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", route),
                ("http_request_method", method),
                ("http_response_status_code", status),
            ],
        )
    };
    assert_eq!(count("metrics-public", "GET", "200"), 3.0);
    assert_eq!(count("metrics-limited", "GET", "200"), 1.0);
    assert_eq!(count("metrics-limited", "GET", "429"), 1.0);
    assert_eq!(count("portcullis:token", "POST", "400"), 1.0);
    assert_eq!(count("portcullis:token", "POST", "200"), 1.0);
    assert!(
        count("", "GET", "404") >= 1.0,
        "unmatched requests: no route label"
    );
    assert_eq!(f["http_server_active_requests"]["type"], "gauge");
    let client = "http_client_request_duration_seconds_count";
    assert!(
        sample(
            &f,
            "http_client_request_duration_seconds",
            client,
            &[("upstream", "up"), ("http_response_status_code", "200")]
        ) >= 5.0
    );

    let auth = |outcome: &str, reason: &str| {
        sample(
            &f,
            "portcullis_auth_decisions",
            "portcullis_auth_decisions_total",
            &[("outcome", outcome), ("reason", reason)],
        )
    };
    assert!(
        auth("denied", "no_token") >= 1.0,
        "{}",
        f["portcullis_auth_decisions"]
    );
    assert!(auth("denied", "insufficient_scope") >= 1.0);
    assert!(auth("allowed", "credential") >= 1.0);
    assert!(auth("allowed", "anonymous") >= 4.0);
    let grants = |outcome: &str| {
        sample(
            &f,
            "portcullis_token_grants",
            "portcullis_token_grants_total",
            &[("grant_type", "password"), ("outcome", outcome)],
        )
    };
    // The first use of the issued token verified it (a miss), the POST found it in
    // the cache (a hit). The counters are process-wide and other tests in this binary
    // add to them, hence "at least".
    let cache = |result: &str| {
        sample(
            &f,
            "portcullis_token_cache_lookups",
            "portcullis_token_cache_lookups_total",
            &[("result", result)],
        )
    };
    assert!(
        cache("hit") >= 1.0,
        "{}",
        f["portcullis_token_cache_lookups"]
    );
    assert!(
        cache("miss") >= 2.0,
        "{}",
        f["portcullis_token_cache_lookups"]
    );
    assert!(grants("success") >= 1.0);
    assert!(grants("invalid_grant") >= 1.0);
    let limited = |decision: &str| {
        sample(
            &f,
            "portcullis_rate_limit_decisions",
            "portcullis_rate_limit_decisions_total",
            &[("policy", "metrics-tight"), ("decision", decision)],
        )
    };
    assert_eq!((limited("allowed"), limited("limited")), (1.0, 1.0));
    assert!(
        sample(
            &f,
            "portcullis_open_connections",
            "portcullis_open_connections",
            &[("listener", "public")]
        ) >= 0.0
    );
    assert!(
        sample(
            &f,
            "portcullis_upstream_pool_idle_connections",
            "portcullis_upstream_pool_idle_connections",
            &[("upstream", "up")]
        ) >= 1.0,
        "the pool's idle connections"
    );
    let upstream_errors = sample(
        &f,
        "portcullis_upstream_errors",
        "portcullis_upstream_errors_total",
        &[("upstream", "metrics-down"), ("kind", "connect")],
    );
    assert_eq!(upstream_errors, 1.0);
    let issuer = format!("http://{closed}/idp");
    let fetches = sample(
        &f,
        "portcullis_jwks_fetches",
        "portcullis_jwks_fetches_total",
        &[("issuer", &issuer), ("result", "failure")],
    );
    assert!(fetches >= 1.0);
    for family in [
        "portcullis_tls_handshakes",
        "portcullis_config_reloads",
        "portcullis_config_last_reload_success_timestamp_seconds",
        "portcullis_access_log_dropped_lines",
        "portcullis_load_shed",
    ] {
        assert!(f.get(family).is_some(), "{family} is exposed");
    }
    assert!(
        sample(
            &f,
            "portcullis_config_last_reload_success_timestamp_seconds",
            "portcullis_config_last_reload_success_timestamp_seconds",
            &[]
        ) > 1.7e9
    );
    gw.shutdown().await;
}
