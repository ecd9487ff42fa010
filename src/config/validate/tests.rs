//! Unit tests of configuration validation: a good file is typed as written; every
//! bad value is reported with its key (all of them in one run); unknown keys and
//! sections, routes that can never match, and bad keys and issuers are refused.

use super::*;
use crate::config::{AuthMode, UpstreamTarget};
use crate::policy::matcher::Routable;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_str(text, Path::new("test.toml"))
}

fn keys(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.issues.into_iter().map(|i| i.key).collect(),
    }
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9091"
trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
max_body_bytes = "1MiB"
request_timeout = "5s"

[[upstreams]]
name = "demo"
echo = true

[[upstreams]]
name = "items"
url = "http://127.0.0.1:9000/v1/"
connect_timeout = "500ms"

[[routes]]
path = "/items/{id}"
methods = ["GET"]
upstream = "items"

[[routes]]
path = "/items/**"
methods = ["POST", "PUT"]
upstream = "items"
strip_prefix = "/items"

[[routes]]
path = "/public/**"
upstream = "demo"
auth = "none"
"#;

#[test]
fn good_config_is_typed() {
    let c = parse(GOOD).expect("valid");
    assert_eq!(c.server.listen.port(), 8080);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.server.max_body_bytes, 1 << 20);
    assert_eq!(c.server.request_timeout, Duration::from_secs(5));
    assert_eq!(c.router.routes().len(), 3);
    let items = c.upstream("items").expect("items");
    match &items.target {
        UpstreamTarget::Http {
            base_path,
            authority,
            ..
        } => {
            assert_eq!(base_path, "/v1");
            assert_eq!(authority.as_str(), "127.0.0.1:9000");
        }
        UpstreamTarget::Echo => panic!("not echo"),
    }
    assert_eq!(items.connect_timeout, Duration::from_millis(500));
    let public = c
        .router
        .routes()
        .iter()
        .find(|r| r.pattern().as_str() == "/public/**")
        .expect("public");
    assert_eq!(public.auth, AuthMode::None);
}

#[test]
fn every_error_is_listed_with_key_and_fix() {
    let bad = r#"
[server]
listen = "localhost"
max_body_bytes = "ten"
request_timeout = "5"
trusted_proxies = ["not-an-ip"]

[[upstreams]]
name = "a"
url = "ftp://x"

[[upstreams]]
name = "a"
echo = true

[[routes]]
path = "/x/../y"
upstream = "a"

[[routes]]
path = "/items"
upstream = "itmes"
auth = "maybe"
methods = ["get"]

[[routes]]
path = "/dup"
upstream = "a"

[[routes]]
path = "/dup"
upstream = "a"
"#;
    let err = parse(bad).expect_err("invalid");
    let k: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    for want in [
        "server.listen",
        "server.max_body_bytes",
        "server.request_timeout",
        "server.trusted_proxies[0]",
        "upstreams[0].url",
        "upstreams[1].name",
        "routes[0].path",
        "routes[1].upstream",
        "routes[1].auth",
        "routes[1].methods",
        "routes[3]",
    ] {
        assert!(k.contains(&want), "missing {want} in {k:?}");
    }
    assert!(err.issues.iter().all(|i| !i.fix.is_empty()));
    let text = err.to_string();
    assert!(
        text.contains("test.toml: routes[1].upstream: unknown upstream \"itmes\""),
        "{text}"
    );
}

#[test]
fn unknown_keys_and_sections_are_refused() {
    assert_eq!(keys("[server]\nlisen = \"127.0.0.1:1\"\n[[upstreams]]\nname=\"a\"\necho=true\n[[routes]]\npath=\"/\"\nupstream=\"a\""), vec!["server"]);
    let k = keys("[servr]\n[[upstreams]]\nname=\"a\"\necho=true\ncolour=1\n[[routes]]\npath=\"/\"\nupstream=\"a\"");
    assert!(
        k.contains(&"servr".to_string()) && k.contains(&"upstreams[0]".to_string()),
        "{k:?}"
    );
    // Found by the config fuzz target: a key that is not bare is named as TOML writes
    // it, never as an empty or ambiguous path.
    let base = "[[upstreams]]\nname=\"a\"\necho=true\n[[routes]]\npath=\"/\"\nupstream=\"a\"\n";
    assert_eq!(keys(&format!("''=''\n{base}")), vec!["\"\""]);
    assert_eq!(keys(&format!("\"a.b\"=1\n{base}")), vec!["\"a.b\""]);
    assert_eq!(
        keys(&format!("[rate_limits.\"a b\"]\nkey=1\n{base}")),
        vec!["rate_limits.\"a b\""]
    );
}

