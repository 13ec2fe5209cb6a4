//! Unlocking, sealing and damage: wrong passphrases, files that are not vaults, a vault locked
//! by another handle, rekeying, raw-key unlock, and sealed rows flipped or moved in the file.

mod common;

use std::process::Command;

use common::{PASSPHRASE, TestVault, edit_str_row, flip, options, ts};
use nanu::{
    Code, Context, ErrorCode, KdfParams, Options, Unlock, Usage, UsageQuery, Vault, VerifyRequest,
};
use redb::{ReadableTable, TableDefinition};

fn open_err(path: &std::path::Path, options: &Options) -> nanu::Error {
    Vault::open(path, options).expect_err("open must fail")
}

#[test]
fn a_wrong_passphrase_is_wrong_passphrase_and_the_message_holds_no_secret() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    tv.close();
    let wrong = "wrong horse battery";
    let err = open_err(
        &tv.path,
        &Options::passphrase(wrong).kdf(KdfParams::INSECURE_FOR_TESTS),
    );
    assert_eq!(err.code(), ErrorCode::WrongPassphrase);
    assert!(!err.to_string().contains(wrong));
    assert!(!err.to_string().contains(PASSPHRASE));
    assert_eq!(err.to_string(), err.to_string().to_lowercase());
    let err = open_err(&tv.path, &Options::key([7; 32]));
    assert_eq!(err.code(), ErrorCode::WrongPassphrase);
    let err = open_err(&tv.path, &Options::passphrase(""));
    assert_eq!(err.code(), ErrorCode::InvalidArgument);

    // The right passphrase still opens it, and nothing was lost.
    let vault = Vault::open(&tv.path, &options()).expect("open");
    let verdict = vault
        .verify(m.secret.expose(), &VerifyRequest::default())
        .unwrap();
    assert!(verdict.allowed);
}

#[test]
fn files_that_are_not_vaults_are_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options();

    let random = dir.path().join("random.vault");
    let mut bytes = vec![0u8; 64 * 1024];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for b in bytes.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    std::fs::write(&random, &bytes).unwrap();
    assert_eq!(open_err(&random, &opts).code(), ErrorCode::NotAVault);

    let empty = dir.path().join("empty.vault");
    std::fs::File::create(&empty).unwrap();
    assert_eq!(open_err(&empty, &opts).code(), ErrorCode::NotAVault);

    let text = dir.path().join("text.vault");
    std::fs::write(&text, "not a database\n".repeat(1000)).unwrap();
    assert_eq!(open_err(&text, &opts).code(), ErrorCode::NotAVault);

    // A real redb file, without nanu's tables.
    let plain = dir.path().join("plain.redb");
    {
        let db = redb::Database::create(&plain).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: TableDefinition<&str, u64> = TableDefinition::new("counters");
            txn.open_table(def).unwrap().insert("a", 1).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(open_err(&plain, &opts).code(), ErrorCode::NotAVault);

    // A redb file with a `meta` table that is not nanu's.
    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
            txn.open_table(def)
                .unwrap()
                .insert("magic", &b"x"[..])
                .unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(open_err(&other, &opts).code(), ErrorCode::NotAVault);

    // Nothing at all there: an admin call on a missing thing.
    let missing = dir.path().join("missing.vault");
    assert_eq!(open_err(&missing, &opts).code(), ErrorCode::NotFound);
    assert!(!missing.exists(), "open must not create a file");

    // Creating over an existing file is refused and leaves the file alone.
    let err = Vault::create(&random, &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(std::fs::read(&random).unwrap(), bytes);
}

const HELPER_ENV: &str = "NANU_TEST_OPEN_HELPER";

/// Not a test on its own: run by `an_open_vault_is_locked_for_another_process` in a child
/// process, where it tries to open the vault named by the environment and prints the outcome.
#[test]
fn helper_open_vault_from_the_environment() {
    let Ok(path) = std::env::var(HELPER_ENV) else {
        return;
    };
    match Vault::open(&path, &options()) {
        Ok(_) => println!("helper outcome: opened"),
        Err(err) => println!("helper outcome: {}", err.code()),
    }
}

#[test]
fn an_open_vault_is_locked_for_another_process() {
    let tv = TestVault::new();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_open_vault_from_the_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, &tv.path)
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("helper outcome: locked"), "{stdout}");

    // Once closed here, the other process can open it.
    tv.close();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_open_vault_from_the_environment",
            "--nocapture",
        ])
        .env(HELPER_ENV, &tv.path)
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("helper outcome: opened"), "{stdout}");
}

