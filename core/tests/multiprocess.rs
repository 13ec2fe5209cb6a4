//! Several processes on one vault file in the `shared` mode, with real processes: limits hold
//! exactly across them, an administrative change in one is seen by the next verify in every
//! other, the slices of a process killed with SIGKILL come back after the lease timeout and not
//! before, no charge that returned is lost, and the two modes refuse each other.
//!
//! Every process but the test's own is this test binary started again with `NANU_MP_CHILD`
//! set: `multiprocess_child` then opens the vault and serves as an agent, running the commands
//! the test writes to its standard input one line at a time and answering each with one line
//! on its standard output. In a normal test run the variable is absent and `multiprocess_child`
//! returns at once, asserting nothing: it is an entry point, not a test.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nanu::{
    Code, Concurrency, Context, Durability, ErrorCode, HoldAmounts, KeyPatch, Options, Unit, Usage,
    UsageQuery, Vault, VerifyRequest,
};

const CHILD: &str = "NANU_MP_CHILD";
const VAULT: &str = "NANU_MP_VAULT";
const MODE: &str = "NANU_MP_MODE";
const LEASE_MS: &str = "NANU_MP_LEASE_MS";
/// Marks the agent's answers: the test harness writes its own text to the same output.
const SAY: &str = "nanu-agent:";

/// How many denials in a row end a thread's run against an exhausted limit. Far more than the
/// one a thread sees when its process's slice runs dry while another process still holds one.
const DENIALS: u64 = 50;
/// The lease timeout of most tests: short, so that a test waiting for it stays short.
const LEASE: Duration = Duration::from_secs(1);

/// Usage of one charge in the charge tests.
const TOKENS_IN: u64 = 10;
const TOKENS_OUT: u64 = 5;
const COST: u64 = 7;

fn options(concurrency: Concurrency, lease: Duration) -> Options {
    common::options()
        .concurrency(concurrency)
        .lease_timeout(lease)
}

fn shared(lease: Duration) -> Options {
    options(Concurrency::Shared, lease)
}

/// Creates a shared vault holding one key of owner `acme` with `limits` and `scopes`; returns
/// the key id and secret. The vault is closed again: the agents open it.
fn setup(path: &Path, limits: &[&str], scopes: &[&str]) -> (String, String) {
    let vault = Vault::create(path, &shared(LEASE)).expect("create the vault");
    let mut spec = common::spec("acme", limits);
    spec.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    let key = vault.mint(&spec, &Context::default()).expect("mint");
    vault.close().expect("close");
    (key.key_id, key.secret.expose().to_owned())
}

// ---- the agent: a child process --------------------------------------------------------

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn say(line: &str) {
    println!("{SAY} {line}");
}

/// A verify request with `scope` and a hold of `hold_cost` micro-units.
fn request<'a>(scope: Option<&'a str>, hold_cost: u64) -> VerifyRequest<'a> {
    VerifyRequest {
        scope,
        hold: HoldAmounts {
            cost: hold_cost,
            ..HoldAmounts::default()
        },
        ..VerifyRequest::default()
    }
}

/// A run of verifies until a limit is exhausted: `threads` threads at once, each until it is
/// denied `denials` times in a row. Each verify asks for a hold of `hold` micro-units, and
/// each admitted one is charged `charge` micro-units (settling the hold) when that is not
/// zero. Every denial must be for an exhausted limit. The run also ends once the process has
/// admitted more than `most` (the whole limit): a limit that does not hold could otherwise
/// keep admitting for ever, and the test would see a hang instead of the overshoot.
#[derive(Clone, Copy, Debug)]
struct Drain {
    threads: u64,
    denials: u64,
    hold: u64,
    charge: u64,
    most: u64,
}

impl Drain {
    /// `threads` threads against a limit that admits `most` requests in all.
    fn new(threads: u64, most: u64) -> Drain {
        Drain {
            threads,
            denials: DENIALS,
            hold: 0,
            charge: 0,
            most,
        }
    }