#[test]
fn syntax_errors_and_empty_routes() {
    assert_eq!(keys("[server\n"), vec!["(syntax)"]);
    assert_eq!(
        keys("[[upstreams]]\nname=\"a\"\necho=true\n"),
        vec!["routes"]
    );
}

#[test]
fn strip_prefix_and_host_checked() {
    let base = "[[upstreams]]\nname=\"a\"\necho=true\n";
    let k = keys(&format!("{base}[[routes]]\npath=\"/api/**\"\nupstream=\"a\"\nstrip_prefix=\"/ap\"\n[[routes]]\npath=\"/b\"\nupstream=\"a\"\nhost=\"x:80\""));
    assert_eq!(k, vec!["routes[0].strip_prefix", "routes[1].host"]);
    assert!(parse(&format!(
        "{base}[[routes]]\npath=\"/api/v1/**\"\nupstream=\"a\"\nstrip_prefix=\"/api\""
    ))
    .is_ok());
}

#[test]
fn same_path_with_disjoint_methods_or_hosts_is_fine() {
    let base = "[[upstreams]]\nname=\"a\"\necho=true\n";
    assert!(parse(&format!("{base}[[routes]]\npath=\"/x\"\nupstream=\"a\"\nmethods=[\"GET\"]\n[[routes]]\npath=\"/x\"\nupstream=\"a\"\nmethods=[\"POST\"]")).is_ok());
    assert!(parse(&format!("{base}[[routes]]\npath=\"/x\"\nupstream=\"a\"\n[[routes]]\npath=\"/x\"\nupstream=\"a\"\nhost=\"h\"")).is_ok());
    assert_eq!(
        keys(&format!("{base}[[routes]]\npath=\"/x/{{a}}\"\nupstream=\"a\"\nmethods=[\"GET\"]\n[[routes]]\npath=\"/x/{{b}}\"\nupstream=\"a\"\nmethods=[\"GET\",\"PUT\"]")),
        vec!["routes[1]"]
    );
}

#[test]
fn token_keys_are_checked() {
    let fix = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let base = "[[upstreams]]\nname=\"a\"\necho=true\n[[routes]]\npath=\"/\"\nupstream=\"a\"\n";
    let good = format!(
        "{base}[tokens]\nissuer=\"https://gw\"\naudiences=[\"api\"]\n[[tokens.keys]]\nkid=\"h\"\nalg=\"HS256\"\nsecret_file=\"{fix}/hs256.secret\"\n[[tokens.keys]]\nkid=\"r\"\nalg=\"RS256\"\npublic_key=\"{fix}/rs256.pub\"\n"
    );
    let c = parse(&good).expect("valid");
    assert_eq!(c.tokens.as_ref().map(|t| t.keys().len()), Some(2));

    let bad = format!(
        "{base}[tokens]\nissuer=\"\"\nleeway=\"1h\"\n\
         [[tokens.keys]]\nkid=\"h\"\nalg=\"HS512\"\nsecret_file=\"x\"\n\
         [[tokens.keys]]\nkid=\"h2\"\nalg=\"HS256\"\nsecret_env=\"PORTCULLIS_TEST_UNSET_VARIABLE\"\n\
         [[tokens.keys]]\nkid=\"r\"\nalg=\"RS256\"\npublic_key=\"{fix}/missing.pub\"\n\
         [[tokens.keys]]\nkid=\"r2\"\nalg=\"RS256\"\nsecret_file=\"{fix}/hs256.secret\"\n\
         [[tokens.keys]]\nkid=\"r3\"\nalg=\"ES256\"\npublic_key=\"{fix}/rs256.pub\"\n\
         [identity]\nclaim_headers = {{ email = \"Authorization\" }}\n"
    );
    let k = keys(&bad);
    for want in [
        "tokens.issuer",
        "tokens.audiences",
        "tokens.leeway",
        "tokens.keys[0].alg",
        "tokens.keys[1].secret_env",
        "tokens.keys[2].public_key",
        "tokens.keys[3].secret_env",
        "tokens.keys[4].public_key",
        "identity.claim_headers.email",
    ] {
        assert!(k.contains(&want.to_string()), "missing {want} in {k:?}");
    }
}

