//! The config loader: TOML text → a validated `Config` or a list of errors, never a
//! panic. Relative file references resolve under `tests/fixtures/` (the test keys), as
//! if the file were `tests/fixtures/fuzz.toml`.
//!
//! Properties:
//! - `errors-listed`: a refusal lists at least one issue, each with a key, a problem
//!   and a fix, and its report names each key;
//! - `deterministic`: loading the same text twice gives the same verdict (the same
//!   issues, or a config again);
//! - `bounds`: an accepted config keeps the documented bounds (`max_header_bytes`
//!   1 KiB..1 MiB, `identity_header_prefix` lower case ending in `-`, `leeway` and
//!   `cache_max_age` at most 5 minutes);
//! - `no-zero-duration`: an accepted config has no zero `request_timeout` or
//!   `shutdown_drain`… (issue 9 item 8).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::parse_config;
use portcullis_fuzz::{check, test_fixture};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = test_fixture("fuzz.toml");
    let first = parse_config(text, &path);
    let second = parse_config(text, &path);
    match (&first, &second) {
        (Err(a), Err(b)) => {
            let issues = |e: &portcullis::config::ConfigErrors| {
                e.issues
                    .iter()
                    .map(|i| (i.key.clone(), i.problem.clone(), i.fix.clone()))
                    .collect::<Vec<_>>()
            };
            check("deterministic", issues(a) == issues(b), || {
                format!("{text:?}: {a} then {b}")
            });
            let report = a.to_string();
            check(
                "errors-listed",
                !a.issues.is_empty()
                    && a.issues.iter().all(|i| {
                        !i.key.is_empty()
                            && !i.problem.is_empty()
                            && !i.fix.is_empty()
                            && report.contains(&i.key)
                    }),
                || format!("{text:?}: {a:?}"),
            );
        }
        (Ok(c), Ok(_)) => {
            let s = &c.server;
            let ctx = || format!("{text:?} was accepted");
            check(
                "bounds",
                (1024..=1024 * 1024).contains(&s.max_header_bytes),
                ctx,
            );
            check(
                "bounds",
                s.identity_header_prefix.ends_with('-')
                    && s.identity_header_prefix == s.identity_header_prefix.to_ascii_lowercase(),
                ctx,
            );
            if let Some(t) = &c.tokens {
                check(
                    "bounds",
                    t.rules().leeway.as_secs() <= 300 && t.cache_max_age.as_secs() <= 300,
                    ctx,
                );
            }
            check(
                "no-zero-duration",
                !s.request_timeout.is_zero() && !s.shutdown_drain.is_zero(),
                ctx,
            );
            // The report `check` prints (the routes in match order) renders.
            let _ = format!("{c:?}");
        }
        _ => check("deterministic", false, || {
            format!("{text:?}: {:?} then {:?}", first.is_ok(), second.is_ok())
        }),
    }
});
