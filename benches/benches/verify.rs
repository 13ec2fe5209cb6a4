//! verify: a valid key with three limits (a rolling request rate, a daily token quota, a
//! monthly budget) and every check (IP allowlist, scope, model allowlist with a price,
//! environment), in a vault of 100,000 such keys; a well-formed secret of no key; a malformed
//! one. Under `cargo bench` it also prints per-call percentiles of the valid case.
//!
//! `cargo bench -p nanu-benches --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nanu::Durability;
use nanu_benches::{benchmarking, full_request, key_vault, percentiles};

const KEYS: usize = 100_000;

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vault, keys) = key_vault(&dir.path().join("verify.vault"), KEYS, Durability::Durable);
    let request = full_request();
    let (_, secret) = &keys[KEYS / 2];
    assert!(vault.verify(secret, &request).expect("verify").allowed);

    // A well-formed secret of another vault: the same shape and checksum, no key.
    let other = tempfile::tempdir().expect("tempdir");
    let (stranger, strangers) =
        key_vault(&other.path().join("other.vault"), 1, Durability::Relaxed);
    let unknown = strangers[0].1.clone();
    drop(stranger);
    assert_eq!(
        vault.verify(&unknown, &request).expect("verify").code,
        nanu::Code::NotFound
    );
    // One character changed: the checksum fails before any lookup.
    let mut malformed = secret.clone().into_bytes();
    let last = malformed.len() - 10;
    malformed[last] = if malformed[last] == b'A' { b'B' } else { b'A' };
    let malformed = String::from_utf8(malformed).expect("ascii");
    assert_eq!(
        vault.verify(&malformed, &request).expect("verify").code,
        nanu::Code::Malformed
    );

    let mut group = c.benchmark_group("verify");
    group.bench_function("valid_3_limits_all_checks", |b| {
        b.iter(|| vault.verify(black_box(secret), black_box(&request)))
    });
    // 1,000 different keys in turn: the lookup and the key's state are less often in cache.
    let spread: Vec<&str> = keys
        .iter()
        .step_by(KEYS / 1000)
        .map(|(_, s)| s.as_str())
        .collect();
    let mut next = 0;
    group.bench_function("valid_3_limits_all_checks_1000_keys", |b| {
        b.iter(|| {
            next = (next + 1) % spread.len();
            vault.verify(black_box(spread[next]), black_box(&request))
        })
    });
    group.bench_function("not_found", |b| {
        b.iter(|| vault.verify(black_box(&unknown), black_box(&request)))
    });
    group.bench_function("malformed", |b| {
        b.iter(|| vault.verify(black_box(&malformed), black_box(&request)))
    });
    group.finish();

    if benchmarking() {
        let [p50, p90, p99, p999] = percentiles(2_000_000, || {
            black_box(vault.verify(black_box(secret), black_box(&request)).ok());
        });
        println!(
            "verify/valid_3_limits_all_checks per call (2,000,000 calls, with timer overhead): \
             p50 {p50:?}, p90 {p90:?}, p99 {p99:?}, p99.9 {p999:?}"
        );
    }
    vault.close().expect("close");
}

criterion_group!(benches, verify);
criterion_main!(benches);