#[test]
fn public_routes_cannot_require_scopes() {
    let k = keys("[[upstreams]]\nname=\"a\"\necho=true\n[[routes]]\npath=\"/\"\nupstream=\"a\"\nauth=\"none\"\nscopes=[\"x\"]\n[[routes]]\npath=\"/b\"\nupstream=\"a\"\nscopes=[\"bad scope\"]\n");
    assert_eq!(k, vec!["routes[0].auth", "routes[1].scopes"]);
}

#[test]
fn issuers_are_checked() {
    let base = "[[upstreams]]\nname=\"a\"\necho=true\n[[routes]]\npath=\"/\"\nupstream=\"a\"\n";
    let good = format!("{base}[[issuers]]\nissuer=\"https://idp.test/\"\ndiscovery=true\naudiences=[\"api\"]\nroles_claim=\"realm_access.roles\"\n");
    assert_eq!(parse(&good).expect("valid").issuers.len(), 1);
    let bad = format!(
        "{base}[[issuers]]\nissuer=\"https://idp.test/\"\ndiscovery=true\njwks_url=\"https://idp.test/jwks\"\nalgorithms=[\"HS256\"]\n\
         [[issuers]]\nissuer=\"https://idp.test/\"\njwks_url=\"ftp://x\"\naudiences=[\"api\"]\nmin_refresh=\"2h\"\n"
    );
    let k = keys(&bad);
    for want in [
        "issuers[0].jwks_url",
        "issuers[0].audiences",
        "issuers[0].algorithms",
        "issuers[1].issuer",
        "issuers[1].jwks_url",
        "issuers[1].min_refresh",
    ] {
        assert!(k.contains(&want.to_string()), "missing {want} in {k:?}");
    }
}

