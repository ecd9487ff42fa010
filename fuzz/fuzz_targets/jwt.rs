//! JWT parsing and claim checks: the own-key verifier (`[tokens]`) of a real config
//! with an HS256 key (`kid = "hs"`) and an RS256 public key (`kid = "rs"`).
//!
//! Input modes (first byte):
//! - `T` + token: an arbitrary token string (seeds: real tokens);
//! - `J` + header JSON + NUL + claims JSON: those bytes (`NOW` in the claims replaced by
//!   the current time), HS256-signed with the real key, so the claim checks see
//!   arbitrary JSON (duplicate names, fractions, arrays, huge numbers…);
//! - anything else: a structured token (header and claims chosen field by field from
//!   the fuzz input, signed with the real key, a wrong key or the RSA public key as an
//!   HMAC secret).
//!
//! A token the verifier accepts must have (`accepted-*`): a valid HS256 signature with
//! the real secret and `alg: HS256` (never `none`, never alg confusion), `kid` absent or
//! `hs`, no `crit`, no `enc`, `typ` absent or `JWT`/`at+jwt`/`application/at+jwt`;
//! `exp` a number not past (leeway 60 s); `nbf` and `iat`, when present, numbers not in
//! the future; `iat` present and `exp - iat` ≤ `max_lifetime` (1 h); `iss` the string
//! `https://gw.fuzz` (not an array); `aud` `api` or an array naming it; `sub` a non-empty
//! string equal to the principal's subject. JSON members are read last-wins (RFC 7519
//! §4 allows that, or refusal), so a duplicate claim cannot pass on its first value.
//! And the converse (`valid-accepted`, nobody is locked out): a structured token that
//! breaks no rule is accepted (`valid-accepted`), and so is one with fractional
//! NumericDates (`valid-accepted-fraction`, RFC 7519 §2).

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{parse_config, verify_own_token};
use portcullis::Config;
use portcullis_fuzz::{check, hs256_secret, hs256_valid, jws_part, now, sign_hs256, test_fixture};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://gw.fuzz";
const LEEWAY: f64 = 60.0;
const MAX_LIFETIME: f64 = 3600.0;

struct Setup {
    config: Config,
    secret: Vec<u8>,
    rsa_public_pem: Vec<u8>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let text = format!(
            r#"
[tokens]
issuer = "{ISSUER}"
audiences = ["api", "other-api"]
leeway = "60s"
max_lifetime = "1h"
[[tokens.keys]]
kid = "hs"
alg = "HS256"
secret_file = "{hs}"
[[tokens.keys]]
kid = "rs"
alg = "RS256"
public_key = "{rs}"

[[upstreams]]
name = "up"
echo = true
[[routes]]
path = "/**"
upstream = "up"
"#,
            hs = test_fixture("hs256.secret").display(),
            rs = test_fixture("rs256.pub").display(),
        );
        let config = parse_config(&text, Path::new("jwt.toml")).unwrap_or_else(|e| panic!("{e}"));
        Setup {
            config,
            secret: hs256_secret(),
            rsa_public_pem: std::fs::read(test_fixture("rs256.pub")).expect("rs256.pub"),
        }
    })
}