    fn command(&self, secret: &str) -> String {
        let Drain {
            threads,
            denials,
            hold,
            charge,
            most,
        } = self;
        format!("drain {secret} {threads} {denials} {hold} {charge} {most}")
    }

    /// Runs in the agent; returns (admitted, attempts).
    fn run(self, vault: &Arc<Vault>, secret: &str) -> (u64, u64) {
        let admitted = Arc::new(AtomicU64::new(0));
        let attempts = Arc::new(AtomicU64::new(0));
        let workers: Vec<JoinHandle<()>> = (0..self.threads)
            .map(|_| {
                let (vault, secret) = (vault.clone(), secret.to_owned());
                let (admitted, attempts) = (admitted.clone(), attempts.clone());
                thread::spawn(move || self.thread(&vault, &secret, &admitted, &attempts))
            })
            .collect();
        for worker in workers {
            worker.join().expect("a drain thread failed");
        }
        (
            admitted.load(Ordering::SeqCst),
            attempts.load(Ordering::SeqCst),
        )
    }

    fn thread(&self, vault: &Vault, secret: &str, admitted: &AtomicU64, attempts: &AtomicU64) {
        let mut denied_in_a_row = 0;
        while denied_in_a_row < self.denials && admitted.load(Ordering::Relaxed) <= self.most {
            let verdict = vault
                .verify(secret, &request(None, self.hold))
                .expect("verify");
            attempts.fetch_add(1, Ordering::Relaxed);
            if !verdict.allowed {
                assert!(
                    matches!(verdict.code, Code::UsageExceeded | Code::BudgetExceeded),
                    "denied for another reason: {verdict:?}"
                );
                denied_in_a_row += 1;
                continue;
            }
            denied_in_a_row = 0;
            admitted.fetch_add(1, Ordering::Relaxed);
            if self.charge > 0 {
                let key_id = verdict.key_id.as_deref().expect("key id");
                let usage = Usage {
                    cost: Some(self.charge),
                    hold_id: verdict.hold_id,
                    ..Usage::default()
                };
                vault.charge(key_id, &usage).expect("charge");
            }
        }
    }
}

/// Charges from `threads` threads until `stop` is set, each charge after a verify with a hold
/// that the charge settles. The request id of each charge that returned is appended to `log`
/// at once, one write per line, so that a SIGKILL loses no line of a charge that returned.
fn charge_loop(
    vault: Arc<Vault>,
    name: String,
    secret: String,
    threads: u64,
    log: PathBuf,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<u64>> {
    let log = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the charge log"),
    ));
    (0..threads)
        .map(|t| {
            let (vault, secret, name) = (vault.clone(), secret.clone(), name.clone());
            let (log, stop) = (log.clone(), stop.clone());
            thread::spawn(move || {
                let mut charged = 0;
                while !stop.load(Ordering::SeqCst) {
                    let verdict = vault.verify(&secret, &request(None, COST)).expect("verify");
                    assert!(verdict.allowed, "{verdict:?}");
                    let id = format!("{name}-t{t}-{charged}");
                    let usage = Usage {
                        input_tokens: TOKENS_IN,
                        output_tokens: TOKENS_OUT,
                        cost: Some(COST),
                        request_id: Some(id.clone()),
                        hold_id: verdict.hold_id,
                        ..Usage::default()
                    };
                    let key_id = verdict.key_id.as_deref().expect("key id");
                    vault.charge(key_id, &usage).expect("charge");
                    let mut file = log.lock().expect("log lock");
                    file.write_all(format!("{id}\n").as_bytes())
                        .expect("write the charge log");
                    charged += 1;
                }
                charged
            })
        })
        .collect()
}

