//! Many threads on one vault: every limit holds exactly, idempotent charges count once, and a
//! revoke is seen by every verify that starts after it returned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use nanu::{
    Code, Context, HoldAmounts, KdfParams, KeySpec, Limit, Options, Unit, Usage, UsageQuery, Vault,
    VerifyRequest,
};

fn options() -> Options {
    Options::passphrase("concurrency").kdf(KdfParams::INSECURE_FOR_TESTS)
}

fn vault() -> (tempfile::TempDir, Arc<Vault>) {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::create(dir.path().join("c.vault"), &options()).unwrap();
    (dir, Arc::new(vault))
}

fn spec(owner: &str, limits: &[&str]) -> KeySpec {
    let mut spec = KeySpec::new(owner);
    spec.limits = limits.iter().map(|l| l.parse::<Limit>().unwrap()).collect();
    spec
}

/// Runs `threads` copies of `work` released at once by a barrier; returns their results.
fn race<T: Send + 'static>(
    threads: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let work = work.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                work(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn status_used(vault: &Vault, key_id: &str, unit: Unit) -> (u64, u64) {
    let remaining = vault.remaining(key_id, None).unwrap();
    let status = remaining
        .limits
        .iter()
        .find(|s| s.limit.unit == unit)
        .unwrap();
    (status.used, status.held)
}

#[test]
fn thirty_two_threads_holding_three_cents_of_one_dollar_admit_exactly_33() {
    let (_dir, vault) = vault();
    let key = vault
        .mint(&spec("acme", &["cost=$1"]), &Context::default())
        .unwrap();
    let secret = Arc::new(key.secret.expose().to_owned());

    let v = vault.clone();
    let admitted = race(32, move |_| {
        let request = VerifyRequest {
            hold: HoldAmounts {
                cost: 30_000,
                ..HoldAmounts::default()
            },
            ..VerifyRequest::default()
        };
        let mut admitted = 0u64;
        for _ in 0..4 {
            let verdict = v.verify(&secret, &request).unwrap();
            if verdict.allowed {
                admitted += 1;
                assert!(verdict.hold_id.is_some());
            } else {
                assert_eq!(verdict.code, Code::BudgetExceeded, "{verdict:?}");
            }
            let left = verdict.remaining.unwrap().cost.unwrap();
            assert!(left < 1_000_000 && left % 10_000 == 0, "remaining {left}");
        }
        admitted
    });

    assert_eq!(admitted.iter().sum::<u64>(), 33);
    let remaining = vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.cost, Some(1_000_000 - 33 * 30_000));
    assert_eq!(
        status_used(&vault, &key.key_id, Unit::Cost),
        (0, 33 * 30_000)
    );
    assert_eq!(vault.stats().holds, 33);
}

#[test]
fn sixteen_threads_on_the_last_request_admit_exactly_one() {
    let (_dir, vault) = vault();
    let key = vault
        .mint(&spec("acme", &["requests=3"]), &Context::default())
        .unwrap();
    for _ in 0..2 {
        assert!(
            vault
                .verify(key.secret.expose(), &VerifyRequest::default())
                .unwrap()
                .allowed
        );
    }
    assert_eq!(
        vault.remaining(&key.key_id, None).unwrap().requests,
        Some(1)
    );
    let secret = Arc::new(key.secret.expose().to_owned());

    let v = vault.clone();
    let verdicts = race(16, move |_| {
        v.verify(&secret, &VerifyRequest::default()).unwrap()
    });

    assert_eq!(verdicts.iter().filter(|v| v.allowed).count(), 1);
    for verdict in &verdicts {
        // Inside: every verdict, allowed or not, sees nothing left and never more than used.
        let remaining = verdict.remaining.as_ref().unwrap();
        assert_eq!(remaining.requests, Some(0), "{verdict:?}");
        assert!(remaining.limits.iter().all(|s| s.used <= 3));
        if !verdict.allowed {
            assert_eq!(verdict.code, Code::UsageExceeded);
            assert_eq!(verdict.denied_by.as_ref().unwrap().used, 3);
        }
    }
    assert_eq!(
        vault.remaining(&key.key_id, None).unwrap().requests,
        Some(0)
    );
    assert_eq!(status_used(&vault, &key.key_id, Unit::Requests), (3, 0));
}

