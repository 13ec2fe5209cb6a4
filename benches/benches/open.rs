//! open: `Vault::open` of a vault of 100,000 keys (three limits and every check each, over
//! 1,000 owners), followed by `close`, with cheap KDF parameters: the time is the load, not
//! the KDF. Memory per key is measured by the `open_memory` benchmark in a fresh process.
//!
//! `cargo bench -p nanu-benches --bench open -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use nanu::{Durability, Vault};
use nanu_benches::{key_vault, options};

const KEYS: usize = 100_000;

fn open(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("open.vault");
    let (vault, _) = key_vault(&path, KEYS, Durability::Durable);
    vault.close().expect("close");
    drop(vault);

    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.bench_function("100000_keys", |b| {
        b.iter(|| {
            let vault = Vault::open(&path, &options(Durability::Durable)).expect("open");
            assert_eq!(vault.stats().keys, KEYS as u64);
            vault.close().expect("close");
        })
    });
    group.finish();
}

criterion_group!(benches, open);
criterion_main!(benches);
