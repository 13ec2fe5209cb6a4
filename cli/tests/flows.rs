//! The everyday flows through the built binary: init, mint, verify, charge, usage, rotate,
//! revoke, update, owners, prices, events, audit, rekey.

mod common;

use common::{Scratch, fails_with};
use predicates::prelude::*;
use serde_json::Value;

#[test]
fn mint_verify_charge_and_usage() {
    let s = Scratch::with_vault();
    s.nanu()
        .args([
            "prices", "set", "gpt-4o", "--input", "2.5", "--output", "10",
        ])
        .assert()
        .success();
    let (key, secret) = s.mint(&[
        "--owner",
        "acme",
        "--name",
        "prod",
        "--limit",
        "cost=10usd/month",
        "--limit",
        "requests=100/min",
        "--model",
        "gpt-4o",
        "--alias",
        "smart=gpt-4o",
        "--meta",
        "tier=gold",
    ]);
    assert!(key.starts_with("key_"));
    assert!(secret.starts_with("nanu_live_"));

    let verdict = s.json(&["verify", &secret, "--model", "smart"]);
    assert_eq!(verdict["allowed"], true);
    assert_eq!(verdict["code"], "valid");
    assert_eq!(verdict["key_id"], key.as_str());
    assert_eq!(verdict["owner"], "acme");
    assert_eq!(verdict["model"], "gpt-4o");
    assert_eq!(verdict["http_status"], 200);

    // 1,200 input and 300 output tokens of gpt-4o cost 0.003 + 0.003 = 0.006.
    let outcome = s.json(&[
        "charge",
        &key,
        "--model",
        "smart",
        "--input-tokens",
        "1200",
        "--output-tokens",
        "300",
        "--request-id",
        "req-1",
    ]);
    assert_eq!(outcome["cost"], 6000);
    assert_eq!(outcome["priced"], true);
    assert_eq!(outcome["replayed"], false);

    // The same request id again returns the first outcome and records nothing.
    let again = s.json(&[
        "charge",
        &key,
        "--model",
        "smart",
        "--input-tokens",
        "1200",
        "--output-tokens",
        "300",
        "--request-id",
        "req-1",
    ]);
    assert_eq!(again["replayed"], true);

    let rows = s.json(&["usage", "--group-by", "model,owner"]);
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["group"]["model"], "gpt-4o");
    assert_eq!(rows[0]["group"]["owner"], "acme");
    assert_eq!(rows[0]["requests"], 1);
    assert_eq!(rows[0]["input_tokens"], 1200);
    assert_eq!(rows[0]["cost"], 6000);

    let shown = s.json(&["show", &key]);
    assert_eq!(shown["key"]["metadata"]["tier"], "gold");
    let cost_limit = shown["remaining"]["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["limit"]["unit"] == "cost")
        .expect("a cost limit")
        .clone();
    assert_eq!(cost_limit["used"], 6000);
    assert_eq!(shown["remaining"]["cost"], 10_000_000 - 6000);

    // CSV for spreadsheets: money as exact decimals.
    s.nanu()
        .args(["usage", "--format", "csv", "--group-by", "owner"])
        .assert()
        .success()
        .stdout(predicate::str::contains(concat!(
            "owner,requests,denied,input_tokens,output_tokens,tokens,cost\n",
            "acme,1,0,1200,300,1500,0.006\n",
        )));
}

#[test]
fn verify_reads_the_secret_from_stdin_and_exits_10_when_denied() {
    let s = Scratch::with_vault();
    let (_, secret) = s.mint(&["--owner", "acme", "--limit", "requests=1"]);
    s.nanu()
        .args(["verify", "-"])
        .write_stdin(format!("{secret}\n"))
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("valid"));
    // The only request is used: the next verify is denied, with the reason printed.
    let out = s
        .nanu()
        .args(["--json", "verify", "-"])
        .write_stdin(secret.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["allowed"], false);
    assert_eq!(verdict["code"], "usage_exceeded");
    assert_eq!(verdict["denied_by"]["limit"]["unit"], "requests");
    s.nanu()
        .args(["verify", "nanu_live_not-a-key"])
        .assert()
        .code(10)
        .stdout("malformed\n");
    // The secret is never echoed in a denial or an error.
    let out = s.nanu().args(["verify", &secret]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
}