/// The agent's entry point; runs only in a child started by `Agent::spawn` (see the module
/// documentation).
#[test]
fn multiprocess_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let path = PathBuf::from(env(VAULT));
    let concurrency: Concurrency = env(MODE).parse().expect("mode");
    let lease = Duration::from_millis(env(LEASE_MS).parse().expect("lease"));
    let name = env(CHILD);
    let vault = Arc::new(Vault::open(&path, &options(concurrency, lease)).expect("open"));
    say("ready");

    let stop = Arc::new(AtomicBool::new(false));
    let mut loops: Vec<JoinHandle<u64>> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read a command");
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| -> u64 { words[i].parse().expect("a number") };
        let scope = |i: usize| words.get(i).copied().filter(|s| *s != "-");
        match words[..] {
            // drain SECRET THREADS DENIALS HOLD CHARGE MOST (see `Drain`)
            ["drain", secret, _, _, _, _, _] => {
                let drain = Drain {
                    threads: number(2),
                    denials: number(3),
                    hold: number(4),
                    charge: number(5),
                    most: number(6),
                };
                let (admitted, attempts) = drain.run(&vault, secret);
                say(&format!("drained {admitted} {attempts}"));
            }
            // verify SECRET SCOPE|- COUNT: the codes of COUNT verifies, comma-separated.
            ["verify", secret, _, _] => {
                let codes: Vec<&str> = (0..number(3))
                    .map(|_| {
                        let verdict = vault.verify(secret, &request(scope(2), 0)).expect("verify");
                        verdict.code.as_str()
                    })
                    .collect();
                say(&format!("codes {}", codes.join(",")));
            }
            // holds SECRET COUNT: the hold ids of COUNT verifies with a hold of 1.
            ["holds", secret, _] => {
                let ids: Vec<String> = (0..number(2))
                    .map(|_| {
                        let verdict = vault.verify(secret, &request(None, 1)).expect("verify");
                        assert!(verdict.allowed, "{verdict:?}");
                        verdict.hold_id.expect("a hold id").to_string()
                    })
                    .collect();
                say(&format!("holds {}", ids.join(",")));
            }
            // poll SECRET MS: verifies every 20 ms until one is admitted or MS passed.
            ["poll", secret, _] => {
                let deadline = Instant::now() + Duration::from_millis(number(2));
                let answer = loop {
                    if vault
                        .verify(secret, &request(None, 0))
                        .expect("verify")
                        .allowed
                    {
                        break "admitted";
                    }
                    if Instant::now() > deadline {
                        break "timeout";
                    }
                    thread::sleep(Duration::from_millis(20));
                };
                say(answer);
            }
            ["mint", owner] => {
                let minted = vault
                    .mint(&common::spec(owner, &[]), &Context::default())
                    .expect("mint");
                say(&format!(
                    "minted {} {}",
                    minted.key_id,
                    minted.secret.expose()
                ));
            }
            ["revoke", key_id] => {
                vault.revoke(key_id, &Context::default()).expect("revoke");
                say("revoked");
            }
            ["rotate", key_id] => {
                let rotated = vault
                    .rotate(key_id, Duration::ZERO, &Context::default())
                    .expect("rotate");
                say(&format!("rotated {}", rotated.secret.expose()));
            }
            // scopes KEY_ID A,B,...: replaces the key's scopes.
            ["scopes", key_id, scopes] => {
                let patch = KeyPatch {
                    scopes: Some(scopes.split(',').map(str::to_owned).collect()),
                    ..KeyPatch::default()
                };
                vault
                    .update(key_id, &patch, &Context::default())
                    .expect("update");
                say("updated");
            }
            // charge SECRET THREADS LOG: charges in the background until `stop`.
            ["charge", secret, _, log] => {
                loops = charge_loop(
                    vault.clone(),
                    name.clone(),
                    secret.to_owned(),
                    number(2),
                    PathBuf::from(log),
                    stop.clone(),
                );
                say("charging");
            }
            ["stop"] => {
                stop.store(true, Ordering::SeqCst);
                let charged: u64 = loops
                    .drain(..)
                    .map(|l| l.join().expect("a charge thread failed"))
                    .sum();
                say(&format!("stopped {charged}"));
            }
            ["flush"] => {
                vault.flush().expect("flush");
                say("flushed");
            }
            ["close"] => {
                vault.close().expect("close");
                say("closed");
            }
            _ => panic!("unknown command {line:?}"),
        }
    }
    // The test closed our standard input: done.
    vault.close().expect("close");
}

