//! Crash safety with real processes: a child process works on a vault and reports each call
//! that returned on its standard output; the test kills it with SIGKILL, reopens the vault and
//! checks that what each durability level promises survived, and that nothing counts twice.
//!
//! The child is this test binary itself, started with `NANU_CRASH_CHILD` naming what to do;
//! `crash_child_helper` is the entry point and does nothing in a normal test run.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::{Duration, Instant};

use nanu::{
    Code, Context, Durability, KdfParams, KeySpec, Limit, Options, Unit, Usage, UsageQuery, Vault,
    VerifyRequest,
};

const CHILD: &str = "NANU_CRASH_CHILD";
const SAY: &str = "nanu-child:";
const TOKENS_PER_CHARGE: u64 = 15;
const COST_PER_CHARGE: u64 = 7;

fn options(durability: Durability, flush_ms: u64) -> Options {
    let mut options = Options::passphrase("crash")
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .durability(durability);
    options.flush_interval = Duration::from_millis(flush_ms);
    options
}

fn spec(limits: &[&str]) -> KeySpec {
    let mut spec = KeySpec::new("acme");
    spec.limits = limits.iter().map(|l| l.parse::<Limit>().unwrap()).collect();
    spec
}

/// Creates a vault holding one key with token, cost and request limits; returns its id and
/// secret.
fn setup(path: &Path) -> (String, String) {
    let vault = Vault::create(path, &options(Durability::Durable, 100)).unwrap();
    let key = vault
        .mint(
            &spec(&["tokens=1B", "cost=$1000", "requests=1M"]),
            &Context::default(),
        )
        .unwrap();
    vault.close().unwrap();
    (key.key_id, key.secret.expose().to_owned())
}

// ---- the child side ---------------------------------------------------------------------

fn say(line: &str) {
    println!("{SAY} {line}");
}

fn park() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn charge_usage(request_id: String) -> Usage {
    Usage {
        input_tokens: 10,
        output_tokens: TOKENS_PER_CHARGE - 10,
        cost: Some(COST_PER_CHARGE),
        request_id: Some(request_id),
        ..Usage::default()
    }
}

/// The child's entry point: runs only in a child started by `Child::spawn`.
#[test]
fn crash_child_helper() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let path = PathBuf::from(env("NANU_CRASH_VAULT"));
    let durability: Durability = env("NANU_CRASH_DURABILITY").parse().unwrap();
    let flush_ms: u64 = env("NANU_CRASH_FLUSH_MS").parse().unwrap();
    let vault = Arc::new(Vault::open(&path, &options(durability, flush_ms)).unwrap());
    match mode.as_str() {
        "mint" => {
            let key = vault
                .mint(&spec(&["requests=10"]), &Context::default())
                .unwrap();
            say(&format!("minted {} {}", key.key_id, key.secret.expose()));
        }
        "rotate_revoke" => {
            let key_id = env("NANU_CRASH_KEY");
            let rotated = vault
                .rotate(&key_id, Duration::ZERO, &Context::default())
                .unwrap();
            say(&format!("rotated {}", rotated.secret.expose()));
            let other = vault.mint(&spec(&[]), &Context::default()).unwrap();
            say(&format!(
                "minted {} {}",
                other.key_id,
                other.secret.expose()
            ));
            vault.revoke(&other.key_id, &Context::default()).unwrap();
            say(&format!("revoked {}", other.key_id));
        }
        "charge" => {
            // Charges from several threads until killed, reporting each charge that returned.
            let key_id = Arc::new(env("NANU_CRASH_KEY"));
            let threads: usize = env("NANU_CRASH_THREADS").parse().unwrap();
            let pause = Duration::from_millis(env("NANU_CRASH_PAUSE_MS").parse().unwrap());
            for t in 0..threads {
                let (vault, key_id) = (vault.clone(), key_id.clone());
                thread::spawn(move || {
                    for n in 0.. {
                        let id = format!("t{t}-{n}");
                        vault.charge(&key_id, &charge_usage(id.clone())).unwrap();
                        say(&format!("charged {id}"));
                        thread::sleep(pause);
                    }
                });
            }
        }
        "charge_then_stop" => {
            let key_id = env("NANU_CRASH_KEY");
            let count: usize = env("NANU_CRASH_COUNT").parse().unwrap();
            for n in 0..count {
                let id = format!("c-{n}");
                vault.charge(&key_id, &charge_usage(id.clone())).unwrap();
                say(&format!("charged {id}"));
            }
            say("done");
        }
        "verify" => {
            // Verifies `old` times, says so, then keeps verifying until killed, reporting each.
            let secret = env("NANU_CRASH_SECRET");
            let old: u64 = env("NANU_CRASH_COUNT").parse().unwrap();
            for _ in 0..old {
                assert!(
                    vault
                        .verify(&secret, &VerifyRequest::default())
                        .unwrap()
                        .allowed
                );
            }
            say(&format!("old {old}"));
            for n in old + 1.. {
                assert!(
                    vault
                        .verify(&secret, &VerifyRequest::default())
                        .unwrap()
                        .allowed
                );
                say(&format!("verified {n}"));
                thread::sleep(Duration::from_millis(1));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
    park();
}

// ---- the parent side --------------------------------------------------------------------

/// A child process and the lines it said, each with the moment the parent read it.
struct Child {
    process: std::process::Child,
    lines: Receiver<(Instant, String)>,
}

impl Child {
    fn spawn(mode: &str, path: &Path, durability: Durability, vars: &[(&str, String)]) -> Child {
        let flush = vars
            .iter()
            .find(|(k, _)| *k == "NANU_CRASH_FLUSH_MS")
            .map_or("100".to_owned(), |(_, v)| v.clone());
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "crash_child_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, mode)
            .env("NANU_CRASH_VAULT", path)
            .env("NANU_CRASH_DURABILITY", durability.as_str())
            .env("NANU_CRASH_FLUSH_MS", flush)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut process = command.spawn().unwrap();
        let stdout = process.stdout.take().unwrap();
        let (send, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness writes `test crash_child_helper ... ` before the first line
                // without ending its own line.
                if let Some(at) = line.find(SAY) {
                    let said = line[at + SAY.len()..].trim().to_owned();
                    if send.send((Instant::now(), said)).is_err() {
                        break;
                    }
                }
            }
        });
        Child { process, lines }
    }

    /// The next line the child said; fails the test if the child says nothing for a minute.
    fn next(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok((_, line)) => line,
            Err(err) => panic!("the child said nothing more ({err})"),
        }
    }

    /// Kills the child with SIGKILL; returns the moment of the kill and every line it said
    /// that was not read yet (all of them were written before it died).
    fn kill(mut self) -> (Instant, Vec<(Instant, String)>) {
        self.process.kill().unwrap();
        let killed = Instant::now();
        let status = self.process.wait().unwrap();
        assert!(!status.success(), "the child exited on its own: {status}");
        (killed, self.lines.iter().collect())
    }
}

