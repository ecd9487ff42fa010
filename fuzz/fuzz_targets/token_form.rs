//! The `/token` form parser (`src/token/endpoint.rs` `Form`) and client authentication
//! (RFC 6749 §2.3) on a real config with a confidential client `web` (secret known
//! here) and a public default client `cli`.
//!
//! Input modes (first byte):
//! - `F` + body: the form parser alone. `form-duplicates`: it refuses a body in which a
//!   name occurs twice and accepts every other one; `form-values`: each name's value is
//!   the percent-decoded value of its only occurrence, an empty value counting as
//!   absent (checked against an independent `application/x-www-form-urlencoded` split).
//! - `B` + Authorization header value + NUL + body: client authentication. An accepted
//!   confidential client (`client-secret`) presented its real secret, through exactly
//!   one method; an accepted public client (`public-no-secret`) presented none; a
//!   request naming no client is the default client (`default-client`).
//! - anything else: name/value pairs (structured), serialized with `form_urlencoded`
//!   and parsed back (`form-roundtrip`).

#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{authenticate_client, parse_config, parse_form};
use portcullis::Config;
use portcullis_fuzz::{check, sha256_hex, test_fixture};

const WEB_SECRET: &str = "web-secret-for-the-fuzzer-0123456789";

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = format!(
            r#"
[tokens]
issuer = "https://gw.fuzz"
audiences = ["api"]
signing_key = "es"
default_client = "cli"
[[tokens.keys]]
kid = "es"
alg = "ES256"
private_key = "{es}"

[users]
store = "sqlite://unused.db"

[[clients]]
client_id = "web"
secret_sha256 = "{web}"
grants = ["client_credentials", "password"]

[[clients]]
client_id = "cli"
grants = ["password", "refresh_token"]

[[upstreams]]
name = "up"
echo = true
[[routes]]
path = "/**"
upstream = "up"
"#,
            es = test_fixture("es256.key").display(),
            web = sha256_hex(WEB_SECRET.as_bytes()),
        );
        parse_config(&text, Path::new("token_form.toml")).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// `application/x-www-form-urlencoded` parsing, written from the WHATWG URL standard
/// (split on `&`, then on the first `=`, `+` is a space, percent-decode, UTF-8 lossy).
fn reference_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (
                        s.get(i + 1).and_then(|&b| hex(b)),
                        s.get(i + 2).and_then(|&b| hex(b)),
                    ) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 3;
                            continue;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&p[..i]), decode(&p[i + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn check_form(body: &[u8]) {
    let pairs = reference_pairs(body);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (k, _) in &pairs {
        *counts.entry(k.as_str()).or_default() += 1;
    }
    let duplicated = counts.values().any(|&n| n > 1);
    let parsed = parse_form(body);
    check("form-duplicates", parsed.is_ok() != duplicated, || {
        format!(
            "{:?}: duplicated {duplicated}, parsed {:?}",
            String::from_utf8_lossy(body),
            parsed.as_ref().err()
        )
    });
    if let Ok(form) = parsed {
        for (k, v) in &pairs {
            let expected = (!v.is_empty()).then_some(v.as_str());
            check("form-values", form.get(k) == expected, || {
                format!(
                    "{:?}: {k:?} is {:?}, expected {expected:?}",
                    String::from_utf8_lossy(body),
                    form.get(k)
                )
            });
        }
    }
}

/// What the request presented: (Basic id and secret, form id, form secret).
struct Presented {
    basic: Option<(String, String)>,
    form_id: Option<String>,
    form_secret: Option<String>,
}

fn presented(authorization: Option<&[u8]>, body: &[u8]) -> Presented {
    let unescape = |s: &str| {
        reference_pairs(format!("x={s}").as_bytes())
            .pop()
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let basic = authorization.and_then(|a| {
        let s = std::str::from_utf8(a).ok()?;
        let (scheme, rest) = s.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        Some((unescape(id), unescape(secret)))
    });
    let pairs = reference_pairs(body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Presented {
        basic,
        form_id: get("client_id"),
        form_secret: get("client_secret"),
    }
}

fn check_client(authorization: Option<&[u8]>, body: &[u8]) {
    // What cannot be a header value never reaches the parser.
    let authorization = authorization.filter(|a| http::HeaderValue::from_bytes(a).is_ok());
    let Ok(form) = parse_form(body) else {
        return;
    };
    let Some(result) = authenticate_client(config(), authorization, &form) else {
        unreachable!("the config has a token service");
    };
    let Ok((client, basic)) = result else {
        return;
    };
    let p = presented(authorization, body);
    let ctx = || {
        format!(
            "accepted {client:?} (basic {basic}) for Authorization {:?}, body {:?}",
            authorization.map(String::from_utf8_lossy),
            String::from_utf8_lossy(body)
        )
    };
    check("basic-detected", basic == p.basic.is_some(), ctx);
    let secret = match &p.basic {
        Some((id, secret)) => {
            check("one-method", p.form_secret.is_none(), ctx);
            check(
                "basic-id",
                id == &client && p.form_id.as_ref().is_none_or(|f| f == id),
                ctx,
            );
            Some(secret.as_str())
        }
        None => {
            check(
                "form-id",
                p.form_id.as_ref().is_none_or(|f| f == &client),
                ctx,
            );
            p.form_secret.as_deref()
        }
    };
    match client.as_str() {
        "web" => check("client-secret", secret == Some(WEB_SECRET), ctx),
        "cli" => check("public-no-secret", secret.is_none(), ctx),
        _ => check("known-client", false, ctx),
    }
    if p.basic.is_none() && p.form_id.is_none() {
        check("default-client", client == "cli", ctx);
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'F', body)) => check_form(body),
        Some((b'B', rest)) => {
            let (auth, body) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
                None => (None, rest),
            };
            check_form(body);
            check_client(auth, body);
        }
        _ => {
            let mut u = Unstructured::new(data);
            let Ok(pairs) = Vec::<(String, String)>::arbitrary(&mut u) else {
                return;
            };
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            check_form(body.as_bytes());
            let mut unique: HashMap<&str, &str> = HashMap::new();
            let dup = pairs.iter().any(|(k, v)| unique.insert(k, v).is_some());
            if let Ok(form) = parse_form(body.as_bytes()) {
                for (k, v) in &unique {
                    let expected = (!v.is_empty()).then_some(*v);
                    check("form-roundtrip", !dup && form.get(k) == expected, || {
                        format!("{pairs:?} → {body:?}: {k:?} is {:?}", form.get(k))
                    });
                }
            } else {
                check("form-roundtrip", dup, || {
                    format!("{pairs:?} → {body:?} refused")
                });
            }
        }
    }
});