// ---- the test's side -------------------------------------------------------------------

/// A child process serving as an agent on the vault, and the answers it gave.
struct Agent {
    name: String,
    process: std::process::Child,
    answers: Receiver<String>,
}

impl Agent {
    /// Starts an agent that opens `path` in `concurrency` mode, and waits until it has.
    fn spawn(name: &str, path: &Path, concurrency: Concurrency, lease: Duration) -> Agent {
        let mut agent = Agent::start(name, path, concurrency, lease);
        agent.expect("ready");
        agent
    }

    fn start(name: &str, path: &Path, concurrency: Concurrency, lease: Duration) -> Agent {
        let mut process = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "multiprocess_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, name)
            .env(VAULT, path)
            .env(MODE, concurrency.as_str())
            .env(LEASE_MS, lease.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start an agent");
        let stdout = process.stdout.take().expect("stdout");
        let (send, answers) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness writes `test multiprocess_child ... ` before the first answer
                // without ending its own line.
                if let Some(at) = line.find(SAY) {
                    let answer = line[at + SAY.len()..].trim().to_owned();
                    if send.send(answer).is_err() {
                        break;
                    }
                }
            }
        });
        Agent {
            name: name.to_owned(),
            process,
            answers,
        }
    }

    /// Writes one command line.
    fn send(&mut self, command: &str) {
        let stdin = self.process.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("agent {} is gone ({e})", self.name));
    }

    /// The next answer; fails the test if none comes within five minutes (a hung agent).
    fn answer(&mut self) -> String {
        self.answers
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("agent {} gave no answer ({e})", self.name))
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    fn expect(&mut self, answer: &str) {
        let got = self.answer();
        assert_eq!(got, answer, "agent {}", self.name);
    }

    /// The codes of `count` verifies of `secret` with `scope`.
    fn verify(&mut self, secret: &str, scope: Option<&str>, count: u64) -> Vec<String> {
        let answer = self.ask(&format!("verify {secret} {} {count}", scope.unwrap_or("-")));
        let codes = answer.strip_prefix("codes ").expect("codes");
        codes.split(',').map(str::to_owned).collect()
    }

    /// The answer of a drain: (admitted, attempts).
    fn drained(&mut self) -> (u64, u64) {
        let answer = self.answer();
        let mut words = answer
            .strip_prefix("drained ")
            .unwrap_or_else(|| panic!("agent {}: {answer:?}", self.name))
            .split(' ')
            .map(|w| w.parse::<u64>().expect("a number"));
        (
            words.next().expect("admitted"),
            words.next().expect("attempts"),
        )
    }

    /// Closes the vault and waits for the process to end.
    fn finish(mut self) {
        let answer = self.ask("close");
        assert_eq!(answer, "closed", "agent {}", self.name);
        drop(self.process.stdin.take());
        let status = self.process.wait().expect("wait");
        assert!(status.success(), "agent {} ended with {status}", self.name);
    }

    /// Kills the agent with SIGKILL and waits for it.
    fn kill(mut self) {
        self.process.kill().expect("kill");
        let status = self.process.wait().expect("wait");
        assert!(!status.success(), "agent {} ended on its own", self.name);
    }
}