impl Drop for Child {
    /// A test that fails before its kill leaves no child behind.
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn charged_id(line: &str) -> String {
    line.strip_prefix("charged ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned()
}

/// Reopens the vault and checks that every charge in `must` is in the usage log, that no
/// request id is there twice, that at most `in_flight` charges that did not return are there,
/// and that the counters agree with the log exactly. Does it twice (the first open may replay
/// a journal; the second must not count anything again). Returns how many charges survived.
fn check_charges(
    path: &Path,
    key_id: &str,
    must: &[String],
    returned: usize,
    in_flight: usize,
) -> u64 {
    let mut survived = None;
    for durability in [Durability::Durable, Durability::Process] {
        let vault = Vault::open(path, &options(durability, 100)).unwrap();
        let records = vault
            .usage_records(&UsageQuery::default(), usize::MAX)
            .unwrap();
        let ids: Vec<String> = records
            .iter()
            .filter(|r| r.outcome == "charged")
            .map(|r| r.request_id.clone().unwrap())
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "a request id is in the log twice");
        for id in must {
            assert!(unique.contains(id), "charge {id} returned but was lost");
        }
        let n = ids.len() as u64;
        assert!(
            ids.len() <= returned + in_flight,
            "{n} charges in the log, {returned} returned"
        );
        let remaining = vault.remaining(key_id, None).unwrap();
        let used = |unit| {
            remaining
                .limits
                .iter()
                .find(|s| s.limit.unit == unit)
                .unwrap()
                .used
        };
        assert_eq!(used(Unit::Tokens), n * TOKENS_PER_CHARGE, "tokens disagree");
        assert_eq!(used(Unit::Cost), n * COST_PER_CHARGE, "cost disagrees");
        let rows = vault.usage(&UsageQuery::default()).unwrap();
        assert_eq!(rows.iter().map(|r| r.requests).sum::<u64>(), n);
        // A charge that survived is remembered: charging it again is a replay.
        if let Some(id) = must.first() {
            let again = vault.charge(key_id, &charge_usage(id.clone())).unwrap();
            assert!(again.replayed);
        }
        vault.close().unwrap();
        assert!(
            survived.is_none_or(|s| s == n),
            "the second open counted again"
        );
        survived = Some(n);
    }
    survived.unwrap()
}

fn journal_segments(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let file = e.file_name().into_string().unwrap();
            let n = file
                .strip_prefix(&format!("{name}.journal."))?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn a_key_minted_just_before_sigkill_is_there_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mint.vault");
    setup(&path);

    let mut child = Child::spawn("mint", &path, Durability::Durable, &[]);
    let line = child.next();
    let (_, rest) = child.kill();
    assert!(rest.is_empty());

    let mut words = line.strip_prefix("minted ").unwrap().split(' ');
    let (key_id, secret) = (words.next().unwrap(), words.next().unwrap());
    let vault = Vault::open(&path, &options(Durability::Durable, 100)).unwrap();
    let verdict = vault.verify(secret, &VerifyRequest::default()).unwrap();
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.key_id.as_deref(), Some(key_id));
    assert_eq!(verdict.remaining.unwrap().requests, Some(9));
    assert!(vault.verify_audit().unwrap().ok);
}

