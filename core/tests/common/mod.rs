//! Helpers shared by the integration tests: a vault in a temporary directory, a clock the test
//! moves by hand, and direct edits of the redb file that stand in for tampering and damage.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use nanu::{Context, KdfParams, KeySpec, Limit, Minted, Options, Vault, VerifyRequest};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// The passphrase of every test vault.
pub const PASSPHRASE: &str = "test passphrase";

/// The instant every test clock starts at unless told otherwise.
pub const START: &str = "2025-01-01T00:00:00Z";

/// An RFC 3339 instant.
pub fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad instant {text:?}: {e}"))
}

/// A clock the test sets and advances; the vault reads it whenever a call has no `at`.
#[derive(Clone, Debug)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn new(at: &str) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(ts(at).as_microsecond())))
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(self.0.load(Ordering::SeqCst)).expect("clock in range")
    }

    pub fn set(&self, at: &str) {
        self.set_ts(ts(at));
    }

    pub fn set_ts(&self, at: Timestamp) {
        self.0.store(at.as_microsecond(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).expect("short duration");
        self.0.fetch_add(us, Ordering::SeqCst);
    }

    pub fn clock(&self) -> nanu::Clock {
        let at = self.0.clone();
        Arc::new(move || {
            Timestamp::from_microsecond(at.load(Ordering::SeqCst)).expect("clock in range")
        })
    }
}

/// Options with the test passphrase and the cheapest KDF.
pub fn options() -> Options {
    Options::passphrase(PASSPHRASE).kdf(KdfParams::INSECURE_FOR_TESTS)
}

/// A fresh vault in its own temporary directory, with a test clock at [`START`].
pub struct TestVault {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub clock: TestClock,
    pub vault: Vault,
}

impl TestVault {
    pub fn new() -> TestVault {
        TestVault::with(|o| o)
    }

    /// A fresh vault whose options `adjust` changes (the clock is set afterwards).
    pub fn with(adjust: impl FnOnce(Options) -> Options) -> TestVault {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("test.vault");
        let clock = TestClock::new(START);
        let opts = adjust(options()).clock(clock.clock());
        let vault = Vault::create(&path, &opts).expect("create the vault");
        TestVault {
            dir,
            path,
            clock,
            vault,
        }
    }

    /// The options this vault can be opened again with.
    pub fn options(&self) -> Options {
        options().clock(self.clock.clock())
    }

    /// Closes the vault and opens the file again with the same options.
    pub fn reopen(&mut self) {
        self.vault.close().expect("close");
        self.vault = Vault::open(&self.path, &self.options()).expect("open again");
    }

    /// Closes the vault (for direct edits of the file).
    pub fn close(&self) {
        self.vault.close().expect("close");
    }

    /// Mints a key for `owner` with limits in the text form.
    pub fn mint(&self, owner: &str, limits: &[&str]) -> Minted {
        self.vault
            .mint(&spec(owner, limits), &Context::default())
            .expect("mint")
    }

    /// Mints a key from a JSON key spec.
    pub fn mint_json(&self, spec: serde_json::Value) -> Minted {
        let spec: KeySpec = serde_json::from_value(spec).expect("key spec");
        self.vault.mint(&spec, &Context::default()).expect("mint")
    }

    /// Verifies a secret with an empty request at the clock's time.
    pub fn verify(&self, secret: &Minted) -> nanu::Verdict {
        self.vault
            .verify(secret.secret.expose(), &VerifyRequest::default())
            .expect("verify")
    }
}

/// A key spec for `owner` with limits in the text form.
pub fn spec(owner: &str, limits: &[&str]) -> KeySpec {
    let mut spec = KeySpec::new(owner);
    spec.limits = limits.iter().map(|l| limit(l)).collect();
    spec
}

/// A limit in the text form.
pub fn limit(text: &str) -> Limit {
    text.parse()
        .unwrap_or_else(|e| panic!("bad limit {text:?}: {e}"))
}

/// Applies `edit` to the sealed value of one row of a string-keyed table of a closed vault,
/// through redb itself (so redb's own page checksums stay valid and only nanu's sealing can
/// notice).
pub fn edit_str_row(path: &Path, table: &str, row: &str, edit: impl FnOnce(&mut [u8])) {
    let def: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
    let db = redb::Database::open(path).expect("open the file with redb");
    let txn = db.begin_write().expect("write transaction");
    {
        let mut t = txn.open_table(def).expect("table");
        let mut value = t
            .get(row)
            .expect("read")
            .unwrap_or_else(|| panic!("no row {row:?} in {table}"))
            .value()
            .to_vec();
        edit(&mut value);
        t.insert(row, value.as_slice()).expect("write");
    }
    txn.commit().expect("commit");
}

/// Flips one bit in the ciphertext of a sealed value (past the 24-byte nonce).
pub fn flip(value: &mut [u8]) {
    let at = 24 + (value.len() - 24) / 2;
    value[at] ^= 0x01;
}

/// Every row key of a u64-keyed table of a closed vault.
pub fn u64_rows(path: &Path, table: &str) -> Vec<u64> {
    let def: TableDefinition<u64, &[u8]> = TableDefinition::new(table);
    let db = redb::Database::open(path).expect("open the file with redb");
    let txn = db.begin_read().expect("read transaction");
    let t = txn.open_table(def).expect("table");
    t.iter()
        .expect("iterate")
        .map(|row| row.expect("row").0.value())
        .collect()
}

/// Edits a u64-keyed table of a closed vault: `edit` gets the rows as (key, value) and returns
/// the rows the table must hold afterwards.
pub fn rewrite_u64_table(
    path: &Path,
    table: &str,
    edit: impl FnOnce(Vec<(u64, Vec<u8>)>) -> Vec<(u64, Vec<u8>)>,
) {
    let def: TableDefinition<u64, &[u8]> = TableDefinition::new(table);
    let db = redb::Database::open(path).expect("open the file with redb");
    let txn = db.begin_write().expect("write transaction");
    {
        let mut t = txn.open_table(def).expect("table");
        let rows: Vec<(u64, Vec<u8>)> = t
            .iter()
            .expect("iterate")
            .map(|row| {
                let (k, v) = row.expect("row");
                (k.value(), v.value().to_vec())
            })
            .collect();
        for (k, _) in &rows {
            t.remove(*k).expect("remove");
        }
        for (k, v) in edit(rows) {
            t.insert(k, v.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
}
