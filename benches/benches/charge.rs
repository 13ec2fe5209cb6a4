//! charge: throughput at each durability level, from 1 and from 16 threads at once, each
//! charge with its own request id (as a gateway sends them) against a key with token and cost
//! limits. The time of one iteration is the wall time of all threads divided by the charges
//! made, so criterion's throughput is the aggregate rate. Also one caller's verify (of a key
//! with three limits and every check, holding an estimate) followed by the charge that settles
//! the hold, the unit of work of a gateway, at each level. At the `process` and `relaxed`
//! levels, `1_thread_call_only` is what a call costs its caller when the commits keep up (they
//! run untimed between bursts), where `1_threads` is the rate the commits sustain.
//!
//! `cargo bench -p nanu-benches --bench charge -- --warm-up-time 1 --measurement-time 3`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nanu::{Context, Durability, HoldAmounts, KeySpec, Limit, Usage, Vault, VerifyRequest};
use nanu_benches::{MODEL, full_request, full_spec, options, set_price};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn charge_once(vault: &Vault, key_id: &str) {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let usage = Usage {
        model: Some("openai/gpt-4o".to_owned()),
        input_tokens: 1_200,
        output_tokens: 300,
        cost: Some(4_500),
        request_id: Some(format!("req-{n}")),
        ..Usage::default()
    };
    vault.charge(key_id, &usage).expect("charge");
}

/// Makes `iters` charges from `threads` threads; returns the wall time.
fn run(vault: &Vault, key_id: &str, threads: u64, iters: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let share = iters / threads + u64::from(t < iters % threads);
            scope.spawn(move || {
                for _ in 0..share {
                    charge_once(vault, key_id);
                }
            });
        }
    });
    started.elapsed()
}

fn charge(c: &mut Criterion) {
    for durability in [
        Durability::Durable,
        Durability::Process,
        Durability::Relaxed,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault =
            Vault::create(dir.path().join("charge.vault"), &options(durability)).expect("create");
        let mut spec = KeySpec::new("acme");
        spec.limits = ["tokens=1000000000000/day", "cost=$1000000000/month"]
            .iter()
            .map(|l| l.parse::<Limit>().expect("limit"))
            .collect();
        let key = vault.mint(&spec, &Context::default()).expect("mint");

        let mut group = c.benchmark_group(format!("charge/{}", durability.as_str()));
        group.throughput(Throughput::Elements(1));
        if durability == Durability::Durable {
            // Every durable charge waits for an fsync: few iterations fill the time.
            group.sample_size(10);
        }
        for threads in [1, 16] {
            group.bench_function(format!("{threads}_threads"), |b| {
                b.iter_custom(|iters| run(&vault, &key.key_id, threads, iters))
            });
        }
        if durability != Durability::Durable {
            // What one call costs its caller, apart from the commits: bursts that stay below
            // the queue's bound, each followed by an untimed flush.
            group.bench_function("1_thread_call_only", |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let burst = left.min(4096);
                        timed += run(&vault, &key.key_id, 1, burst);
                        vault.flush().expect("flush");
                        left -= burst;
                    }
                    timed
                })
            });
        }
        group.finish();
        vault.close().expect("close");
    }
}

fn verify_and_charge(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_and_charge");
    group.throughput(Throughput::Elements(1));
    for durability in [
        Durability::Durable,
        Durability::Process,
        Durability::Relaxed,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault =
            Vault::create(dir.path().join("gateway.vault"), &options(durability)).expect("create");
        set_price(&vault);
        let key = vault
            .mint(&full_spec("acme"), &Context::default())
            .expect("mint");
        let secret = key.secret.expose();
        let request = VerifyRequest {
            hold: HoldAmounts {
                cost: 5_000,
                ..HoldAmounts::default()
            },
            ..full_request()
        };
        if durability == Durability::Durable {
            group.sample_size(10);
        } else {
            group.sample_size(100);
        }
        group.bench_function(durability.as_str(), |b| {
            b.iter(|| {
                let verdict = vault.verify(secret, &request).expect("verify");
                assert!(verdict.allowed);
                let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                let usage = Usage {
                    model: Some(MODEL.to_owned()),
                    input_tokens: 1_200,
                    output_tokens: 300,
                    request_id: Some(format!("gw-{n}")),
                    hold_id: verdict.hold_id,
                    ..Usage::default()
                };
                vault.charge(&key.key_id, &usage).expect("charge")
            })
        });
        vault.close().expect("close");
    }
    group.finish();
}

criterion_group!(benches, charge, verify_and_charge);
criterion_main!(benches);