impl Drop for Agent {
    /// A test that fails midway leaves no process behind.
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn agents(count: usize, path: &Path, lease: Duration) -> Vec<Agent> {
    // Started together, then awaited: the opens overlap as a web server's workers do.
    let mut started: Vec<Agent> = (0..count)
        .map(|i| Agent::start(&format!("p{i}"), path, Concurrency::Shared, lease))
        .collect();
    for agent in &mut started {
        agent.expect("ready");
    }
    started
}

/// Sends `drain` to every agent at once and returns how many verifies they admitted in all.
fn drain_all(agents: &mut [Agent], secret: &str, drain: Drain) -> u64 {
    for agent in agents.iter_mut() {
        agent.send(&drain.command(secret));
    }
    let mut admitted = 0;
    let mut attempts = 0;
    for agent in agents.iter_mut() {
        let (a, t) = agent.drained();
        eprintln!("agent {}: {a} admitted in {t} verifies", agent.name);
        admitted += a;
        attempts += t;
    }
    let least = admitted + agents.len() as u64 * drain.threads * drain.denials;
    assert!(
        admitted > drain.most || attempts >= least,
        "{attempts} verifies, {least} at least"
    );
    admitted
}

/// The used amount of the key's limit on `unit`.
fn used(vault: &Vault, key_id: &str, unit: Unit) -> u64 {
    let remaining = vault.remaining(key_id, None).expect("remaining");
    remaining
        .limits
        .iter()
        .find(|s| s.limit.unit == unit)
        .unwrap_or_else(|| panic!("no {unit:?} limit"))
        .used
}

#[test]
fn a_request_limit_of_1000_admits_exactly_1000_across_four_processes_of_eight_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("requests.vault");
    let (key_id, secret) = setup(&path, &["requests=1000"], &[]);

    let mut agents = agents(4, &path, LEASE);
    let admitted = drain_all(&mut agents, &secret, Drain::new(8, 1000));
    assert_eq!(admitted, 1000);
    for agent in agents {
        agent.finish();
    }

    let vault = Vault::open(&path, &shared(LEASE)).expect("open");
    assert_eq!(used(&vault, &key_id, Unit::Requests), 1000);
    let verdict = vault.verify(&secret, &request(None, 0)).expect("verify");
    assert_eq!(verdict.code, Code::UsageExceeded);
    vault.close().expect("close");
}

#[test]
fn a_one_dollar_budget_admits_exactly_33_holds_of_3_cents_across_four_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("budget.vault");
    let (_, secret) = setup(&path, &["cost=$1"], &[]);

    let mut agents = agents(4, &path, LEASE);
    // 33 holds of $0.03 are $0.99; a 34th would pass the dollar.
    let holds = Drain {
        hold: 30_000,
        ..Drain::new(8, 33)
    };
    let admitted = drain_all(&mut agents, &secret, holds);
    assert_eq!(admitted, 33);
    for agent in agents {
        agent.finish();
    }
}

#[test]
fn charges_that_settle_holds_across_four_processes_spend_a_budget_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("charged.vault");
    let (key_id, secret) = setup(&path, &["cost=$1"], &[]);

    let mut agents = agents(4, &path, LEASE);
    let charges = Drain {
        hold: 30_000,
        charge: 30_000,
        ..Drain::new(8, 33)
    };
    let admitted = drain_all(&mut agents, &secret, charges);
    assert_eq!(admitted, 33);
    for agent in agents {
        agent.finish();
    }

    let vault = Vault::open(&path, &shared(LEASE)).expect("open");
    assert_eq!(used(&vault, &key_id, Unit::Cost), 33 * 30_000);
    let rows = vault.usage(&UsageQuery::default()).expect("usage");
    assert_eq!(rows.iter().map(|r| r.requests).sum::<u64>(), 33);
    assert_eq!(rows.iter().map(|r| r.cost).sum::<u64>(), 33 * 30_000);
    vault.close().expect("close");
}

#[test]
fn hold_ids_are_unique_across_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("holds.vault");
    let (_, secret) = setup(&path, &["cost=$1000"], &[]);

    let mut agents = agents(4, &path, LEASE);
    for agent in agents.iter_mut() {
        agent.send(&format!("holds {secret} 50"));
    }
    let mut ids = HashSet::new();
    for agent in agents.iter_mut() {
        let answer = agent.answer();
        for id in answer.strip_prefix("holds ").expect("holds").split(',') {
            assert!(ids.insert(id.to_owned()), "hold id {id} was given twice");
        }
    }
    assert_eq!(ids.len(), 200);
    for agent in agents {
        agent.finish();
    }
}