#[test]
fn an_open_vault_is_locked_for_a_second_handle_in_the_same_process() {
    let tv = TestVault::new();
    let err = open_err(&tv.path, &tv.options());
    assert_eq!(err.code(), ErrorCode::Locked);
    assert!(err.message().contains("test.vault"), "{err}");
    // The first handle is unharmed.
    let m = tv.mint("acme", &[]);
    assert!(tv.verify(&m).allowed);
}

#[test]
fn rekey_replaces_the_passphrase_and_keeps_every_key() {
    let mut tv = TestVault::new();
    let keys: Vec<_> = (0..5).map(|i| tv.mint(&format!("o{i}"), &[])).collect();
    tv.vault
        .rekey(
            &Unlock::passphrase("new passphrase"),
            KdfParams::INSECURE_FOR_TESTS,
            &Context::actor("admin"),
        )
        .expect("rekey");
    // The open handle keeps working.
    assert!(tv.verify(&keys[0]).allowed);
    tv.close();

    let err = open_err(&tv.path, &options());
    assert_eq!(err.code(), ErrorCode::WrongPassphrase);
    let new = Options::passphrase("new passphrase")
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(tv.clock.clock());
    let vault = Vault::open(&tv.path, &new).expect("the new passphrase opens");
    for m in &keys {
        let verdict = vault
            .verify(m.secret.expose(), &VerifyRequest::default())
            .unwrap();
        assert_eq!(verdict.key_id.as_deref(), Some(m.key_id.as_str()));
    }
    let audit = vault.audit(0, 100).unwrap();
    let rekey = audit.iter().find(|r| r.action == "rekey").expect("audited");
    assert_eq!(rekey.actor.as_deref(), Some("admin"));
    assert!(!rekey.detail.to_string().contains("new passphrase"));

    // From a passphrase to a raw key.
    let raw = [0x5a; 32];
    vault
        .rekey(
            &Unlock::key(raw),
            KdfParams::INSECURE_FOR_TESTS,
            &Context::default(),
        )
        .unwrap();
    vault.close().unwrap();
    drop(vault);
    assert_eq!(open_err(&tv.path, &new).code(), ErrorCode::WrongPassphrase);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let by_hex = Options::new(Unlock::key_hex(&format!("  {hex}\n")).unwrap());
    tv.vault = Vault::open(&tv.path, &by_hex).expect("the raw key opens");
    assert!(tv.verify(&keys[4]).allowed);
}

#[test]
fn a_vault_made_with_a_raw_key_opens_with_that_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.vault");
    let key = [0x11; 32];
    let vault = Vault::create(&path, &Options::key(key)).unwrap();
    let m = vault
        .mint(&common::spec("acme", &[]), &Context::default())
        .unwrap();
    vault.close().unwrap();
    drop(vault);
    let mut other = key;
    other[31] ^= 1;
    assert_eq!(
        open_err(&path, &Options::key(other)).code(),
        ErrorCode::WrongPassphrase
    );
    assert_eq!(
        open_err(&path, &options()).code(),
        ErrorCode::WrongPassphrase
    );
    let vault = Vault::open(&path, &Options::key(key)).unwrap();
    let verdict = vault
        .verify(m.secret.expose(), &VerifyRequest::default())
        .unwrap();
    assert!(verdict.allowed);
    assert_eq!(
        Unlock::key_hex("abc").unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert!(!format!("{:?}", Options::key(key)).contains("17"));
}

