//! Every bad input gives one line on stderr, the documented exit code, and leaves the vault
//! as it was.

mod common;

use common::{Scratch, bytes, fails_with};

/// A vault with a key, a price, a charge and an owner policy, so that a change would show.
fn busy_vault() -> (Scratch, String) {
    let s = Scratch::with_vault();
    s.json(&[
        "prices", "set", "gpt-4o", "--input", "2.5", "--output", "10",
    ]);
    let (key, _) = s.mint(&["--owner", "acme", "--limit", "cost=$10/month"]);
    s.json(&["owner", "set", "acme", "--limit", "requests=1000/day"]);
    s.json(&[
        "charge",
        &key,
        "--model",
        "gpt-4o",
        "--input-tokens",
        "100",
        "--request-id",
        "r1",
    ]);
    (s, key)
}

#[test]
fn wrong_passphrase_exits_3_and_changes_nothing() {
    let (s, _) = busy_vault();
    let before = s.snapshot();
    let line = fails_with(s.nanu().env("NANU_PASSPHRASE", "wrong").arg("ls"), 3);
    assert!(line.contains("wrong_passphrase"), "{line}");
    assert!(
        !line.contains("wrong\""),
        "the passphrase is not echoed: {line}"
    );
    fails_with(
        s.nanu()
            .env("NANU_PASSPHRASE", "wrong")
            .args(["mint", "--owner", "mallory"]),
        3,
    );
    assert_eq!(s.snapshot(), before);
}

#[test]
fn unknown_key_ids_exit_2_and_change_nothing() {
    let (s, _) = busy_vault();
    let before = s.snapshot();
    for args in [
        vec!["show", "key_doesnotexist"],
        vec!["revoke", "key_doesnotexist"],
        vec!["rotate", "key_doesnotexist", "--grace", "1h"],
        vec!["update", "key_doesnotexist", "--name", "x"],
        vec!["charge", "key_doesnotexist", "--input-tokens", "5"],
        vec!["owner", "show", "nobody"],
        vec!["revoke", "--owner", "nobody"],
        vec!["prices", "rm", "no-such-model"],
    ] {
        let line = fails_with(s.nanu().args(&args), 2);
        assert!(line.contains("not_found"), "{args:?}: {line}");
    }
    assert_eq!(s.snapshot(), before);
}

#[test]
fn malformed_arguments_exit_1_and_change_nothing() {
    let (s, key) = busy_vault();
    let before = s.snapshot();
    let cases: Vec<Vec<&str>> = vec![
        vec!["mint", "--owner", "acme", "--limit", "cost=10"],
        vec!["mint", "--owner", "acme", "--limit", "requests=lots/min"],
        vec![
            "mint",
            "--owner",
            "acme",
            "--limit",
            "tokens=1M/day@Mars/Olympus",
        ],
        vec!["mint", "--owner", "acme", "--expires", "next tuesday"],
        vec!["mint", "--owner", "acme", "--alias", "nameless"],
        vec!["mint", "--owner", "acme", "--meta-json", "[1, 2]"],
        vec!["mint", "--owner", "acme", "--env", "Not Lowercase"],
        vec!["mint", "--owner", "acme", "--ip", "10.0.0.0/99"],
        vec!["mint", "--owner", ""],
        vec!["update", &key, "--limit", "cost=-5usd"],
        vec!["update", &key],
        vec!["owner", "set", "acme", "--limit", "cost=$1/fortnight"],
        vec!["charge", &key, "--cost", "NaN"],
        vec!["charge", &key, "--cost", "-1"],
        vec!["charge", &key, "--input-tokens", "-5"],
        vec!["charge", &key, "--input-tokens", "99999999999999999999999"],
        vec!["rotate", &key, "--grace", "forever"],
        vec!["prices", "set", "gpt-4o", "--input", "1e400"],
        vec!["prices", "set", "gpt-4o", "--input", "0.0000001"],
        vec!["usage", "--group-by", "planet"],
        vec!["usage", "--bucket", "fortnight"],
        vec!["usage", "--tz", "Mars/Olympus", "--bucket", "hour"],
        vec!["usage", "--from", "2026-05-02", "--to", "2026-05-01"],
        vec!["verify", "x", "--ip", "not-an-ip"],
        vec!["verify", "x", "--hold-cost", "lots"],
        vec!["ls", "--limit", "0"],
        vec!["ls", "--status", "sleeping"],
        vec!["frobnicate"],
        vec!["revoke"],
        vec!["revoke", &key, "--owner", "acme"],
        vec!["replay", "trace.csv", "--speed", "warp"],
        vec!["replay", "trace.csv", "--tenants", "0"],
    ];
    for args in &cases {
        fails_with(s.nanu().args(args), 1);
    }
    assert_eq!(s.snapshot(), before);
}