#[test]
fn a_hold_that_does_not_fit_the_budget_is_denied() {
    let s = Scratch::with_vault();
    let (_, secret) = s.mint(&["--owner", "acme", "--limit", "cost=$1/day"]);
    let verdict = s.json(&["verify", &secret, "--hold-cost", "0.75"]);
    assert_eq!(verdict["allowed"], true);
    // The hold was given back when the first command exited, so this one fits too.
    let verdict = s.json(&["verify", &secret, "--hold-cost", "1"]);
    assert_eq!(verdict["allowed"], true);
    let out = s
        .nanu()
        .args(["--json", "verify", &secret, "--hold-cost", "1.000001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["code"], "budget_exceeded");
}

#[test]
fn rotation_keeps_the_old_secret_through_the_grace_period_only() {
    let s = Scratch::with_vault();
    let (key, old) = s.mint(&["--owner", "acme"]);
    let rotated = s.json(&["rotate", &key, "--grace", "1h"]);
    assert_eq!(rotated["key_id"], key.as_str());
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let verdict = s.json(&["verify", &old]);
    assert_eq!(verdict["allowed"], true);
    assert_eq!(verdict["grace"], true);
    assert_eq!(s.json(&["verify", &new])["grace"], false);
    assert!(s.json(&["show", &key])["key"]["grace_until"].is_string());

    // A rotation with no grace ends every earlier secret at once.
    let third = s.json(&["rotate", &key])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for gone in [&old, &new] {
        s.nanu()
            .args(["verify", gone])
            .assert()
            .code(10)
            .stdout("not_found\n");
    }
    s.nanu().args(["verify", &third]).assert().code(0);
}

#[test]
fn revoke_a_key_and_an_owner() {
    let s = Scratch::with_vault();
    let (a, secret_a) = s.mint(&["--owner", "acme"]);
    let (_, secret_b) = s.mint(&["--owner", "acme", "--env", "test"]);
    let (_, secret_c) = s.mint(&["--owner", "globex"]);

    assert_eq!(s.json(&["revoke", &a])["revoked"], true);
    s.nanu()
        .args(["verify", &secret_a])
        .assert()
        .code(10)
        .stdout(predicate::str::starts_with("revoked"));
    assert_eq!(s.json(&["revoke", "--owner", "acme"])["revoked"], 1);
    s.nanu().args(["verify", &secret_b]).assert().code(10);
    s.nanu().args(["verify", &secret_c]).assert().code(0);

    let revoked = s.json(&["ls", "--status", "revoked"]);
    assert_eq!(revoked["keys"].as_array().unwrap().len(), 2);
    let test_keys = s.json(&["ls", "--env", "test"]);
    assert_eq!(test_keys["keys"][0]["env"], "test");
    let events = s.json(&["events"]);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["revoked", "revoked"]);
}

#[test]
fn ls_pages_through_keys() {
    let s = Scratch::with_vault();
    for _ in 0..5 {
        s.mint(&["--owner", "acme"]);
    }
    let first = s.json(&["ls", "--limit", "2"]);
    assert_eq!(first["keys"].as_array().unwrap().len(), 2);
    let mut seen = 2;
    let mut next = first["next"].as_str().map(str::to_owned);
    while let Some(after) = next {
        let page = s.json(&["ls", "--limit", "2", "--after", &after]);
        seen += page["keys"].as_array().unwrap().len();
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 5);
}

#[test]
fn update_changes_policy_and_state() {
    let s = Scratch::with_vault();
    let (key, secret) = s.mint(&["--owner", "acme", "--model", "gpt-4o", "--meta", "a=1"]);
    let info = s.json(&[
        "update",
        &key,
        "--name",
        "renamed",
        "--limit",
        "requests=5/min",
        "--meta",
        "b=2",
        "--disable",
    ]);
    assert_eq!(info["name"], "renamed");
    assert_eq!(info["status"], "disabled");
    assert_eq!(info["metadata"], serde_json::json!({"a": "1", "b": "2"}));
    assert_eq!(info["limits"][0]["amount"], 5);
    s.nanu()
        .args(["verify", &secret])
        .assert()
        .code(10)
        .stdout(predicate::str::starts_with("disabled"));

    let info = s.json(&[
        "update",
        &key,
        "--enable",
        "--clear-models",
        "--clear-limits",
    ]);
    assert_eq!(info["status"], "active");
    assert!(info["models"].is_null());
    assert_eq!(info["limits"], serde_json::json!([]));
    s.nanu()
        .args(["verify", &secret, "--model", "claude-sonnet-4-5"])
        .assert()
        .code(0);

    let info = s.json(&["update", &key, "--ttl", "30d"]);
    assert!(info["expires_at"].is_string());
    let info = s.json(&["update", &key, "--clear-expires"]);
    assert!(info["expires_at"].is_null());
}

#[test]
fn owners_share_limits() {
    let s = Scratch::with_vault();
    let (_, one) = s.mint(&["--owner", "acme"]);
    let (_, two) = s.mint(&["--owner", "acme"]);
    let info = s.json(&["owner", "set", "acme", "--limit", "requests=2"]);
    assert_eq!(info["keys"], 2);
    s.nanu().args(["verify", &one]).assert().code(0);
    s.nanu().args(["verify", &two]).assert().code(0);
    let out = s.nanu().args(["--json", "verify", &one]).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["denied_by"]["level"], "owner");
    let shown = s.json(&["owner", "show", "acme"]);
    assert_eq!(shown["remaining"]["requests"], 0);

    let default = s.json(&["owner", "default", "--limit", "cost=$5/month"]);
    assert_eq!(default["limits"][0]["unit"], "cost");
    s.mint(&["--owner", "newcomer"]);
    let newcomer = s.json(&["owner", "show", "newcomer"]);
    assert_eq!(newcomer["limits"][0]["amount"], 5_000_000);
}