#[test]
fn a_limit_of_1000_requests_under_8_threads_of_500_admits_exactly_1000() {
    let (_dir, vault) = vault();
    let key = vault
        .mint(
            &spec("acme", &["requests=1000", "requests=1000/day"]),
            &Context::default(),
        )
        .unwrap();
    let secret = Arc::new(key.secret.expose().to_owned());

    let v = vault.clone();
    let admitted = race(8, move |_| {
        let mut admitted = 0u64;
        for _ in 0..500 {
            if v.verify(&secret, &VerifyRequest::default())
                .unwrap()
                .allowed
            {
                admitted += 1;
            }
        }
        admitted
    });

    assert_eq!(admitted.iter().sum::<u64>(), 1000);
    let remaining = vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.requests, Some(0));
    assert!(remaining.limits.iter().all(|s| s.used == 1000));
}

#[test]
fn an_owner_limit_shared_by_five_keys_holds_exactly_across_ten_threads() {
    let (_dir, vault) = vault();
    let limits: Vec<Limit> = ["requests=500", "cost=$0.25"]
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    vault
        .set_owner_policy("team", &limits, &Context::default())
        .unwrap();
    let keys: Vec<_> = (0..5)
        .map(|_| {
            vault
                .mint(&spec("team", &["requests=400"]), &Context::default())
                .unwrap()
        })
        .collect();
    let secrets: Arc<Vec<(String, String)>> = Arc::new(
        keys.iter()
            .map(|k| (k.key_id.clone(), k.secret.expose().to_owned()))
            .collect(),
    );

    // Requests: 10 threads x 100 verifies over 5 keys, no cost held or charged.
    let (v, s) = (vault.clone(), secrets.clone());
    let admitted = race(10, move |i| {
        let (_, secret) = &s[i % 5];
        (0..100)
            .filter(|_| {
                let verdict = v.verify(secret, &VerifyRequest::default()).unwrap();
                if !verdict.allowed {
                    assert_eq!(verdict.code, Code::UsageExceeded);
                    assert_eq!(
                        verdict.denied_by.as_ref().unwrap().level,
                        nanu::Level::Owner
                    );
                }
                verdict.allowed
            })
            .count() as u64
    });
    assert_eq!(admitted.iter().sum::<u64>(), 500);
    let owner = vault.owner("team").unwrap();
    assert_eq!(owner.remaining.requests, Some(0));
}

#[test]
fn an_owner_budget_shared_by_keys_holds_exactly_with_holds_and_charges() {
    let (_dir, vault) = vault();
    let budget: Vec<Limit> = vec!["cost=$0.25".parse().unwrap()];
    vault
        .set_owner_policy("team", &budget, &Context::default())
        .unwrap();
    let keys: Arc<Vec<(String, String)>> = Arc::new(
        (0..4)
            .map(|_| {
                let k = vault.mint(&spec("team", &[]), &Context::default()).unwrap();
                (k.key_id.clone(), k.secret.expose().to_owned())
            })
            .collect(),
    );

    // Each admitted request holds 0.01 and is charged exactly 0.01: 25 fit.
    let (v, k) = (vault.clone(), keys.clone());
    let admitted = race(8, move |i| {
        let (key_id, secret) = &k[i % 4];
        let request = VerifyRequest {
            hold: HoldAmounts {
                cost: 10_000,
                ..HoldAmounts::default()
            },
            ..VerifyRequest::default()
        };
        let mut admitted = 0u64;
        for n in 0..10 {
            let verdict = v.verify(secret, &request).unwrap();
            if !verdict.allowed {
                assert_eq!(verdict.code, Code::BudgetExceeded);
                continue;
            }
            admitted += 1;
            let usage = Usage {
                cost: Some(10_000),
                hold_id: verdict.hold_id,
                request_id: Some(format!("t{i}-{n}")),
                ..Usage::default()
            };
            v.charge(key_id, &usage).unwrap();
        }
        admitted
    });

    assert_eq!(admitted.iter().sum::<u64>(), 25);
    let owner = vault.owner("team").unwrap();
    assert_eq!(owner.remaining.cost, Some(0));
    let status = &owner.remaining.limits[0];
    assert_eq!((status.used, status.held), (250_000, 0));
    let rows = vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows[0].requests, 25);
    assert_eq!(rows[0].cost, 250_000);
}

