//! The shared mode within one process: leases, exact admission under threads, what close gives
//! back, and the options it refuses. Several processes are in `multiprocess.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{TestVault, limit, options};
use nanu::{
    Code, Concurrency, Context, Durability, ErrorCode, HoldAmounts, Options, Unit, Usage, Vault,
    VerifyRequest,
};

fn shared() -> impl FnOnce(Options) -> Options {
    |o: Options| {
        o.concurrency(Concurrency::Shared)
            .lease_timeout(Duration::from_secs(1))
    }
}

/// Verifies from `threads` threads until each has seen 50 denials in a row; returns how
/// many were admitted.
fn hammer(vault: &Arc<Vault>, secret: &str, threads: usize, hold: HoldAmounts) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (vault, admitted, hold) = (vault.clone(), admitted.clone(), hold);
            scope.spawn(move || {
                let request = VerifyRequest {
                    hold,
                    ..VerifyRequest::default()
                };
                let mut denied_in_a_row = 0;
                while denied_in_a_row < 50 {
                    let verdict = vault.verify(secret, &request).expect("verify");
                    if verdict.allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        denied_in_a_row = 0;
                    } else {
                        denied_in_a_row += 1;
                    }
                }
            });
        }
    });
    admitted.load(Ordering::Relaxed)
}

#[test]
fn a_request_limit_admits_exactly_its_amount_under_threads() {
    let t = TestVault::with(shared());
    let key = t.mint("acme", &["requests=1000"]);
    let vault = Arc::new(t.vault);
    let admitted = hammer(&vault, key.secret.expose(), 8, HoldAmounts::default());
    assert_eq!(admitted, 1000);
    let verdict = vault
        .verify(key.secret.expose(), &VerifyRequest::default())
        .unwrap();
    assert_eq!(verdict.code, Code::UsageExceeded);
}

#[test]
fn a_budget_with_holds_admits_exactly_what_fits() {
    let t = TestVault::with(shared());
    let key = t.mint("acme", &["cost=1usd"]);
    let vault = Arc::new(t.vault);
    let hold = HoldAmounts {
        cost: 30_000,
        ..HoldAmounts::default()
    };
    assert_eq!(hammer(&vault, key.secret.expose(), 8, hold), 33);
}

#[test]
fn close_gives_back_unused_slices_so_an_exclusive_open_counts_exactly() {
    let mut t = TestVault::with(shared());
    let key = t.mint("acme", &["requests=1000000/day"]);
    for _ in 0..10 {
        assert!(t.verify(&key).allowed);
    }
    // The first lease took far more than ten requests' worth.
    t.vault.close().unwrap();
    t.vault = Vault::open(&t.path, &options().clock(t.clock.clock())).unwrap();
    let remaining = t.vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.get(Unit::Requests), Some(999_990));
}

#[test]
fn a_charge_settles_its_hold_in_the_shared_counter() {
    let mut t = TestVault::with(shared());
    let key = t.mint("acme", &["cost=1usd"]);
    let request = VerifyRequest {
        hold: HoldAmounts {
            cost: 30_000,
            ..HoldAmounts::default()
        },
        ..VerifyRequest::default()
    };
    let verdict = t.vault.verify(key.secret.expose(), &request).unwrap();
    assert!(verdict.allowed);
    let usage = Usage {
        cost: Some(10_000),
        hold_id: verdict.hold_id,
        request_id: Some("r1".to_owned()),
        ..Usage::default()
    };
    t.vault.charge(&key.key_id, &usage).unwrap();
    t.vault.close().unwrap();
    t.vault = Vault::open(&t.path, &options().clock(t.clock.clock())).unwrap();
    let remaining = t.vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.get(Unit::Cost), Some(990_000));
}

#[test]
fn shared_mode_takes_only_the_durable_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.vault");
    let opts = options()
        .concurrency(Concurrency::Shared)
        .durability(Durability::Process);
    let err = Vault::create(&path, &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.message().contains("durable"), "{}", err.message());
}