#[test]
fn a_flipped_byte_in_one_key_record_makes_only_that_key_corrupt() {
    let mut tv = TestVault::new();
    let keys: Vec<_> = (0..4).map(|_| tv.mint("acme", &["requests=10"])).collect();
    assert!(tv.verify(&keys[1]).allowed);
    tv.close();
    edit_str_row(&tv.path, "keys", &keys[1].key_id, flip);
    tv.vault = Vault::open(&tv.path, &tv.options()).expect("a damaged row does not stop open");

    let err = tv.vault.get(&keys[1].key_id).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corrupt);
    assert!(err.message().contains(&keys[1].key_id), "{err}");
    assert_eq!(tv.vault.stats().corrupt_keys, 1);
    // The damaged key's secret can no longer be found: its digest was in the damaged record.
    assert_eq!(tv.verify(&keys[1]).code, Code::NotFound);
    let err = tv
        .vault
        .charge(&keys[1].key_id, &Usage::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corrupt);
    // Every other key works, with its counters.
    for m in [&keys[0], &keys[2], &keys[3]] {
        let verdict = tv.verify(m);
        assert!(verdict.allowed, "{verdict:?}");
        assert_eq!(verdict.key_id.as_deref(), Some(m.key_id.as_str()));
        assert!(tv.vault.get(&m.key_id).is_ok());
    }
    let listed = tv.vault.list(&nanu::KeyFilter::default()).unwrap();
    assert_eq!(listed.keys.len(), 3);
    assert!(listed.keys.iter().all(|k| k.key_id != keys[1].key_id));
}

#[test]
fn a_record_moved_to_another_row_is_corrupt() {
    let mut tv = TestVault::new();
    let a = tv.mint("acme", &[]);
    let b = tv.mint("acme", &[]);
    let c = tv.mint("acme", &[]);
    tv.close();
    // Copy a's sealed record over b's row: it opens only under a's row key.
    let def: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
    {
        let db = redb::Database::open(&tv.path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(def).unwrap();
            let sealed = t.get(a.key_id.as_str()).unwrap().unwrap().value().to_vec();
            t.insert(b.key_id.as_str(), sealed.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    tv.vault = Vault::open(&tv.path, &tv.options()).unwrap();
    assert_eq!(
        tv.vault.get(&b.key_id).unwrap_err().code(),
        ErrorCode::Corrupt
    );
    assert!(tv.verify(&a).allowed);
    assert!(tv.verify(&c).allowed);
    assert_eq!(tv.verify(&b).code, Code::NotFound);
}

#[test]
fn a_flipped_byte_in_a_ledger_row_restarts_those_counters_and_nothing_else() {
    // Documented in the `store` module: counters are not chained, so a damaged ledger row
    // costs its counters (as a removed one would) and the key keeps working.
    let mut tv = TestVault::new();
    let a = tv.mint("acme", &["requests=5"]);
    let b = tv.mint("acme", &["requests=5"]);
    for _ in 0..3 {
        assert!(tv.verify(&a).allowed);
        assert!(tv.verify(&b).allowed);
    }
    tv.close();
    edit_str_row(&tv.path, "ledgers", &format!("k/{}", a.key_id), flip);
    tv.vault = Vault::open(&tv.path, &tv.options()).unwrap();
    let remaining = |m: &nanu::Minted| tv.vault.remaining(&m.key_id, None).unwrap().requests;
    assert_eq!(remaining(&a), Some(5));
    assert_eq!(remaining(&b), Some(2));
    assert!(tv.verify(&a).allowed);
    assert_eq!(tv.vault.get(&a.key_id).unwrap().limits.len(), 1);
}

#[test]
fn a_flipped_byte_in_a_usage_row_fails_the_usage_query_naming_the_row() {
    let mut tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    for (i, at) in ["2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z"]
        .iter()
        .enumerate()
    {
        let usage = Usage {
            input_tokens: 10 + i as u64,
            cost: Some(5),
            at: Some(ts(at)),
            ..Usage::default()
        };
        tv.vault.charge(&m.key_id, &usage).unwrap();
    }
    tv.close();

    // Flip a byte of the second usage row (the table is keyed by (time, sequence)).
    let def: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("usage");
    let (time, seq) = {
        let db = redb::Database::open(&tv.path).unwrap();
        let txn = db.begin_write().unwrap();
        let key = {
            let mut t = txn.open_table(def).unwrap();
            let rows: Vec<((u64, u64), Vec<u8>)> = t
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value(), v.value().to_vec())
                })
                .collect();
            assert_eq!(rows.len(), 2);
            let (key, mut value) = rows[1].clone();
            flip(&mut value);
            t.insert(key, value.as_slice()).unwrap();
            key
        };
        txn.commit().unwrap();
        key
    };
    tv.vault = Vault::open(&tv.path, &tv.options()).unwrap();

    // A report cannot be exact without the row, so the query fails and names it: its sequence
    // number and its time.
    let err = tv.vault.usage(&UsageQuery::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corrupt);
    assert!(err.message().contains(&format!("usage row {seq}")), "{err}");
    let at = jiff::Timestamp::from_microsecond((time ^ (1 << 63)) as i64).unwrap();
    assert_eq!(at, ts("2025-01-01T11:00:00Z"));
    assert!(err.message().contains("2025-01-01T11:00:00Z"), "{err}");
    // A time range that leaves the row out still reads.
    let before = UsageQuery {
        to: Some(ts("2025-01-01T10:30:00Z")),
        ..UsageQuery::default()
    };
    let rows = tv.vault.usage(&before).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].input_tokens, 10);
    // The key and its counters are not affected.
    assert!(tv.verify(&m).allowed);
}