#[test]
fn sixteen_threads_charging_one_request_id_count_once() {
    let (_dir, vault) = vault();
    let key = vault
        .mint(
            &spec("acme", &["cost=$10", "tokens=1M"]),
            &Context::default(),
        )
        .unwrap();
    let key_id = Arc::new(key.key_id.clone());

    let (v, id) = (vault.clone(), key_id.clone());
    let outcomes = race(16, move |_| {
        let usage = Usage {
            input_tokens: 120,
            output_tokens: 30,
            cost: Some(4_500),
            request_id: Some("req-same".into()),
            ..Usage::default()
        };
        v.charge(&id, &usage).unwrap()
    });

    assert_eq!(outcomes.iter().filter(|o| !o.replayed).count(), 1);
    assert!(outcomes.iter().all(|o| o.cost == 4_500));
    let rows = vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].requests, rows[0].tokens, rows[0].cost),
        (1, 150, 4_500)
    );
    let remaining = vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.cost, Some(10_000_000 - 4_500));
    assert_eq!(remaining.tokens, Some(1_000_000 - 150));

    // The same id with other numbers is a conflict, and changes nothing.
    let other = Usage {
        input_tokens: 1,
        cost: Some(4_500),
        request_id: Some("req-same".into()),
        ..Usage::default()
    };
    let err = vault.charge(&key.key_id, &other).unwrap_err();
    assert_eq!(err.code(), nanu::ErrorCode::Conflict);
    assert_eq!(
        vault.remaining(&key.key_id, None).unwrap().cost,
        Some(10_000_000 - 4_500)
    );
}

#[test]
fn sixteen_threads_charging_distinct_request_ids_all_count() {
    let (_dir, vault) = vault();
    let key = vault
        .mint(
            &spec("acme", &["cost=$10", "tokens=1M"]),
            &Context::default(),
        )
        .unwrap();
    let key_id = Arc::new(key.key_id.clone());

    // Each thread charges 40 ids of its own, and every id twice: the second is a replay.
    let (v, id) = (vault.clone(), key_id.clone());
    let replays = race(16, move |t| {
        let mut replays = 0;
        for n in 0..40 {
            let usage = Usage {
                input_tokens: 10,
                output_tokens: 5,
                cost: Some(100),
                request_id: Some(format!("req-{t}-{n}")),
                ..Usage::default()
            };
            assert!(!v.charge(&id, &usage).unwrap().replayed);
            replays += u64::from(v.charge(&id, &usage).unwrap().replayed);
        }
        replays
    });

    assert_eq!(replays.iter().sum::<u64>(), 640);
    let rows = vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(
        (rows[0].requests, rows[0].tokens, rows[0].cost),
        (640, 9_600, 64_000)
    );
    let remaining = vault.remaining(&key.key_id, None).unwrap();
    assert_eq!(remaining.cost, Some(10_000_000 - 64_000));
    assert_eq!(remaining.tokens, Some(1_000_000 - 9_600));
    let records = vault.usage_records(&UsageQuery::default(), 10_000).unwrap();
    let mut ids: Vec<_> = records
        .iter()
        .filter_map(|r| r.request_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 640);
}

#[test]
fn no_verify_that_starts_after_revoke_returned_is_allowed() {
    let (_dir, vault) = vault();
    let key = vault
        .mint(
            &spec("acme", &["requests=1M", "tokens=1B"]),
            &Context::default(),
        )
        .unwrap();
    let secret = Arc::new(key.secret.expose().to_owned());
    let key_id = Arc::new(key.key_id.clone());
    let revoked = Arc::new(AtomicBool::new(false));
    let allowed_before = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..6)
        .map(|t| {
            let (v, secret, key_id) = (vault.clone(), secret.clone(), key_id.clone());
            let (revoked, allowed_before) = (revoked.clone(), allowed_before.clone());
            thread::spawn(move || {
                let mut after = 0;
                for n in 0.. {
                    let returned = revoked.load(Ordering::SeqCst);
                    let verdict = v.verify(&secret, &VerifyRequest::default()).unwrap();
                    if returned {
                        assert!(!verdict.allowed, "allowed after the revoke returned");
                        assert_eq!(verdict.code, Code::Revoked);
                        after += 1;
                        if after == 200 {
                            break;
                        }
                        continue;
                    }
                    if verdict.allowed {
                        allowed_before.fetch_add(1, Ordering::Relaxed);
                        if n % 4 == 0 {
                            let usage = Usage {
                                input_tokens: 3,
                                request_id: Some(format!("w{t}-{n}")),
                                ..Usage::default()
                            };
                            v.charge(&key_id, &usage).unwrap();
                        }
                    }
                }
            })
        })
        .collect();

    // Let the workers get going, then revoke while they run.
    while allowed_before.load(Ordering::Relaxed) < 2_000 {
        thread::yield_now();
    }
    vault.revoke(&key.key_id, &Context::default()).unwrap();
    revoked.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().unwrap();
    }

    let verdict = vault
        .verify(key.secret.expose(), &VerifyRequest::default())
        .unwrap();
    assert_eq!(verdict.code, Code::Revoked);
    assert_eq!(
        vault.get(&key.key_id).unwrap().status,
        nanu::Status::Revoked
    );
    // Every allowed verify was counted, none after the revoke.
    let (used, _) = status_used(&vault, &key.key_id, Unit::Requests);
    assert_eq!(used, allowed_before.load(Ordering::Relaxed));
}