#[test]
fn a_rotation_and_a_revoke_just_before_sigkill_hold_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.vault");
    let (key_id, old_secret) = setup(&path);

    let vars = [("NANU_CRASH_KEY", key_id.clone())];
    let mut child = Child::spawn("rotate_revoke", &path, Durability::Durable, &vars);
    let rotated = child.next();
    let minted = child.next();
    let revoked = child.next();
    child.kill();

    let new_secret = rotated.strip_prefix("rotated ").unwrap();
    let other_secret = minted.split(' ').nth(2).unwrap();
    assert!(revoked.starts_with("revoked "));
    let vault = Vault::open(&path, &options(Durability::Durable, 100)).unwrap();
    let request = VerifyRequest::default();
    assert_eq!(
        vault.verify(&old_secret, &request).unwrap().code,
        Code::NotFound
    );
    assert!(vault.verify(new_secret, &request).unwrap().allowed);
    assert_eq!(
        vault.verify(other_secret, &request).unwrap().code,
        Code::Revoked
    );
    assert!(vault.verify_audit().unwrap().ok);
}

/// Four threads charge until SIGKILL at `durability`; every charge that returned survives,
/// none counts twice.
fn charges_survive_sigkill(durability: Durability, flush_ms: u64, pause_ms: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("charges.vault");
    let (key_id, _) = setup(&path);
    let threads = 4;

    let vars = [
        ("NANU_CRASH_KEY", key_id.clone()),
        ("NANU_CRASH_THREADS", threads.to_string()),
        ("NANU_CRASH_PAUSE_MS", pause_ms.to_string()),
        ("NANU_CRASH_FLUSH_MS", flush_ms.to_string()),
    ];
    let mut child = Child::spawn("charge", &path, durability, &vars);
    let mut returned: Vec<String> = (0..300).map(|_| charged_id(&child.next())).collect();
    let (_, rest) = child.kill();
    returned.extend(rest.iter().map(|(_, line)| charged_id(line)));

    let survived = check_charges(&path, &key_id, &returned, returned.len(), threads);
    assert!(survived >= 300);
}

#[test]
fn durable_charges_that_returned_survive_sigkill_exactly_once() {
    charges_survive_sigkill(Durability::Durable, 100, 0);
}

#[test]
fn process_charges_in_the_journal_only_survive_sigkill_exactly_once() {
    // A flush interval far longer than the test: the charges are only in the journal.
    charges_survive_sigkill(Durability::Process, 600_000, 0);
}

#[test]
fn process_charges_across_commits_and_journal_segments_survive_sigkill_exactly_once() {
    // Commits every 5 ms while charges go on: the kill lands between segment rotations,
    // commits and deletions of covered segments.
    charges_survive_sigkill(Durability::Process, 5, 1);
}

#[test]
fn relaxed_charges_older_than_the_flush_interval_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relaxed.vault");
    let (key_id, _) = setup(&path);
    let flush = Duration::from_millis(50);

    let vars = [
        ("NANU_CRASH_KEY", key_id.clone()),
        ("NANU_CRASH_THREADS", "2".to_owned()),
        ("NANU_CRASH_PAUSE_MS", "2".to_owned()),
        ("NANU_CRASH_FLUSH_MS", flush.as_millis().to_string()),
    ];
    let mut child = Child::spawn("charge", &path, Durability::Relaxed, &vars);
    let first = charged_id(&child.next());
    thread::sleep(Duration::from_millis(1500));
    let (killed, rest) = child.kill();

    // A charge is committed within one flush interval plus the commits in progress; a second
    // is far more than that, also on a loaded machine.
    let margin = Duration::from_secs(1);
    let mut returned = vec![first.clone()];
    let mut old = vec![first];
    for (at, line) in &rest {
        let id = charged_id(line);
        if killed.duration_since(*at) > margin {
            old.push(id.clone());
        }
        returned.push(id);
    }
    assert!(
        old.len() > 10,
        "the child charged too little to test: {}",
        old.len()
    );
    check_charges(&path, &key_id, &old, returned.len(), 2);
}