#[test]
fn a_cost_limit_in_another_currency_is_refused_and_changes_nothing() {
    let (s, key) = busy_vault();
    let before = s.snapshot();
    let cases: Vec<Vec<&str>> = vec![
        vec!["mint", "--owner", "x", "--limit", "cost=10eur/month"],
        vec![
            "mint",
            "--owner",
            "x",
            "--limit",
            "cost = 1.5kEUR / day ; alert=50",
        ],
        vec!["update", &key, "--limit", "cost=10gbp"],
        vec!["owner", "set", "acme", "--limit", "cost=10eur/month"],
        vec!["owner", "default", "--limit", "cost=10eur/month"],
    ];
    for args in &cases {
        let line = fails_with(s.nanu().args(args), 1);
        assert!(line.contains("usd"), "{args:?}: {line}");
        assert!(
            line.contains("eur") || line.contains("gbp"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(s.snapshot(), before);

    // The vault's own currency, in any case, and `$` and micro-units are accepted.
    for limit in [
        "cost=10usd/month",
        "cost=10USD/month",
        "cost=$10/month",
        "cost=10u",
    ] {
        s.mint(&["--owner", "x", "--limit", limit]);
    }
}

#[test]
fn a_follow_interval_under_100ms_is_refused() {
    let s = Scratch::with_vault();
    for interval in ["0s", "99ms", "0ms"] {
        let line = fails_with(
            s.nanu()
                .args(["events", "--follow", "--interval", interval]),
            1,
        );
        assert!(line.contains("100ms"), "{interval}: {line}");
    }
}

#[test]
fn bad_durations_and_times_are_explained_in_plain_words() {
    let s = Scratch::with_vault();
    let (key, _) = s.mint(&["--owner", "acme"]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["rotate", &key, "--grace", "1d"], "write 24h"),
        (
            vec!["mint", "--owner", "a", "--limit", "requests=1/100000000d"],
            "write 24h",
        ),
        (
            vec!["verify", "x", "--at", "9999-12-31T23:59:59Z"],
            "out of range",
        ),
        (vec!["usage", "--from", "9999-12-31"], "out of range"),
        (
            vec!["verify", "x", "--at", "next tuesday"],
            "expected RFC 3339",
        ),
    ];
    for (args, expected) in &cases {
        let line = fails_with(s.nanu().args(args), 1);
        assert!(line.contains(expected), "{args:?}: {line}");
        assert!(!line.contains("jiff"), "{args:?}: {line}");
        assert!(
            !line.contains("expected RFC") || *expected == "expected RFC 3339",
            "{line}"
        );
    }
}

#[test]
fn a_conflicting_charge_exits_5_and_changes_nothing() {
    let (s, key) = busy_vault();
    let before = s.snapshot();
    let line = fails_with(
        s.nanu().args([
            "charge",
            &key,
            "--model",
            "gpt-4o",
            "--input-tokens",
            "101",
            "--request-id",
            "r1",
        ]),
        5,
    );
    assert!(line.contains("conflict") && line.contains("r1"), "{line}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn a_missing_vault_exits_2_and_is_not_created() {
    let s = Scratch::empty();
    let line = fails_with(s.nanu().arg("ls"), 2);
    assert!(line.contains("no vault at nanu.vault"), "{line}");
    fails_with(
        s.nanu()
            .args(["--vault", "elsewhere.vault", "mint", "--owner", "a"]),
        2,
    );
    assert!(!s.vault().exists());
    assert!(!s.path("elsewhere.vault").exists());
}

#[test]
fn init_refuses_an_existing_file() {
    let (s, _) = busy_vault();
    let before = bytes(&s.vault());
    let line = fails_with(s.nanu().arg("init"), 1);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(bytes(&s.vault()), before);
}

#[test]
fn random_bytes_are_not_a_vault_and_stay_as_they_were() {
    let s = Scratch::empty();
    // Deterministic noise (no zero page, so it cannot look like an empty database).
    let noise: Vec<u8> = (0u32..65_536)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    std::fs::write(s.vault(), &noise).unwrap();
    for args in [
        vec!["ls"],
        vec!["mint", "--owner", "a"],
        vec!["audit", "--verify"],
    ] {
        let line = fails_with(s.nanu().args(&args), 3);
        assert!(line.contains("not_a_vault"), "{line}");
    }
    assert_eq!(bytes(&s.vault()), noise);

    std::fs::write(s.vault(), b"").unwrap();
    fails_with(s.nanu().arg("ls"), 3);
    assert_eq!(bytes(&s.vault()), b"");
}

#[test]
fn a_damaged_vault_is_reported_not_panicked() {
    let (s, _) = busy_vault();
    // Overwrite the first table page of the file: redb finds a page it cannot read.
    let mut damaged = bytes(&s.vault());
    for byte in &mut damaged[8192..8200] {
        *byte = 0xde;
    }
    std::fs::write(s.vault(), &damaged).unwrap();
    let out = s.nanu().args(["--json", "ls"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Whatever the damage hits, the answer is a clean error (or, for a page no command
    // reads, a clean success), never a panic message or a backtrace.
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    if !out.status.success() {
        assert!(
            matches!(out.status.code(), Some(3 | 4)),
            "{:?} {stderr}",
            out.status
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("nanu: error: "), "{stderr}");
    }
}

#[test]
fn no_passphrase_without_a_terminal_is_a_clear_error() {
    let s = Scratch::with_vault();
    let line = fails_with(s.nanu().env_remove("NANU_PASSPHRASE").arg("ls"), 1);
    assert!(
        line.contains("NANU_PASSPHRASE") && line.contains("--key-file"),
        "{line}"
    );
    fails_with(s.nanu().env_remove("NANU_PASSPHRASE").arg("init"), 1);
}

#[test]
fn key_files_must_hold_64_hex_digits() {
    let s = Scratch::with_vault();
    let before = s.snapshot();
    std::fs::write(s.path("bad.key"), "correct horse battery staple\n").unwrap();
    let line = fails_with(s.nanu().args(["--key-file", "bad.key", "ls"]), 1);
    assert!(line.contains("64 hex digits"), "{line}");
    assert!(
        !line.contains("correct horse"),
        "the file's content is not echoed: {line}"
    );
    fails_with(s.nanu().args(["--key-file", "missing.key", "ls"]), 2);
    // A well-formed key that is not the vault's is a wrong key.
    std::fs::write(s.path("other.key"), "00".repeat(32)).unwrap();
    fails_with(s.nanu().args(["--key-file", "other.key", "ls"]), 3);
    assert_eq!(s.snapshot(), before);
}

#[test]
fn input_files_that_do_not_exist_exit_2() {
    let s = Scratch::with_vault();
    let before = s.snapshot();
    fails_with(s.nanu().args(["prices", "import", "nope.json"]), 2);
    fails_with(s.nanu().args(["replay", "nope.csv"]), 2);
    std::fs::write(s.path("bad.json"), "[1, 2, 3]").unwrap();
    fails_with(s.nanu().args(["prices", "import", "bad.json"]), 1);
    assert_eq!(s.snapshot(), before);
}

#[test]
fn help_and_version_exit_0_and_list_the_exit_codes() {
    let s = Scratch::empty();
    let out = s.nanu().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0   ok",
        "2   not found",
        "3   wrong passphrase",
        "10  verify",
    ] {
        assert!(help.contains(line), "{line} missing from --help");
    }
    s.nanu().arg("--version").assert().code(0);
}

/// The built `nanu` as a plain process, for tests that choose its stdout and stderr.
fn process(s: &Scratch, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("nanu"));
    cmd.current_dir(s.dir.path())
        .env("NANU_PASSPHRASE", common::PASSPHRASE)
        .env("NANU_KDF", "insecure")
        .env_remove("NANU_VAULT")
        .env_remove("NANU_LOG")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// `/dev/full`, where every write fails with "no space left on device".
#[cfg(target_os = "linux")]
fn full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_or_stderr_exits_4_and_never_aborts() {
    let s = Scratch::with_vault();
    s.mint(&["--owner", "acme"]);

    // stderr full: the output itself is fine, the note after it is dropped.
    let out = process(&s, &["mint", "--owner", "acme"])
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("secret"));

    // Both full: the documented exit code, not SIGABRT.
    for args in [
        vec!["ls"],
        vec!["mint", "--owner", "acme"],
        vec!["verify", "x"],
    ] {
        let out = process(&s, &args)
            .stdout(full())
            .stderr(full())
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(code == Some(4) || code == Some(10), "{args:?}: {out:?}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_secret_that_cannot_be_printed_names_its_key_on_stderr() {
    let s = Scratch::with_vault();
    let out = process(&s, &["mint", "--owner", "acme"])
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot write the output"), "{stderr}");
    assert!(!stderr.contains("nanu_"), "a secret on stderr: {stderr}");
    let keys = s.json(&["ls"]);
    let key_id = keys["keys"][0]["key_id"].as_str().unwrap();
    assert!(stderr.contains(key_id), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_ends_ls_quietly_but_not_mint() {
    let s = Scratch::with_vault();
    s.mint(&["--owner", "acme"]);
    let run = |args: &[&str]| {
        let mut child = process(&s, args).spawn().unwrap();
        // Close the read end before nanu writes (opening the vault takes it far longer).
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    };

    let out = run(&["ls"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    let out = run(&["mint", "--owner", "acme"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("may not have been shown"), "{stderr}");
}

#[test]
fn a_vault_open_shared_refuses_an_exclusive_command_and_serves_a_shared_one() {
    use std::io::BufRead;

    let s = Scratch::with_vault();
    let mut server = process(&s, &["serve", "--listen", "127.0.0.1:0"])
        .spawn()
        .expect("start nanu serve");
    let stdout = server.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .expect("the listen line");
    assert!(first.contains("(shared)"), "{first}");

    let message = fails_with(
        s.nanu()
            .args(["mint", "--owner", "acme", "--limit", "requests=2"]),
        3,
    );
    assert!(
        message.contains("locked") && message.contains("shared"),
        "{message}"
    );
    let minted = s.json(&[
        "--concurrency",
        "shared",
        "mint",
        "--owner",
        "acme",
        "--limit",
        "requests=2",
    ]);
    let secret = minted["secret"].as_str().expect("a secret").to_owned();
    let codes: Vec<i32> = (0..3)
        .map(|_| {
            s.nanu()
                .args(["--concurrency", "shared", "verify", &secret])
                .output()
                .expect("run verify")
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(
        codes,
        [0, 0, 10],
        "two requests allowed across processes, then denied"
    );
    server.kill().expect("stop the server");
    server.wait().expect("reap the server");
}