#[test]
fn prices_import_set_and_list() {
    let s = Scratch::with_vault();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/litellm-model-prices-1.110.2.json"
    );
    let report = s.json(&["prices", "import", file]);
    assert!(report["imported"].as_u64().unwrap() > 3000, "{report}");
    let prices = s.json(&["prices", "ls", "--match", "gpt-4o-mini"]);
    // LiteLLM lists gpt-4o-mini at 1.5e-07 and 6e-07 dollars per token.
    assert_eq!(prices["gpt-4o-mini"]["input_per_mtok"], 150_000);
    assert_eq!(prices["gpt-4o-mini"]["output_per_mtok"], 600_000);

    // `prices set` reads decimal dollars per million tokens exactly.
    s.json(&[
        "prices",
        "set",
        "house-model",
        "--input",
        "0.1",
        "--output",
        "0.3",
    ]);
    let prices = s.json(&["prices", "ls", "--match", "house-model"]);
    assert_eq!(prices["house-model"]["input_per_mtok"], 100_000);
    assert_eq!(prices["house-model"]["output_per_mtok"], 300_000);
    s.json(&["prices", "rm", "house-model"]);
    let prices = s.json(&["prices", "ls", "--match", "house-model"]);
    assert_eq!(prices, serde_json::json!({}));
}

#[test]
fn audit_records_every_change_and_verifies() {
    let s = Scratch::with_vault();
    let (key, _) = s.mint(&["--owner", "acme"]);
    s.json(&["rotate", &key]);
    s.json(&["revoke", &key]);
    let records = s.json(&["--actor", "alice", "audit"]);
    let actions: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "mint", "rotate", "revoke"]);
    let check = s.json(&["audit", "--verify"]);
    assert_eq!(check["ok"], true);
    assert_eq!(check["records"], 4);
}

#[test]
fn rekey_changes_the_passphrase() {
    let s = Scratch::with_vault();
    let (key, _) = s.mint(&["--owner", "acme"]);
    s.nanu()
        .env("NANU_NEW_PASSPHRASE", "a new passphrase")
        .arg("rekey")
        .assert()
        .success();
    fails_with(s.nanu().arg("ls"), 3);
    s.nanu()
        .env("NANU_PASSPHRASE", "a new passphrase")
        .args(["show", &key])
        .assert()
        .success();

    // A raw key file works too, and then the passphrase no longer does.
    let key_file = s.path("vault.key");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    s.nanu()
        .env("NANU_PASSPHRASE", "a new passphrase")
        .args(["rekey", "--new-key-file"])
        .arg(&key_file)
        .assert()
        .success();
    s.nanu()
        .arg("--key-file")
        .arg(&key_file)
        .args(["show", &key])
        .assert()
        .success();
    fails_with(
        s.nanu()
            .env("NANU_PASSPHRASE", "a new passphrase")
            .arg("ls"),
        3,
    );
}

#[test]
fn the_vault_path_comes_from_the_flag_then_the_environment() {
    let s = Scratch::empty();
    s.nanu()
        .args(["--vault", "a.vault", "init"])
        .assert()
        .success();
    assert!(s.path("a.vault").exists());
    s.nanu()
        .env("NANU_VAULT", "b.vault")
        .arg("init")
        .assert()
        .success();
    assert!(s.path("b.vault").exists());
    assert!(!s.vault().exists());
    s.nanu()
        .env("NANU_VAULT", "b.vault")
        .arg("ls")
        .assert()
        .success();
}

#[test]
fn events_follow_prints_events_as_they_come() {
    let s = Scratch::with_vault();
    let (key, _) = s.mint(&["--owner", "acme"]);
    s.json(&["revoke", &key]);
    // --follow runs until interrupted; the timeout stands in for the interrupt.
    let out = s
        .nanu()
        .args(["--json", "events", "--follow", "--interval", "100ms"])
        .timeout(std::time::Duration::from_secs(3))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().expect("one event line");
    let event: Value = serde_json::from_str(first).unwrap();
    assert_eq!(event["kind"], "revoked");
    assert_eq!(event["key_id"], key.as_str());
}