#[test]
fn the_file_holds_no_secret_name_scope_or_metadata_in_the_clear() {
    let tv = TestVault::new();
    let m = tv.mint_json(serde_json::json!({
        "owner": "acme",
        "name": "name-in-the-clear",
        "metadata": {"note": "metadata-in-the-clear"},
        "scopes": ["scope-in-the-clear"],
        "limits": ["tokens=123456789"],
    }));
    let secret = m.secret.expose().to_owned();
    tv.close();
    let bytes = std::fs::read(&tv.path).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    // Row keys (key ids, owner names) are in the clear by design (see the `store` module);
    // everything inside a record is sealed.
    for needle in [
        secret.as_bytes(),
        &secret.as_bytes()[10..40],
        b"name-in-the-clear",
        b"metadata-in-the-clear",
        b"scope-in-the-clear",
        b"123456789",
        PASSPHRASE.as_bytes(),
    ] {
        assert!(
            !contains(needle),
            "{:?} found in the file",
            String::from_utf8_lossy(needle)
        );
    }
    assert!(contains(b"nanu vault"), "the magic is in the clear");
}

#[test]
fn a_vault_file_written_by_a_newer_nanu_is_refused() {
    let tv = TestVault::new();
    tv.close();
    let def: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    {
        let db = redb::Database::open(&tv.path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(def).unwrap();
            let header = t.get("header").unwrap().unwrap().value().to_vec();
            let mut header: serde_json::Value = serde_json::from_slice(&header).unwrap();
            header["schema"] = serde_json::json!(999);
            let bytes = serde_json::to_vec(&header).unwrap();
            t.insert("header", bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = open_err(&tv.path, &tv.options());
    assert_eq!(err.code(), ErrorCode::NotAVault);
    assert!(err.message().contains("newer"), "{err}");
}

#[test]
fn a_closed_vault_refuses_calls() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    tv.close();
    tv.close();
    let err = tv
        .vault
        .verify(m.secret.expose(), &VerifyRequest::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Closed);
    assert_eq!(
        tv.vault.get(&m.key_id).unwrap_err().code(),
        ErrorCode::Closed
    );
}