/// Four agents: `change` runs in the first one and returns the verdict codes the other three
/// must now see on their very next verifies; `before` gives the codes they see before it.
/// Each watcher verifies a hundred times before the change, so that whatever a process keeps
/// in memory is warm, and is asked again only after the change returned.
fn seen_by_the_next_verify_in_every_other_process(
    scopes: &[&str],
    before: impl Fn(&mut Agent, &str),
    change: impl FnOnce(&mut Agent, &str, &str) -> Box<dyn Fn(&mut Agent)>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("admin.vault");
    let (key_id, secret) = setup(&path, &["requests=1000000"], scopes);

    let mut agents = agents(4, &path, LEASE);
    let (admin, watchers) = agents.split_first_mut().expect("agents");
    for watcher in watchers.iter_mut() {
        before(watcher, &secret);
    }
    let after = change(admin, &key_id, &secret);
    for watcher in watchers.iter_mut() {
        after(watcher);
    }
    for agent in agents {
        agent.finish();
    }
}

fn all_valid(agent: &mut Agent, secret: &str, scope: Option<&str>) {
    let codes = agent.verify(secret, scope, 100);
    assert!(
        codes.iter().all(|c| c == "valid"),
        "agent {}: {codes:?}",
        agent.name
    );
}

#[test]
fn a_revoke_in_one_process_is_seen_by_the_next_verify_in_every_other() {
    seen_by_the_next_verify_in_every_other_process(
        &[],
        |watcher, secret| all_valid(watcher, secret, None),
        |admin, key_id, secret| {
            assert_eq!(admin.ask(&format!("revoke {key_id}")), "revoked");
            let secret = secret.to_owned();
            Box::new(move |watcher| {
                assert_eq!(
                    watcher.verify(&secret, None, 1),
                    ["revoked"],
                    "{}",
                    watcher.name
                );
            })
        },
    );
}

#[test]
fn a_rotation_without_grace_in_one_process_is_seen_by_the_next_verify_in_every_other() {
    seen_by_the_next_verify_in_every_other_process(
        &[],
        |watcher, secret| all_valid(watcher, secret, None),
        |admin, key_id, secret| {
            let answer = admin.ask(&format!("rotate {key_id}"));
            let new = answer.strip_prefix("rotated ").expect("rotated").to_owned();
            let old = secret.to_owned();
            Box::new(move |watcher| {
                assert_eq!(
                    watcher.verify(&old, None, 1),
                    ["not_found"],
                    "{}",
                    watcher.name
                );
                assert_eq!(watcher.verify(&new, None, 1), ["valid"], "{}", watcher.name);
            })
        },
    );
}

#[test]
fn an_update_adding_a_scope_in_one_process_is_seen_by_the_next_verify_in_every_other() {
    seen_by_the_next_verify_in_every_other_process(
        &["read"],
        |watcher, secret| {
            all_valid(watcher, secret, Some("read"));
            let codes = watcher.verify(secret, Some("write"), 100);
            assert!(codes.iter().all(|c| c == "scope_denied"), "{codes:?}");
        },
        |admin, key_id, secret| {
            assert_eq!(admin.ask(&format!("scopes {key_id} read,write")), "updated");
            let secret = secret.to_owned();
            Box::new(move |watcher| {
                assert_eq!(
                    watcher.verify(&secret, Some("write"), 1),
                    ["valid"],
                    "{}",
                    watcher.name
                );
            })
        },
    );
}

#[test]
fn a_key_minted_in_one_process_is_valid_at_the_next_verify_in_every_other() {
    seen_by_the_next_verify_in_every_other_process(
        &[],
        |watcher, secret| all_valid(watcher, secret, None),
        |admin, _, _| {
            let answer = admin.ask("mint newcomer");
            let secret = answer.split(' ').nth(2).expect("a secret").to_owned();
            Box::new(move |watcher| {
                assert_eq!(
                    watcher.verify(&secret, None, 1),
                    ["valid"],
                    "{}",
                    watcher.name
                );
            })
        },
    );
}