#[test]
fn claim_mappings_and_issuer_time_rules_are_checked() {
    use crate::auth::principal::ClaimPath;
    let fix = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let base = "[[upstreams]]\nname=\"a\"\necho=true\n[[routes]]\npath=\"/\"\nupstream=\"a\"\n";
    let tokens = |extra: &str| {
        format!(
            "{base}[tokens]\nissuer=\"https://gw\"\naudiences=[\"api\"]\n{extra}\n[[tokens.keys]]\nkid=\"h\"\nalg=\"HS256\"\nsecret_file=\"{fix}/hs256.secret\"\n"
        )
    };
    let c = parse(&tokens("")).expect("valid");
    let m = &c.tokens.as_ref().expect("tokens").rules().mapping;
    assert_eq!(
        m.scope_claims,
        vec![ClaimPath("scope".into()), ClaimPath("scp".into())],
        "default: scope, then scp"
    );
    assert!(m.expand_roles);
    let c = parse(&tokens(
        "scope_claim=\"scope\"\nroles_claim=\"realm_access.roles\"\nexpand_roles=false",
    ))
    .expect("valid");
    let m = &c.tokens.as_ref().expect("tokens").rules().mapping;
    assert_eq!(m.scope_claims, vec![ClaimPath("scope".into())]);
    assert_eq!(m.roles_claim, ClaimPath("realm_access.roles".into()));
    assert!(!m.expand_roles);
    assert_eq!(
        keys(&tokens("scope_claim=[]\nroles_claim=\"\"")),
        vec!["tokens.scope_claim", "tokens.roles_claim"]
    );
    // The token service writes `scope` and `roles`: a mapping that skips them is refused.
    let k = keys(&tokens(
        "signing_key=\"h\"\nscope_claim=\"scp\"\nroles_claim=\"groups\"",
    ));
    for want in ["tokens.scope_claim", "tokens.roles_claim"] {
        assert!(k.contains(&want.to_string()), "missing {want} in {k:?}");
    }
    let issuer = |extra: &str| {
        format!("{base}[[issuers]]\nissuer=\"https://idp.test/\"\ndiscovery=true\naudiences=[\"api\"]\n{extra}\n")
    };
    let c = parse(&issuer(
        "max_lifetime=\"1h\"\nscope_claim=[\"scp\", \"scope\"]",
    ))
    .expect("valid");
    let r = &c.issuers[0].rules;
    assert_eq!(r.max_lifetime, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(r.mapping.scope_claims.len(), 2);
    assert_eq!(
        keys(&issuer(
            "leeway=\"10m\"\nmax_lifetime=\"soon\"\nscope_claim=\"\""
        )),
        vec![
            "issuers[0].leeway",
            "issuers[0].max_lifetime",
            "issuers[0].scope_claim"
        ]
    );
}

/// Issue 10: one wrong value reports one error. A `[tokens]` that cannot be read (a
/// number where a duration is due) used to also report `[users]` and `[[clients]]` as
/// "set but the token service is off"; a policy or upstream with an error of its own
/// was reported again by every route naming it.
#[test]
fn one_wrong_value_reports_one_error() {
    let service = format!(
        "{GOOD}\n[tokens]\nissuer = \"https://gw.test\"\naudiences = [\"api\"]\nsigning_key = \"k1\"\naccess_ttl = 900\n\
         [[tokens.keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_env = \"PORTCULLIS_TEST_UNSET\"\n\
         [users]\nstore = \"sqlite:///tmp/never-opened.db\"\n[[clients]]\nclient_id = \"cli\"\ngrants = [\"password\"]\n"
    );
    assert_eq!(keys(&service), vec!["tokens"]);
    let err = parse(&service)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("access_ttl"), "{err}");

    let policy = format!(
        "{GOOD}\n[rate_limits.tight]\nkey = \"ip\"\nrate = \"fast\"\n\
         [[routes]]\npath = \"/t\"\nupstream = \"demo\"\nrate_limit = \"tight\"\n"
    );
    assert_eq!(keys(&policy), vec!["rate_limits.tight.rate"]);
    let unreadable = format!(
        "{GOOD}\n[rate_limits.tight]\nkey = \"ip\"\nrate = 5\n\
         [[routes]]\npath = \"/t\"\nupstream = \"demo\"\nrate_limit = \"tight\"\n"
    );
    assert_eq!(keys(&unreadable), vec!["rate_limits.tight"]);
    let upstream = format!(
        "{GOOD}\n[[upstreams]]\nname = \"broken\"\nurl = \"http://127.0.0.1:9\"\nconnect_timeout = 5\n\
         [[routes]]\npath = \"/b\"\nupstream = \"broken\"\n"
    );
    assert_eq!(keys(&upstream), vec!["upstreams[2]"]);
    // A name that is declared nowhere is still refused.
    let missing = format!(
        "{GOOD}\n[[routes]]\npath = \"/m\"\nupstream = \"nowhere\"\nrate_limit = \"nope\"\n"
    );
    assert_eq!(
        keys(&missing),
        vec!["routes[3].upstream", "routes[3].rate_limit"]
    );
}

#[test]
fn the_api_key_header_cannot_be_authorization_in_any_case() {
    let key = "a".repeat(64);
    for header in [
        "authorization",
        "Authorization",
        "AUTHORIZATION",
        "x_api_key",
    ] {
        let text = format!(
            "{GOOD}\n[identity]\napi_key_header = \"{header}\"\n\n[[api_keys]]\nsha256 = \"{key}\"\nsubject = \"svc\"\n"
        );
        assert_eq!(keys(&text), vec!["identity.api_key_header"], "{header}");
    }
    let text = format!(
        "{GOOD}\n[identity]\napi_key_header = \"X-Api-Key\"\n\n[[api_keys]]\nsha256 = \"{key}\"\nsubject = \"svc\"\n"
    );
    assert!(parse(&text).is_ok(), "another header in any case is fine");
}
