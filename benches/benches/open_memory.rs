//! Memory and time of opening a vault of many keys, each measured in a fresh process: this
//! binary builds the vault (`NANU_BENCH_KEYS` keys, 100,000 by default), then runs itself
//! again to open it, reading its resident memory (`VmRSS`) before and after the open.
//! Prints the figures; not a criterion benchmark (one open is the measurement).
//!
//! `cargo bench -p nanu-benches --bench open_memory`
//! `NANU_BENCH_KEYS=1000000 cargo bench -p nanu-benches --bench open_memory`

use std::process::Command;
use std::time::Instant;

use nanu::{Durability, Vault};
use nanu_benches::{benchmarking, key_vault, options, resident_bytes};

const OPEN_ONLY: &str = "NANU_BENCH_OPEN_ONLY";

fn main() {
    if let Ok(path) = std::env::var(OPEN_ONLY) {
        open_and_measure(&path);
        return;
    }
    // `cargo test --benches` runs this too: a small vault proves it works.
    let keys: usize = match std::env::var("NANU_BENCH_KEYS") {
        Ok(n) => n.parse().expect("NANU_BENCH_KEYS must be a number"),
        Err(_) if benchmarking() => 100_000,
        Err(_) => 1_000,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("memory.vault");
    let (vault, _) = key_vault(&path, keys, Durability::Durable);
    vault.close().expect("close");
    drop(vault);
    let file = std::fs::metadata(&path).expect("metadata").len();
    println!(
        "open_memory: {keys} keys, vault file {:.1} MiB",
        file as f64 / 1048576.0
    );

    for round in 1..=2 {
        let output = Command::new(std::env::current_exe().expect("current_exe"))
            .env(OPEN_ONLY, &path)
            .output()
            .expect("run the open");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<f64>().expect("number"));
        let (seconds, before, after) = (
            fields.next().expect("seconds"),
            fields.next().expect("before"),
            fields.next().expect("after"),
        );
        println!(
            "open_memory (run {round}): open {seconds:.3} s; resident {:.1} MiB before, \
             {:.1} MiB after; {:.0} bytes per key",
            before / 1048576.0,
            after / 1048576.0,
            (after - before) / keys as f64
        );
    }
}

fn open_and_measure(path: &str) {
    let before = resident_bytes().expect("VmRSS");
    let started = Instant::now();
    let vault = Vault::open(path, &options(Durability::Durable)).expect("open");
    let seconds = started.elapsed().as_secs_f64();
    let after = resident_bytes().expect("VmRSS");
    println!("{seconds} {before} {after}");
    vault.close().expect("close");
}