/// A process takes a slice of a 100-request limit, admits 3 requests from it, flushes, and is
/// killed with SIGKILL. Until its lease times out, the two other processes reach only what is
/// outside its slice; afterwards, what it had not used comes back, and together they reach
/// exactly the 97 it did not admit: not one more (its 3 counted), not one less.
#[test]
fn the_slices_of_a_killed_process_come_back_after_the_lease_timeout_and_not_before() {
    // A live process renews its lease every third of the timeout, so the dead one's lease runs
    // at least 4 s past the kill: far longer than the first phase (about a hundred verifies and
    // a few dozen commits), which therefore ends before it.
    let lease = Duration::from_secs(6);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lease.vault");
    let (key_id, secret) = setup(&path, &["requests=100"], &[]);
    let mut survivors = agents(2, &path, lease);
    let mut victim = Agent::spawn("victim", &path, Concurrency::Shared, lease);

    let victim_admitted = 3;
    let codes = victim.verify(&secret, None, victim_admitted);
    assert!(codes.iter().all(|c| c == "valid"), "{codes:?}");
    assert_eq!(victim.ask("flush"), "flushed");
    victim.kill();

    // Few denials in a row end this phase: it must end well before the lease times out.
    let quick = Drain {
        denials: 10,
        ..Drain::new(1, 100)
    };
    let before = drain_all(&mut survivors, &secret, quick);
    assert!(
        before + victim_admitted < 100,
        "the others took the dead process's slice before its lease timed out ({before} \
         admitted; it had admitted {victim_admitted})"
    );
    let reserved = 100 - victim_admitted - before;

    // Once the lease has timed out, the first survivor is admitted again; then both drain.
    assert_eq!(
        survivors[0].ask(&format!("poll {secret} 60000")),
        "admitted"
    );
    let after = 1 + drain_all(&mut survivors, &secret, Drain::new(2, 100));
    eprintln!("{before} before the timeout, {after} after; {reserved} were in its slice");
    assert_eq!(before + after, 100 - victim_admitted);
    for agent in survivors {
        agent.finish();
    }

    let vault = Vault::open(&path, &options(Concurrency::Exclusive, lease)).expect("open");
    assert_eq!(used(&vault, &key_id, Unit::Requests), 100);
    vault.close().expect("close");
}

fn logged_ids(log: &Path) -> Vec<String> {
    match fs::read_to_string(log) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", log.display()),
    }
}

/// Waits until `log` holds at least `lines` lines.
fn wait_for_lines(log: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while logged_ids(log).len() < lines {
        assert!(Instant::now() < deadline, "{} stayed short", log.display());
        thread::sleep(Duration::from_millis(10));
    }
}