#[test]
fn verify_counts_older_than_the_flush_interval_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verify.vault");
    let (key_id, secret) = setup(&path);

    let vars = [
        ("NANU_CRASH_SECRET", secret.clone()),
        ("NANU_CRASH_COUNT", "37".to_owned()),
        ("NANU_CRASH_FLUSH_MS", "50".to_owned()),
    ];
    let mut child = Child::spawn("verify", &path, Durability::Durable, &vars);
    assert_eq!(child.next(), "old 37");
    thread::sleep(Duration::from_millis(1500));
    let (killed, rest) = child.kill();

    let margin = Duration::from_secs(1);
    let said = 37 + rest.len() as u64;
    let old = 37
        + rest
            .iter()
            .filter(|(at, _)| killed.duration_since(*at) > margin)
            .count() as u64;
    assert!(old > 37, "the child verified too little to test");
    let vault = Vault::open(&path, &options(Durability::Durable, 100)).unwrap();
    let remaining = vault.remaining(&key_id, None).unwrap();
    let used = remaining
        .limits
        .iter()
        .find(|s| s.limit.unit == Unit::Requests)
        .unwrap()
        .used;
    // Counts older than the flush interval are there; younger ones may be lost; a verify that
    // did not return may have counted (one in flight).
    assert!(
        used >= old,
        "{used} requests counted, {old} verified before the last second"
    );
    assert!(used <= said + 1, "{used} requests counted, {said} verified");
}

#[test]
fn a_torn_journal_tail_is_tolerated_and_the_intact_entries_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.vault");
    let (key_id, _) = setup(&path);

    let vars = [
        ("NANU_CRASH_KEY", key_id.clone()),
        ("NANU_CRASH_COUNT", "50".to_owned()),
        ("NANU_CRASH_FLUSH_MS", "600000".to_owned()),
    ];
    let mut child = Child::spawn("charge_then_stop", &path, Durability::Process, &vars);
    let returned: Vec<String> = (0..50).map(|_| charged_id(&child.next())).collect();
    assert_eq!(child.next(), "done");
    child.kill();

    // Nothing was committed since the open: the 50 charges are the frames of one segment.
    // Frames are `[length u32 LE][seq u64 LE][sealed entry of that length]`.
    let segments: Vec<PathBuf> = journal_segments(&path)
        .into_iter()
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let bytes = fs::read(&segments[0]).unwrap();
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        frames.push(at);
        at += 12 + len;
    }
    assert_eq!(at, bytes.len());
    assert_eq!(frames.len(), 50);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .unwrap();
    file.set_len(bytes.len() as u64 - 5).unwrap();
    drop(file);

    let survived = check_charges(&path, &key_id, &returned[..49], 49, 0);
    assert_eq!(survived, 49);
    let vault = Vault::open(&path, &options(Durability::Durable, 100)).unwrap();
    let records = vault.usage_records(&UsageQuery::default(), 100).unwrap();
    let ids: Vec<_> = records
        .iter()
        .filter_map(|r| r.request_id.as_deref())
        .collect();
    // check_charges charged c-0 again (a replay, not recorded); c-49 was torn.
    assert!(!ids.contains(&"c-49"));
    // The torn segment was consumed: a charge with the lost id counts now, once.
    let again = vault.charge(&key_id, &charge_usage("c-49".into())).unwrap();
    assert!(!again.replayed);
    vault.close().unwrap();
    assert!(journal_segments(&path).is_empty());
}

/// Two kills in a row: the second child replays the journal the first one left, charges on
/// with the same request ids (replays) and new ones, and is killed too. Every charge that
/// returned is there exactly once.
#[test]
fn a_second_sigkill_after_a_replay_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.vault");
    let (key_id, _) = setup(&path);

    let mut returned = Vec::new();
    for _ in 0..2 {
        let vars = [
            ("NANU_CRASH_KEY", key_id.clone()),
            ("NANU_CRASH_THREADS", "2".to_owned()),
            ("NANU_CRASH_PAUSE_MS", "0".to_owned()),
            ("NANU_CRASH_FLUSH_MS", "600000".to_owned()),
        ];
        let mut child = Child::spawn("charge", &path, Durability::Process, &vars);
        // Nothing is flushed: what the first child charged is only in its journal.
        for _ in 0..20 {
            returned.push(charged_id(&child.next()));
        }
        let (_, rest) = child.kill();
        returned.extend(rest.iter().map(|(_, line)| charged_id(line)));
    }
    // Both rounds used the ids t0-0.., so the second round's charges are replays of the first
    // round's when their ids meet: count distinct ids.
    let distinct: HashSet<&String> = returned.iter().collect();
    let must: Vec<String> = distinct.iter().map(|s| (*s).clone()).collect();
    check_charges(&path, &key_id, &must, must.len(), 4);
}