fn number(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// Every rule an accepted token must satisfy.
fn check_accepted(token: &str, subject: &str) {
    let s = setup();
    let header = jws_part(token, 0).unwrap_or_default();
    let claims = jws_part(token, 1).unwrap_or_default();
    let t = now();
    let ctx = || format!("header {header:?}, claims {claims:?}");

    check("accepted-signature", hs256_valid(token, &s.secret), ctx);
    check(
        "accepted-alg",
        header.get("alg") == Some(&json!("HS256")),
        ctx,
    );
    check(
        "accepted-kid",
        matches!(header.get("kid"), None | Some(Value::String(_)))
            && header.get("kid").is_none_or(|k| k == "hs"),
        ctx,
    );
    check("accepted-crit", !header.contains_key("crit"), ctx);
    check("accepted-enc", !header.contains_key("enc"), ctx);
    check(
        "accepted-typ",
        match header.get("typ") {
            None => true,
            Some(Value::String(t)) => {
                ["jwt", "at+jwt", "application/at+jwt"].contains(&t.to_ascii_lowercase().as_str())
            }
            Some(_) => false,
        },
        ctx,
    );
    let exp = number(claims.get("exp"));
    check(
        "accepted-exp",
        exp.is_some_and(|e| e > t - LEEWAY - 1.0),
        ctx,
    );
    check(
        "accepted-nbf",
        claims
            .get("nbf")
            .is_none_or(|v| v.as_f64().is_some_and(|n| n <= t + LEEWAY + 1.0)),
        ctx,
    );
    let iat = number(claims.get("iat"));
    check(
        "accepted-iat",
        claims
            .get("iat")
            .is_none_or(|_| iat.is_some_and(|i| i <= t + LEEWAY + 1.0)),
        ctx,
    );
    check(
        "accepted-lifetime",
        matches!((exp, iat), (Some(e), Some(i)) if e - i <= MAX_LIFETIME),
        ctx,
    );
    check(
        "accepted-iss",
        claims.get("iss") == Some(&json!(ISSUER)),
        ctx,
    );
    check(
        "accepted-aud",
        match claims.get("aud") {
            Some(Value::String(a)) => a == "api" || a == "other-api",
            Some(Value::Array(items)) => items.iter().any(|a| a == "api" || a == "other-api"),
            _ => false,
        },
        ctx,
    );
    check(
        "accepted-sub",
        matches!(claims.get("sub"), Some(Value::String(s)) if !s.is_empty() && s == subject),
        ctx,
    );
}

fn verify(token: &str) -> bool {
    match verify_own_token(&setup().config, token) {
        Some(Ok(p)) => {
            check_accepted(token, &p.subject);
            true
        }
        Some(Err(_)) => false,
        None => unreachable!("the config has [tokens]"),
    }
}

/// A NumericDate relative to now.
#[derive(Debug, Arbitrary)]
struct Time {
    /// Seconds from now (±9 h: around the 60 s leeway and the 1 h lifetime).
    offset: i16,
    /// Hundredths of a second added (a fraction, RFC 7519 §2).
    fraction: Option<u8>,
    as_string: bool,
}

impl Time {
    fn value(&self, base: f64) -> Value {
        let secs = base.floor() + f64::from(self.offset);
        let v = match self.fraction {
            Some(f) => json!(secs + f64::from(f % 100) / 100.0),
            None => json!(secs as i64),
        };
        if self.as_string {
            json!(v.to_string())
        } else {
            v
        }
    }
    fn sane(&self) -> bool {
        !self.as_string
    }
}

// The first variant of each choice is the valid one: an exhausted input (arbitrary's
// defaults) makes a token that breaks no rule.
#[derive(Debug, Arbitrary)]
enum Choice<T> {
    Good,
    Absent,
    Other(T),
}

#[derive(Debug, Arbitrary)]
enum Iss {
    Ours,
    Other(String),
    ArrayWithOurs(bool),
    Number(i64),
}

#[derive(Debug, Arbitrary)]
enum Aud {
    Api,
    ArrayWithApi(Vec<String>),
    Other(String),
    Array(Vec<String>),
    Number(i64),
}

#[derive(Debug, Arbitrary)]
enum Key {
    Real,
    RsaPublicPemAsSecret,
    Wrong(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Structured {
    alg: Choice<String>,
    kid: Choice<String>,
    /// 0: absent, 1: JWT, 2: at+jwt, 3: application/at+jwt, else `typ_other`.
    typ: u8,
    typ_other: String,
    enc: bool,
    crit: bool,
    iss: Iss,
    omit_iss: bool,
    sub: Choice<String>,
    aud: Aud,
    omit_aud: bool,
    exp: Time,
    omit_exp: bool,
    nbf: Option<Time>,
    iat: Time,
    omit_iat: bool,
    scope: Option<String>,
    /// A second member with the name of a registered claim, written first.
    duplicate: Option<(u8, Time)>,
    extra: Vec<(String, String)>,
    key: Key,
    tamper: bool,
}

const REGISTERED: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"];

fn json_member(k: &str, v: &Value) -> String {
    format!("{}:{}", json!(k), v)
}

impl Structured {
    /// Whether a NumericDate with a fraction is in it.
    fn has_fraction(&self) -> bool {
        (!self.omit_exp && self.exp.fraction.is_some())
            || (!self.omit_iat && self.iat.fraction.is_some())
            || self.nbf.as_ref().is_some_and(|t| t.fraction.is_some())
    }

    fn build(&self, s: &Setup) -> (String, bool) {
        let t = now();
        let mut sane = true;
        let mut header = Map::new();
        match &self.alg {
            Choice::Absent => sane = false,
            Choice::Good => {
                header.insert("alg".into(), json!("HS256"));
            }
            Choice::Other(a) => {
                sane &= a == "HS256";
                header.insert("alg".into(), json!(a));
            }
        }
        match &self.kid {
            Choice::Absent => {}
            Choice::Good => {
                header.insert("kid".into(), json!("hs"));
            }
            Choice::Other(k) => {
                sane &= k == "hs";
                header.insert("kid".into(), json!(k));
            }
        }
        match self.typ % 8 {
            0 => {}
            1 => {
                header.insert("typ".into(), json!("JWT"));
            }
            2 => {
                header.insert("typ".into(), json!("at+jwt"));
            }
            3 => {
                header.insert("typ".into(), json!("application/at+jwt"));
            }
            _ => {
                let ok = ["jwt", "at+jwt", "application/at+jwt"]
                    .contains(&self.typ_other.to_ascii_lowercase().as_str());
                sane &= ok;
                header.insert("typ".into(), json!(self.typ_other));
            }
        }
        if self.enc {
            sane = false;
            header.insert("enc".into(), json!("A256GCM"));
        }
        if self.crit {
            sane = false;
            header.insert("crit".into(), json!(["exp"]));
        }

        let mut members = Vec::new();
        if let Some((which, time)) = &self.duplicate {
            // Written first: a last-wins parser must use the later, real member; refusing
            // duplicates is allowed too (RFC 7519 §4), so such a token need not pass.
            sane = false;
            let name = ["exp", "nbf", "iat", "iss", "aud", "sub"][usize::from(*which) % 6];
            members.push(json_member(name, &time.value(t)));
        }
        match (self.omit_iss, &self.iss) {
            (true, _) => sane = false,
            (false, Iss::Ours) => members.push(json_member("iss", &json!(ISSUER))),
            (false, Iss::Other(o)) => {
                sane &= o == ISSUER;
                members.push(json_member("iss", &json!(o)));
            }
            (false, Iss::ArrayWithOurs(first)) => {
                sane = false;
                let v = if *first {
                    json!([ISSUER, "https://evil.example"])
                } else {
                    json!(["https://evil.example", ISSUER])
                };
                members.push(json_member("iss", &v));
            }
            (false, Iss::Number(n)) => {
                sane = false;
                members.push(json_member("iss", &json!(n)));
            }
        }
        match &self.sub {
            Choice::Absent => sane = false,
            Choice::Good => members.push(json_member("sub", &json!("alice"))),
            Choice::Other(o) => {
                sane &= !o.is_empty() && o.bytes().all(|b| (0x20..0x7f).contains(&b));
                members.push(json_member("sub", &json!(o)));
            }
        }
        match (self.omit_aud, &self.aud) {
            (true, _) => sane = false,
            (false, Aud::Api) => members.push(json_member("aud", &json!("api"))),
            (false, Aud::ArrayWithApi(others)) => {
                let mut v: Vec<Value> = others.iter().map(|o| json!(o)).collect();
                v.push(json!("api"));
                members.push(json_member("aud", &Value::Array(v)));
            }
            (false, Aud::Other(o)) => {
                sane &= o == "api" || o == "other-api";
                members.push(json_member("aud", &json!(o)));
            }
            (false, Aud::Array(items)) => {
                sane &= items.iter().any(|a| a == "api" || a == "other-api");
                members.push(json_member("aud", &json!(items)));
            }
            (false, Aud::Number(n)) => {
                sane = false;
                members.push(json_member("aud", &json!(n)));
            }
        }
        // Margins of 5 s around every bound, so that the second that passes between
        // signing and verifying cannot flip the expectation.
        let exp_off = (!self.omit_exp).then_some(f64::from(self.exp.offset));
        let iat_off = (!self.omit_iat).then_some(f64::from(self.iat.offset));
        match (self.omit_exp, &self.exp) {
            (true, _) => sane = false,
            (false, e) => {
                sane &= e.sane() && f64::from(e.offset) > -LEEWAY + 5.0;
                members.push(json_member("exp", &e.value(t)));
            }
        }
        match &self.nbf {
            None => {}
            Some(n) => {
                sane &= n.sane() && f64::from(n.offset) < LEEWAY - 5.0;
                members.push(json_member("nbf", &n.value(t)));
            }
        }
        match (self.omit_iat, &self.iat) {
            (true, _) => sane = false,
            (false, i) => {
                sane &= i.sane() && f64::from(i.offset) < LEEWAY - 5.0;
                members.push(json_member("iat", &i.value(t)));
            }
        }
        if let (Some(e), Some(i)) = (exp_off, iat_off) {
            sane &= e - i < MAX_LIFETIME - 2.0;
        }
        if let Some(scope) = &self.scope {
            sane &= scope
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) || b == b' ')
                && !scope.contains(',');
            members.push(json_member("scope", &json!(scope)));
        }
        let mut extra_names = std::collections::HashSet::new();
        for (k, v) in &self.extra {
            // A name twice is refused (duplicate members), as is one that shadows a
            // claim the verifier reads.
            if REGISTERED.contains(&k.as_str())
                || ["scp", "roles", "client_id", "scope"].contains(&k.as_str())
                || !extra_names.insert(k.as_str())
            {
                sane = false;
            }
            members.push(json_member(k, &json!(v)));
        }
        let claims = format!("{{{}}}", members.join(","));
        let header = Value::Object(header).to_string();
        let key: &[u8] = match &self.key {
            Key::Real => &s.secret,
            Key::RsaPublicPemAsSecret => {
                sane = false;
                &s.rsa_public_pem
            }
            Key::Wrong(k) => {
                sane &= k.as_slice() == s.secret.as_slice();
                k
            }
        };
        let mut token = sign_hs256(header.as_bytes(), claims.as_bytes(), key);
        if self.tamper {
            // Flip the last signature character to another base64url one.
            let last = token.pop().unwrap_or('A');
            token.push(if last == 'A' { 'B' } else { 'A' });
            sane = false;
        }
        (token, sane)
    }
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    match data.split_first() {
        Some((b'T', rest)) => {
            if let Ok(token) = std::str::from_utf8(rest) {
                verify(token);
            }
        }
        Some((b'J', rest)) => {
            let (header, claims) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b"{}"[..]),
            };
            // `NOW` stands for the current time, so that seeds stay valid.
            let t = (now() as u64).to_string();
            let claims = String::from_utf8_lossy(claims).replace("NOW", &t);
            verify(&sign_hs256(header, claims.as_bytes(), &s.secret));
        }
        _ => {
            let mut u = Unstructured::new(data);
            let Ok(input) = Structured::arbitrary(&mut u) else {
                return;
            };
            let (token, sane) = input.build(s);
            let accepted = verify(&token);
            // Fractions are their own invariant: refused today (issue 9 item 3).
            let name = if input.has_fraction() {
                "valid-accepted-fraction"
            } else {
                "valid-accepted"
            };
            check(name, !sane || accepted, || {
                format!(
                    "refused {:?}: header {:?}, claims {:?} ({input:?})",
                    verify_own_token(&s.config, &token).map(|r| r.err()),
                    jws_part(&token, 0),
                    jws_part(&token, 1)
                )
            });
        }
    }
});
