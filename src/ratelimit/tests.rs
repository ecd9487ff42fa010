use super::*;
use governor::clock::FakeRelativeClock;

#[test]
fn rates_parse_and_bad_ones_are_refused() {
    assert_eq!(
        "5/5s".parse::<Rate>(),
        Ok(Rate {
            count: 5,
            per: Duration::from_secs(5)
        })
    );
    assert_eq!(
        "100/s".parse::<Rate>().map(|r| r.per),
        Ok(Duration::from_secs(1))
    );
    assert_eq!(
        "600/1m".parse::<Rate>().map(|r| r.per),
        Ok(Duration::from_secs(60))
    );
    for bad in ["", "5", "0/1s", "5/0s", "x/1s", "5/soon", "-1/1s"] {
        assert!(bad.parse::<Rate>().is_err(), "{bad}");
    }
}

#[test]
fn five_per_five_seconds_exactly() {
    let clock = FakeRelativeClock::default();
    let l = Limiter::unswept("5/5s".parse().expect("rate"), None, 100, clock.clone());
    for i in 0..5 {
        assert_eq!(l.check("ip|alice"), Decision::Allow, "attempt {i}");
    }
    let Decision::Limit { retry_after } = l.check("ip|alice") else {
        panic!("the sixth attempt must be limited");
    };
    assert_eq!(retry_after, Duration::from_secs(1));
    assert_eq!(retry_after_secs(retry_after), 1);
    // Another key has its own budget.
    assert_eq!(l.check("ip|bob"), Decision::Allow);
    // One second later one more attempt, not two.
    clock.advance(Duration::from_secs(1));
    assert_eq!(l.check("ip|alice"), Decision::Allow);
    assert!(matches!(l.check("ip|alice"), Decision::Limit { .. }));
    // After the whole period the full burst is back.
    clock.advance(Duration::from_secs(5));
    for _ in 0..5 {
        assert_eq!(l.check("ip|alice"), Decision::Allow);
    }
}

/// The promise of item 6: a policy filled to `max_keys` by a flood of distinct keys
/// still gives an existing key its own full budget; only new keys share the
/// overflow budget, and the flood cannot grow memory.
#[test]
fn a_full_store_keeps_existing_keys_whole_and_new_keys_share_the_overflow() {
    let clock = FakeRelativeClock::default();
    let l = Limiter::unswept("5/5s".parse().expect("rate"), None, 1000, clock.clone());
    // An existing client, seen before the flood, has used one request.
    assert_eq!(l.check("alice"), Decision::Allow);
    let mut allowed = 0;
    for i in 0..100_000 {
        if l.check(format!("flood-{i}")) == Decision::Allow {
            allowed += 1;
        }
    }
    assert_eq!(l.keys(), 1000, "exactly max_keys keys tracked");
    // 999 flood keys got their own first request; the other 99,001 shared one
    // burst of 5.
    assert_eq!(allowed, 999 + 5);
    assert_eq!(l.overflowed(), 100_000 - 999);
    // alice still has the 4 requests left of her own budget, flood or not.
    assert_eq!(l.slot_of(&Key::new("alice")), Slot::Own);
    for i in 0..4 {
        assert_eq!(l.check("alice"), Decision::Allow, "alice's request {i}");
    }
    assert!(matches!(l.check("alice"), Decision::Limit { .. }));
    // A new client now shares the exhausted overflow budget...
    assert_eq!(l.slot_of(&Key::new("bob")), Slot::Overflow);
    assert!(matches!(l.check("bob"), Decision::Limit { .. }));
    // ...and a flood key already tracked has its own budget, not the overflow.
    assert_eq!(l.check("flood-7"), Decision::Allow);
}

#[test]
fn the_sweep_frees_idle_keys_and_never_runs_on_the_request_path() {
    let clock = FakeRelativeClock::default();
    let l = Limiter::unswept("5/5s".parse().expect("rate"), None, 100, clock.clone());
    for i in 0..100 {
        let _ = l.check(format!("k{i}"));
    }
    clock.advance(Duration::from_secs(10));
    // Any number of decisions later, nothing has been swept by a request (the old
    // code swept on every 1,024th decision).
    for _ in 0..5_000 {
        let _ = l.check("k0");
    }
    assert_eq!(l.keys(), 100);
    assert_eq!(l.slot_of(&Key::new("new")), Slot::Overflow);
    // The sweep (the background thread's job) frees every idle key.
    l.sweep();
    assert_eq!(l.keys(), 1, "only k0, still busy, is kept");
    assert_eq!(l.slot_of(&Key::new("new")), Slot::Own);
    assert_eq!(l.check("new"), Decision::Allow);
}

#[test]
fn registered_limiters_are_swept_by_the_background_pass() {
    let clock = FakeRelativeClock::default();
    let l = Limiter::with_clock("1/1s".parse().expect("rate"), None, 10, clock.clone());
    for i in 0..10 {
        let _ = l.check(format!("k{i}"));
    }
    clock.advance(Duration::from_secs(2));
    // A pass far in the future sweeps every registered limiter, this one included.
    let far = std::time::Instant::now() + Duration::from_secs(3600);
    assert!(sweep::pass(far) >= 1);
    assert_eq!(l.keys(), 0);
}

#[test]
fn a_refund_gives_back_exactly_one_request() {
    let clock = FakeRelativeClock::default();
    let l = Limiter::unswept("3/1m".parse().expect("rate"), None, 10, clock.clone());
    for _ in 0..3 {
        assert_eq!(l.check("ip|alice"), Decision::Allow);
    }
    assert!(matches!(l.check("ip|alice"), Decision::Limit { .. }));
    l.refund("ip|alice");
    assert_eq!(l.check("ip|alice"), Decision::Allow);
    assert!(matches!(l.check("ip|alice"), Decision::Limit { .. }));
    // Refunds never bank more than a fresh state: a fresh key has its burst only.
    for _ in 0..10 {
        l.refund("ip|bob");
    }
    for _ in 0..3 {
        assert_eq!(l.check("ip|bob"), Decision::Allow);
    }
    for _ in 0..10 {
        l.refund("ip|bob");
    }
    for _ in 0..3 {
        assert_eq!(l.check("ip|bob"), Decision::Allow);
    }
    assert!(matches!(l.check("ip|bob"), Decision::Limit { .. }));
}

#[test]
fn long_keys_are_kept_as_fixed_size_digests() {
    let long = "x".repeat(10_000);
    let k = Key::new(&long);
    assert!(matches!(k, Key::Digest(_)));
    assert_eq!(k, Key::from(long.clone()));
    assert_ne!(k, Key::new(&format!("{long}y")));
    assert!(k.as_text().len() <= 66);
    assert_eq!(Key::new("short"), Key::Plain("short".into()));
    // One budget per long value, as for short ones.
    let l = Limiter::unswept(
        "1/1m".parse().expect("rate"),
        None,
        10,
        FakeRelativeClock::default(),
    );
    assert_eq!(l.check(long.as_str()), Decision::Allow);
    assert!(matches!(l.check(long.clone()), Decision::Limit { .. }));
}

#[test]
fn retry_after_rounds_up() {
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
    assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
}
