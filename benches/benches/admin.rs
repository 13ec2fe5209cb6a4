//! Administrative calls at the default (`durable`) level: mint one key, mint 1,000 keys in one
//! call, rotate a key (with a grace period), in a vault that already holds 10,000 keys.
//!
//! `cargo bench -p nanu-benches --bench admin -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nanu::{Context, Durability};
use nanu_benches::{full_spec, key_vault};

fn admin(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vault, keys) = key_vault(&dir.path().join("admin.vault"), 10_000, Durability::Durable);
    let ctx = Context::default();

    let mut group = c.benchmark_group("admin");
    group.sample_size(10);
    let spec = full_spec("acme");
    group.bench_function("mint", |b| {
        b.iter(|| vault.mint(&spec, &ctx).expect("mint"))
    });

    let specs: Vec<_> = (0..1000)
        .map(|i| full_spec(&format!("bulk-{}", i % 10)))
        .collect();
    group.throughput(Throughput::Elements(1000));
    group.bench_function("mint_many_1000", |b| {
        b.iter_batched(
            || specs.clone(),
            |specs| vault.mint_many(&specs, &ctx).expect("mint_many"),
            BatchSize::PerIteration,
        )
    });

    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    let grace = Duration::from_secs(3600);
    group.bench_function("rotate", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            vault.rotate(&keys[next].0, grace, &ctx).expect("rotate")
        })
    });
    group.finish();
    vault.close().expect("close");
}

criterion_group!(benches, admin);
criterion_main!(benches);