#[test]
fn limits_changed_by_update_keep_counting_in_the_shared_row() {
    let mut t = TestVault::with(shared());
    let key = t.mint("acme", &["requests=100", "tokens=1000"]);
    for _ in 0..5 {
        assert!(t.verify(&key).allowed);
    }
    let patch = nanu::KeyPatch {
        limits: Some(vec![limit("requests=8")]),
        ..nanu::KeyPatch::default()
    };
    t.vault
        .update(&key.key_id, &patch, &Context::default())
        .unwrap();
    let mut admitted = 0;
    while t.verify(&key).allowed {
        admitted += 1;
    }
    assert_eq!(admitted, 3, "5 of 8 were used before the update");
    t.vault.close().unwrap();
    t.vault = Vault::open(&t.path, &options().clock(t.clock.clock())).unwrap();
    let remaining = t.vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.get(Unit::Requests), Some(0));
}

#[test]
fn a_revoke_through_one_handle_is_seen_by_the_next_verify_of_another() {
    let t = TestVault::with(shared());
    let key = t.mint("acme", &["requests=100"]);
    let opts = options()
        .clock(t.clock.clock())
        .concurrency(Concurrency::Shared);
    let other = Vault::open(&t.path, &opts).expect("a second shared handle");
    let request = VerifyRequest::default();
    assert!(other.verify(key.secret.expose(), &request).unwrap().allowed);
    t.vault.revoke(&key.key_id, &Context::default()).unwrap();
    let verdict = other.verify(key.secret.expose(), &request).unwrap();
    assert_eq!(verdict.code, Code::Revoked);
    // A key minted through the other handle verifies here at once.
    let minted = other
        .mint(&common::spec("beta", &[]), &Context::default())
        .unwrap();
    assert!(
        t.vault
            .verify(minted.secret.expose(), &request)
            .unwrap()
            .allowed
    );
}

#[test]
fn two_handles_share_a_limit_exactly() {
    let t = TestVault::with(shared());
    let key = t.mint("acme", &["requests=1000", "tokens=1M/hour"]);
    let opts = options()
        .clock(t.clock.clock())
        .concurrency(Concurrency::Shared);
    let other = Arc::new(Vault::open(&t.path, &opts).unwrap());
    let first = Arc::new(t.vault);
    let secret = key.secret.expose();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| hammer(&first, secret, 4, HoldAmounts::default()));
        let b = scope.spawn(|| hammer(&other, secret, 4, HoldAmounts::default()));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a + b, 1000, "{a} + {b}");
    assert!(a > 0 && b > 0, "both handles admitted some: {a} + {b}");
}

#[test]
fn one_request_id_charged_through_two_handles_at_once_is_recorded_once_and_one_is_told() {
    let t = TestVault::with(shared());
    let key = t.mint("acme", &["cost=1usd"]);
    let opts = options()
        .clock(t.clock.clock())
        .concurrency(Concurrency::Shared);
    let other = Vault::open(&t.path, &opts).unwrap();
    let handles = [&t.vault, &other];
    for round in 0..20 {
        let id = format!("r{round}");
        let results: Vec<_> = std::thread::scope(|scope| {
            let runs: Vec<_> = handles
                .iter()
                .enumerate()
                .map(|(i, vault)| {
                    let (key_id, id) = (&key.key_id, &id);
                    scope.spawn(move || {
                        let usage = Usage {
                            cost: Some(100 + i as u64),
                            request_id: Some(id.clone()),
                            ..Usage::default()
                        };
                        vault.charge(key_id, &usage)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(e) if e.code() == ErrorCode::Conflict))
            .count();
        assert_eq!((ok, conflicts), (1, 1), "round {round}: {results:?}");
    }
    let records = t
        .vault
        .usage_records(&nanu::UsageQuery::default(), 100)
        .unwrap();
    assert_eq!(records.len(), 20);
}
