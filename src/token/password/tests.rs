//! Unit tests of password hashing: argon2id round trips, unknown users cost what
//! wrong passwords cost, other parameters and bcrypt verify but ask for a rehash,
//! anything else never verifies, and the defaults follow RFC 9106.

use super::*;

fn cheap() -> Hasher {
    Hasher::new(Argon2Params {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    })
}

#[test]
fn argon2id_round_trip_and_refusals() {
    let h = cheap();
    let stored = h.hash("correct horse").expect("hash");
    assert!(
        stored.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"),
        "{stored}"
    );
    assert_eq!(h.verify("correct horse", &stored), Verdict::Valid);
    assert_eq!(h.verify("correct hors", &stored), Verdict::Invalid);
    assert_eq!(h.verify("", &stored), Verdict::Invalid);
    // Two hashes of one password differ (random salt).
    assert_ne!(stored, h.hash("correct horse").expect("hash"));
    assert_eq!(h.verify_unknown_user("correct horse"), Verdict::Invalid);
}

/// An unknown user costs what a wrong password costs: one verification against
/// a hash with the current parameters, and the dummy hash is made once for all
/// clones (a clone making its own would cost an extra hash per unknown user and
/// tell unknown users apart by time). Counted, not timed.
#[test]
fn unknown_users_cost_one_verification_like_wrong_passwords() {
    let h = cheap();
    let stored = h.hash("right").expect("hash");
    let base = h.work_done();
    assert_eq!(h.verify("wrong", &stored), Verdict::Invalid);
    let after_wrong = h.work_done();
    assert_eq!(after_wrong, (base.0, base.1 + 1));
    let clone = h.clone();
    assert_eq!(clone.verify_unknown_user("wrong"), Verdict::Invalid);
    assert_eq!(h.verify_unknown_user("wrong"), Verdict::Invalid);
    assert_eq!(clone.verify_unknown_user("wrong"), Verdict::Invalid);
    let (hashes, verifications) = h.work_done();
    assert_eq!(
        hashes,
        after_wrong.0 + 1,
        "the dummy is made once, for every clone"
    );
    assert_eq!(
        verifications,
        after_wrong.1 + 3,
        "one verification per unknown user"
    );
    let dummy = h.dummy.get().expect("dummy made");
    assert_eq!(
        dummy.split('$').nth(3),
        stored.split('$').nth(3),
        "the dummy has the configured parameters"
    );
}

#[test]
fn other_parameters_verify_and_ask_for_a_rehash() {
    let old = cheap().hash("pw").expect("hash");
    let h = Hasher::new(Argon2Params {
        memory_kib: 9 * 1024,
        iterations: 1,
        parallelism: 1,
    });
    assert_eq!(h.verify("pw", &old), Verdict::ValidNeedsRehash);
    assert_eq!(h.verify("px", &old), Verdict::Invalid);
}

#[test]
fn bcrypt_hashes_of_every_prefix_verify_and_ask_for_a_rehash() {
    let h = cheap();
    // FastAPI's tutorial hash of "secret" (passlib, $2b$, cost 12).
    let fastapi = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
    assert_eq!(h.verify("secret", fastapi), Verdict::ValidNeedsRehash);
    assert_eq!(h.verify("Secret", fastapi), Verdict::Invalid);
    for prefix in ["$2a$", "$2y$"] {
        let other = fastapi.replacen("$2b$", prefix, 1);
        assert_eq!(
            h.verify("secret", &other),
            Verdict::ValidNeedsRehash,
            "{prefix}"
        );
    }
    assert!(is_supported_hash(fastapi));
}

#[test]
fn anything_else_never_verifies() {
    let h = cheap();
    for stored in [
        "",
        "secret",
        "$1$abc$def",
        "$pbkdf2-sha256$29000$abc$def",
        "$2b$12$short",
    ] {
        assert_eq!(h.verify("secret", stored), Verdict::Invalid, "{stored}");
        assert!(!is_supported_hash(stored), "{stored}");
    }
}

#[test]
fn defaults_are_rfc_9106_and_tiny_memory_is_refused() {
    assert_eq!(
        Argon2Params::default(),
        Argon2Params {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 4
        }
    );
    assert!(Argon2Params::default().validate().is_ok());
    let tiny = Argon2Params {
        memory_kib: 1024,
        ..Argon2Params::default()
    };
    assert!(tiny.validate().is_err());
}
