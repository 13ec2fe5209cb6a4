//! verify in the `shared` mode (several processes on one vault file): a valid key with three
//! limits (a rolling request rate, a daily token quota, a monthly budget) and every check, in
//! a vault of 10,000 such keys opened by this process alone in the shared mode. What the mode
//! adds to a verify is the check of the generation file for changes made by other processes
//! (and, rarely, a lease of a new slice); the rate of four processes together is measured by
//! `benches/shared/rate.sh`. Under `cargo bench` it also prints per-call percentiles.
//!
//! `cargo bench -p nanu-benches --bench shared -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nanu::{Concurrency, Durability, Vault};
use nanu_benches::{benchmarking, full_request, mint_keys, options, percentiles, set_price};

const KEYS: usize = 10_000;

fn shared_verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.vault");
    let shared = options(Durability::Durable).concurrency(Concurrency::Shared);
    let vault = Vault::create(&path, &shared).expect("create");
    set_price(&vault);
    let keys = mint_keys(&vault, KEYS);
    let request = full_request();
    let (_, secret) = &keys[KEYS / 2];
    let verdict = vault.verify(secret, &request).expect("verify");
    assert!(verdict.allowed, "{verdict:?}");

    let mut group = c.benchmark_group("shared");
    group.bench_function("verify_valid_3_limits_all_checks", |b| {
        b.iter(|| vault.verify(black_box(secret), black_box(&request)))
    });
    group.finish();

    if benchmarking() {
        let [p50, p90, p99, p999] = percentiles(1_000_000, || {
            black_box(vault.verify(black_box(secret), black_box(&request)).ok());
        });
        println!(
            "shared/verify_valid_3_limits_all_checks per call (1,000,000 calls, with timer \
             overhead): p50 {p50:?}, p90 {p90:?}, p99 {p99:?}, p99.9 {p999:?}"
        );
    }
    vault.close().expect("close");
}

criterion_group!(benches, shared_verify);
criterion_main!(benches);