/// Four processes of two threads each verify and charge; one is killed with SIGKILL in the
/// middle. Every charge whose return was logged is in the usage records exactly once, and the
/// counters agree with the records.
#[test]
fn every_charge_that_returned_is_recorded_once_when_a_process_is_killed_midway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("charges.vault");
    let (key_id, secret) = setup(&path, &["tokens=1B", "cost=$1000", "requests=1M"], &[]);
    let threads = 2;

    let mut agents = agents(4, &path, LEASE);
    let logs: Vec<PathBuf> = (0..agents.len())
        .map(|i| dir.path().join(format!("p{i}.log")))
        .collect();
    for (agent, log) in agents.iter_mut().zip(&logs) {
        let answer = agent.ask(&format!("charge {secret} {threads} {}", log.display()));
        assert_eq!(answer, "charging");
    }
    for log in &logs {
        wait_for_lines(log, 20);
    }
    let mut agents = agents.into_iter();
    let victim = agents.next().expect("victim");
    victim.kill();
    // The others go on after the death, and some of their charges commit after it.
    let mut others: Vec<Agent> = agents.collect();
    for log in &logs[1..] {
        let now = logged_ids(log).len();
        wait_for_lines(log, now + 20);
    }
    for (agent, log) in others.iter_mut().zip(&logs[1..]) {
        let answer = agent.ask("stop");
        let stopped: usize = answer
            .strip_prefix("stopped ")
            .expect("stopped")
            .parse()
            .expect("a count");
        assert_eq!(stopped, logged_ids(log).len(), "agent {}", agent.name);
    }
    for agent in others {
        agent.finish();
    }

    let logged: Vec<String> = logs.iter().flat_map(|l| logged_ids(l)).collect();
    let logged_set: HashSet<&String> = logged.iter().collect();
    assert_eq!(
        logged_set.len(),
        logged.len(),
        "a request id was logged twice"
    );
    // Every process is gone: an exclusive open takes back what the killed one had leased and
    // not used, so the counters hold what was charged and nothing else.
    let vault = Vault::open(&path, &options(Concurrency::Exclusive, LEASE)).expect("open");
    let records = vault
        .usage_records(&UsageQuery::default(), usize::MAX)
        .expect("usage records");
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in &records {
        assert_eq!(record.outcome, "charged", "{record:?}");
        let id = record.request_id.clone().expect("a request id");
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    for id in &logged {
        assert!(
            seen.contains_key(id),
            "charge {id} returned but is not recorded"
        );
    }
    // Beyond the logged ones, only charges of the killed process that were in flight.
    let extra: Vec<_> = seen.keys().filter(|id| !logged_set.contains(id)).collect();
    assert!(extra.len() <= threads, "unlogged charges: {extra:?}");
    assert!(extra.iter().all(|id| id.starts_with("p0-")), "{extra:?}");

    let n = records.len() as u64;
    assert_eq!(
        used(&vault, &key_id, Unit::Tokens),
        n * (TOKENS_IN + TOKENS_OUT)
    );
    assert_eq!(used(&vault, &key_id, Unit::Cost), n * COST);
    let rows = vault.usage(&UsageQuery::default()).expect("usage");
    assert_eq!(rows.iter().map(|r| r.requests).sum::<u64>(), n);
    assert_eq!(rows.iter().map(|r| r.cost).sum::<u64>(), n * COST);
    assert_eq!(
        rows.iter().map(|r| r.input_tokens).sum::<u64>(),
        n * TOKENS_IN
    );
    // A charge that is recorded is remembered: charging it again is a replay.
    let again = Usage {
        input_tokens: TOKENS_IN,
        output_tokens: TOKENS_OUT,
        cost: Some(COST),
        request_id: Some(logged[0].clone()),
        ..Usage::default()
    };
    assert!(vault.charge(&key_id, &again).expect("charge").replayed);
    vault.close().expect("close");
}

#[test]
fn an_exclusive_open_is_refused_while_a_shared_one_is_live_and_the_reverse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("modes.vault");
    setup(&path, &[], &[]);
    let exclusive = options(Concurrency::Exclusive, LEASE);

    let sharer = Agent::spawn("sharer", &path, Concurrency::Shared, LEASE);
    let err = Vault::open(&path, &exclusive).expect_err("an exclusive open beside a shared one");
    assert_eq!(err.code(), ErrorCode::Locked, "{err}");
    assert!(err.message().contains("shared"), "{err}");
    sharer.finish();

    let owner = Agent::spawn("owner", &path, Concurrency::Exclusive, LEASE);
    let err =
        Vault::open(&path, &shared(LEASE)).expect_err("a shared open beside an exclusive one");
    assert_eq!(err.code(), ErrorCode::Locked, "{err}");
    assert!(err.message().contains("exclusive"), "{err}");
    owner.finish();

    // Nobody has the file open any more: both modes open it again.
    Vault::open(&path, &shared(LEASE))
        .expect("shared")
        .close()
        .expect("close");
    Vault::open(&path, &exclusive)
        .expect("exclusive")
        .close()
        .expect("close");
}

#[test]
fn the_shared_mode_takes_the_durable_level_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("levels.vault");
    setup(&path, &[], &[]);
    for level in [Durability::Process, Durability::Relaxed] {
        let err = Vault::open(&path, &shared(LEASE).durability(level))
            .expect_err("a shared open below the durable level");
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    }
    let fresh = dir.path().join("fresh.vault");
    let err = Vault::create(&fresh, &shared(LEASE).durability(Durability::Relaxed))
        .expect_err("a shared create below the durable level");
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(!fresh.exists());
}
