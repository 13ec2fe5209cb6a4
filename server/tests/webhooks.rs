//! Alert webhooks against real receivers: small HTTP servers on 127.0.0.1 that record every
//! request and answer as each test scripts them, fed by events of a real vault file.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nanu::{Context, Event, EventKind, KdfParams, KeySpec, Limit, Options, Usage, Vault};
use nanu_server::webhooks::{EndpointStatus, RetryPolicy, WebhookConfig, WebhookError, Webhooks};
use serde_json::json;
use sha2::Sha256;
use tokio::net::TcpListener;

/// How long a test waits for something the deliverer does before it calls it lost.
const PATIENCE: Duration = Duration::from_secs(30);

/// Retries in milliseconds, so that a test sees many of them.
const FAST: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(5),
    cap: Duration::from_millis(40),
    poll: Duration::from_millis(20),
};

// ------------------------------------------------------------------------------------------
// Receivers

/// How a receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Status(u16),
    /// Closes the connection without an answer.
    Hangup,
}

/// One request as a receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    seq: String,
    timestamp: String,
    signature: String,
    content_type: String,
    authorization: String,
    body: Vec<u8>,
    reply: Reply,
}

impl Received {
    fn seq(&self) -> u64 {
        self.seq.parse().expect("Nanu-Event-Seq is a number")
    }

    fn event(&self) -> Event {
        serde_json::from_slice(&self.body).expect("the body is an event")
    }

    fn accepted(&self) -> bool {
        matches!(self.reply, Reply::Status(code) if (200..300).contains(&code))
    }
}

#[derive(Debug)]
struct Script {
    log: Vec<Received>,
    /// Replies for the next requests, in order.
    next: VecDeque<Reply>,
    /// The reply once `next` is used up.
    otherwise: Reply,
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request and answers as scripted.
struct Receiver {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(next: &[Reply], otherwise: Reply) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let script = Arc::new(Mutex::new(Script {
            log: Vec::new(),
            next: next.iter().copied().collect(),
            otherwise,
        }));
        let shared = script.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let script = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(script.clone(), request));
                    // A hang-up ends the connection with an error; that is the point of it.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            script,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/nanu?token=not-for-status", self.addr)
    }

    /// The URL with credentials in it, as `user:password@`.
    fn url_with_credentials(&self, credentials: &str) -> String {
        format!(
            "http://{credentials}@{}/hooks/nanu?token=not-for-status",
            self.addr
        )
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> Vec<Received> {
        self.script.lock().unwrap().log.clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.log().into_iter().filter(Received::accepted).collect()
    }

    fn answer_from_now_on(&self, reply: Reply) {
        self.script.lock().unwrap().otherwise = reply;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    script: Arc<Mutex<Script>>,
    request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, std::io::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
            .unwrap_or_default()
    };
    let (seq, timestamp, signature, content_type, authorization) = (
        header("nanu-event-seq"),
        header("nanu-timestamp"),
        header("nanu-signature"),
        header("content-type"),
        header("authorization"),
    );
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?;
    let reply = {
        let mut script = script.lock().unwrap();
        let reply = script.next.pop_front().unwrap_or(script.otherwise);
        script.log.push(Received {
            seq,
            timestamp,
            signature,
            content_type,
            authorization,
            body: body.to_bytes().to_vec(),
            reply,
        });
        reply
    };
    match reply {
        Reply::Status(code) => {
            let mut response = Response::new(Empty::new());
            *response.status_mut() = StatusCode::from_u16(code).expect("a status code");
            Ok(response)
        }
        Reply::Hangup => Err(std::io::Error::other("hanging up on purpose")),
    }
}

/// An address where nothing listens: bound, then let go.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    listener.local_addr().expect("local address")
}

/// Checks a request's signature the way a receiver should: the HMAC of
/// `"<timestamp>.<body>"` under the shared secret, compared in constant time.
fn signature_is_valid(secret: &[u8], request: &Received) -> bool {
    let Some(hex) = request.signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(request.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

// ------------------------------------------------------------------------------------------
// Vaults, events, configurations

/// A vault file in its own folder, with a key whose token limit alerts at every tenth.
struct Fixture {
    dir: tempfile::TempDir,
    vault: Arc<Vault>,
    key_id: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = Options::passphrase("test passphrase").kdf(KdfParams::INSECURE_FOR_TESTS);
        let vault = Vault::create(dir.path().join("test.vault"), &options).expect("create vault");
        let mut spec = KeySpec::new("acme");
        let limit: Limit = serde_json::from_value(json!({
            "unit": "tokens", "amount": 1000, "window": "lifetime",
            "alert_at": [10, 20, 30, 40, 50, 60, 70, 80],
        }))
        .expect("limit");
        spec.limits.push(limit);
        let key_id = vault.mint(&spec, &Context::default()).expect("mint").key_id;
        Fixture {
            dir,
            vault: Arc::new(vault),
            key_id,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn state_path(&self) -> PathBuf {
        self.path("test.vault.webhooks.state")
    }

    /// Charges 100 tokens: each of the first eight charges crosses one threshold, the tenth
    /// exhausts the limit.
    fn charge(&self) {
        let usage = Usage {
            input_tokens: 100,
            ..Usage::default()
        };
        self.vault.charge(&self.key_id, &usage).expect("charge");
    }

    /// Mints a key and revokes it: one `revoked` event.
    fn revoke_a_key(&self) {
        let key_id = self
            .vault
            .mint(&KeySpec::new("other"), &Context::default())
            .expect("mint")
            .key_id;
        self.vault
            .revoke(&key_id, &Context::default())
            .expect("revoke");
    }

    /// Every event after `after`, committed.
    fn events_after(&self, after: u64) -> Vec<Event> {
        self.vault.flush().expect("flush");
        self.vault.events(after, 10_000).expect("events")
    }

    fn newest_seq(&self) -> u64 {
        self.events_after(0).last().map_or(0, |e| e.seq)
    }

    fn secret_file(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("{secret}\n")).expect("write secret");
        path
    }

    fn config(&self, endpoints: serde_json::Value) -> WebhookConfig {
        let path = self.path("webhooks.json");
        std::fs::write(&path, endpoints.to_string()).expect("write config");
        WebhookConfig::load(&path).expect("a valid config")
    }

    fn start(&self, config: WebhookConfig) -> Webhooks {
        Webhooks::start(self.vault.clone(), config, self.state_path(), FAST).expect("start")
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_path()).expect("read state");
        serde_json::from_str(&text).expect("state is json")
    }
}

fn status_of(webhooks: &Webhooks, id: &str) -> EndpointStatus {
    webhooks
        .status()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no status for {id}"))
}

/// Waits until `done` holds, or fails the test after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn seqs(requests: &[Received]) -> Vec<u64> {
    requests.iter().map(Received::seq).collect()
}

fn of_kinds(events: &[Event], kinds: &[EventKind]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| kinds.contains(&e.kind))
        .cloned()
        .collect()
}

const ALERTS: [EventKind; 5] = [
    EventKind::Threshold,
    EventKind::Exhausted,
    EventKind::Expiring,
    EventKind::Expired,
    EventKind::Unpriced,
];

// ------------------------------------------------------------------------------------------
// Delivery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_in_order_and_only_those_of_each_endpoints_kinds() {
    let fx = Fixture::new();
    // Before the endpoints exist: neither receives these.
    fx.charge();
    fx.revoke_a_key();
    let before = fx.newest_seq();
    assert_eq!(before, 2);

    let alerts = Receiver::start(&[], Reply::Status(200)).await;
    let admin = Receiver::start(&[], Reply::Status(204)).await;
    let alerts_secret = "whsec-alerts-0123456789";
    // Setting a variable is unsafe while other tests run in threads, so the environment
    // secret is one every process has.
    let path_secret = std::env::var("PATH").expect("PATH is set");
    let config = fx.config(json!([
        {"id": "alerts", "url": alerts.url(),
         "secret_file": fx.secret_file("alerts.secret", alerts_secret)},
        {"id": "admin", "url": admin.url(), "secret_env": "PATH",
         "events": ["revoked", "rotated"], "timeout": "5s"},
    ]));
    let webhooks = fx.start(config);

    for _ in 0..4 {
        fx.charge();
    }
    fx.revoke_a_key();
    fx.vault
        .rotate(&fx.key_id, Duration::ZERO, &Context::default())
        .expect("rotate");
    for _ in 0..5 {
        fx.charge();
    }
    let events = fx.events_after(before);
    let want_alerts = of_kinds(&events, &ALERTS);
    let want_admin = of_kinds(&events, &[EventKind::Revoked, EventKind::Rotated]);
    // Thresholds at 20 to 80 percent and the exhaustion; a revoke and a rotation.
    assert_eq!(want_alerts.len(), 8);
    assert_eq!(want_admin.len(), 2);

    // The status moves after the receiver has answered, so waiting for it also waits for
    // the requests.
    eventually("every alert delivered", || {
        status_of(&webhooks, "alerts").delivered == 8
    })
    .await;
    eventually("every admin event delivered", || {
        status_of(&webhooks, "admin").delivered == 2
    })
    .await;
    let got_alerts = alerts.log();
    let got_admin = admin.log();
    assert_eq!(
        got_alerts.len(),
        want_alerts.len(),
        "nothing was sent twice"
    );
    assert_eq!(got_admin.len(), want_admin.len(), "nothing was sent twice");

    for (got, want, secret) in [
        (&got_alerts, &want_alerts, alerts_secret.as_bytes()),
        (&got_admin, &want_admin, path_secret.as_bytes()),
    ] {
        for (request, event) in got.iter().zip(want.iter()) {
            assert_eq!(request.seq(), event.seq);
            assert_eq!(&request.event(), event);
            assert_eq!(request.content_type, "application/json");
            let sent_at: i64 = request.timestamp.parse().expect("unix seconds");
            let now = jiff::Timestamp::now().as_second();
            assert!(
                (now - 3600..=now + 60).contains(&sent_at),
                "timestamp {sent_at}"
            );
            assert!(
                signature_is_valid(secret, request),
                "signature of {}",
                event.seq
            );
            assert!(!signature_is_valid(b"another secret", request));
        }
    }
    // A receiver that checks the signature notices a body changed on the way.
    let mut forged = got_alerts[0].clone();
    forged.body = forged
        .body
        .iter()
        .map(|b| if *b == b'5' { b'6' } else { *b })
        .collect();
    assert!(!signature_is_valid(alerts_secret.as_bytes(), &forged));

    let status = status_of(&webhooks, "alerts");
    assert_eq!(status.origin, alerts.origin());
    assert_eq!(status.events, ALERTS.to_vec());
    assert_eq!(status.delivered, 8);
    assert_eq!(status.failures, 0);
    assert_eq!(status.last_delivered_seq, Some(want_alerts[7].seq));
    assert_eq!(status.pending_seq, None);
    let status = status_of(&webhooks, "admin");
    assert_eq!(status.delivered, 2);
    assert_eq!(status.events, vec![EventKind::Revoked, EventKind::Rotated]);
    webhooks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_with_a_500_then_a_hangup_is_delivered_on_the_third_attempt() {
    let fx = Fixture::new();
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Hangup], Reply::Status(200)).await;
    let config = fx.config(json!([
        {"id": "flaky", "url": receiver.url(),
         "secret_file": fx.secret_file("flaky.secret", "flaky secret")},
    ]));
    let webhooks = fx.start(config);
    for _ in 0..3 {
        fx.charge();
    }
    let want = fx.events_after(0);
    assert_eq!(want.len(), 3);

    eventually("three events accepted", || receiver.accepted().len() == 3).await;
    let log = receiver.log();
    let first = want[0].seq;
    assert_eq!(
        seqs(&log),
        vec![first, first, first, want[1].seq, want[2].seq],
        "the first event is retried until it is taken, and only then come the next"
    );
    let replies: Vec<Reply> = log.iter().map(|r| r.reply).collect();
    assert_eq!(
        replies[..3],
        [Reply::Status(500), Reply::Hangup, Reply::Status(200)]
    );
    // Every attempt at an event carries the same body.
    assert!(log[..3].iter().all(|r| r.body == log[0].body));
    let accepted: Vec<u64> = seqs(&receiver.accepted());
    assert_eq!(accepted, want.iter().map(|e| e.seq).collect::<Vec<_>>());

    eventually("the last delivery recorded", || {
        status_of(&webhooks, "flaky").delivered == 3
    })
    .await;
    let status = status_of(&webhooks, "flaky");
    assert_eq!(status.failures, 2);
    assert_eq!(status.attempts, 0);
    assert_eq!(status.pending_seq, None);
    assert_eq!(status.last_seq, want[2].seq);
    let error = status.last_error.expect("the hang-up is remembered");
    assert!(
        !error.contains("token="),
        "the url stays out of errors: {error}"
    );
    webhooks.shutdown().await;

    let state = fx.state();
    let flaky = &state["endpoints"]["flaky"];
    assert_eq!(flaky["failures"], 2);
    assert_eq!(flaky["delivered"], 3);
    assert_eq!(flaky["last_seq"], want[2].seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_in_the_middle_of_retries_lose_and_skip_nothing() {
    let fx = Fixture::new();
    let receiver = Receiver::start(&[], Reply::Status(503)).await;
    let config = || {
        fx.config(json!([
            {"id": "down-for-a-while", "url": receiver.url(),
             "secret_file": fx.secret_file("restart.secret", "restart secret")},
        ]))
    };
    let first = fx.start(config());
    for _ in 0..3 {
        fx.charge();
    }
    let early = fx.events_after(0);
    eventually("a few failed attempts", || receiver.log().len() >= 3).await;
    // Dropped, not shut down: as when the server's task is cancelled.
    drop(first);

    let tried = receiver.log().len();
    let second = fx.start(config());
    eventually("attempts after the restart", || {
        receiver.log().len() >= tried + 3
    })
    .await;
    second.shutdown().await;
    let state = fx.state();
    let saved = &state["endpoints"]["down-for-a-while"];
    assert_eq!(saved["pending_seq"], early[0].seq);
    assert_eq!(saved["last_seq"], 0);
    assert_eq!(saved["delivered"], 0);
    let failures = saved["failures"].as_u64().expect("failures");
    assert!(
        failures >= 4,
        "failures counted across the restart: {failures}"
    );
    // The attempts at the pending event go on counting across the restart.
    assert_eq!(saved["attempts"].as_u64(), Some(failures));

    // An event while no deliverer runs, then the receiver comes back.
    fx.charge();
    let all = fx.events_after(0);
    assert_eq!(all.len(), 4);
    receiver.answer_from_now_on(Reply::Status(200));
    let third = fx.start(config());
    eventually("everything delivered", || {
        receiver.accepted().len() == all.len()
    })
    .await;
    let log = receiver.log();
    assert!(
        seqs(&log).windows(2).all(|w| w[0] <= w[1]),
        "never out of order across restarts: {:?}",
        seqs(&log)
    );
    assert!(log.iter().all(|r| r.seq() == early[0].seq || r.accepted()));
    assert_eq!(
        seqs(&receiver.accepted()),
        all.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    eventually("the deliveries recorded", || {
        status_of(&third, "down-for-a-while").delivered == 4
    })
    .await;
    let status = status_of(&third, "down-for-a-while");
    assert_eq!(status.failures, failures);
    assert_eq!(status.attempts, 0);
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_holds_back_nobody_else() {
    let fx = Fixture::new();
    let up = Receiver::start(&[], Reply::Status(200)).await;
    let down = closed_port();
    let config = fx.config(json!([
        {"id": "down", "url": format!("http://{down}/hook"),
         "secret_file": fx.secret_file("down.secret", "down secret"), "timeout": "2s"},
        {"id": "up", "url": up.url(),
         "secret_file": fx.secret_file("up.secret", "up secret")},
    ]));
    let webhooks = fx.start(config);
    for _ in 0..3 {
        fx.charge();
    }
    let events = fx.events_after(0);

    eventually("the live endpoint has every event", || {
        up.accepted().len() == 3
    })
    .await;
    assert_eq!(
        seqs(&up.log()),
        events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    eventually("the dead endpoint has failed twice", || {
        status_of(&webhooks, "down").failures >= 2
    })
    .await;
    let status = status_of(&webhooks, "down");
    assert_eq!(status.delivered, 0);
    assert_eq!(status.pending_seq, Some(events[0].seq));
    assert_eq!(status.last_seq, 0);
    assert!(status.next_attempt_at.is_some());
    let error = status.last_error.expect("an error");
    assert!(error.to_lowercase().contains("connect"), "{error}");
    webhooks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_added_later_starts_from_then_and_a_removed_one_is_forgotten() {
    let fx = Fixture::new();
    let old = Receiver::start(&[], Reply::Status(200)).await;
    let new = Receiver::start(&[], Reply::Status(200)).await;
    let secret = fx.secret_file("shared.secret", "shared secret");
    let old_entry = json!({"id": "old", "url": old.url(), "secret_file": secret});
    let new_entry = json!({"id": "new", "url": new.url(), "secret_file": secret});

    let first = fx.start(fx.config(json!([old_entry])));
    fx.charge();
    // Waiting for the status, not the receiver: a shutdown between the two would abandon the
    // delivery, and the event would rightly come again.
    eventually("the first event delivered", || {
        status_of(&first, "old").delivered == 1
    })
    .await;
    first.shutdown().await;
    // While nothing runs: the old endpoint gets this one later, the new one never.
    fx.charge();
    let configured = fx.newest_seq();

    let second = fx.start(fx.config(json!([old_entry, new_entry])));
    fx.charge();
    let all = fx.events_after(0);
    eventually("the old endpoint caught up", || {
        status_of(&second, "old").delivered == 3
    })
    .await;
    eventually("the new endpoint got the newest", || {
        status_of(&second, "new").delivered == 1
    })
    .await;
    assert_eq!(
        seqs(&old.accepted()),
        all.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&new.log()), vec![all[2].seq]);
    let status = status_of(&second, "new");
    assert!(status.configured_at > status_of(&second, "old").configured_at);
    assert_eq!(status.last_seq, configured + 1);
    second.shutdown().await;

    let third = fx.start(fx.config(json!([new_entry])));
    assert_eq!(third.status().len(), 1);
    third.shutdown().await;
    let state = fx.state();
    assert!(state["endpoints"].get("old").is_none(), "{state}");
    assert!(state["endpoints"].get("new").is_some(), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_ahead_of_the_vault_goes_on_from_the_vaults_newest_event() {
    // As after the vault was restored from a backup older than the state file.
    let fx = Fixture::new();
    fx.charge();
    let receiver = Receiver::start(&[], Reply::Status(200)).await;
    let stale = json!({"version": 1, "endpoints": {"restored": {
        "configured_at": "2025-01-01T00:00:00Z", "last_seq": 50, "pending_seq": 51,
        "attempts": 7, "next_attempt_at": "2999-01-01T00:00:00Z", "delivered": 40,
    }}});
    std::fs::write(fx.state_path(), stale.to_string()).expect("write state");
    let webhooks = fx.start(fx.config(json!([
        {"id": "restored", "url": receiver.url(),
         "secret_file": fx.secret_file("restored.secret", "restored secret")},
    ])));
    fx.charge();
    eventually("the new event delivered", || {
        status_of(&webhooks, "restored").delivered == 41
    })
    .await;
    assert_eq!(seqs(&receiver.log()), vec![2]);
    assert_eq!(status_of(&webhooks, "restored").last_seq, 2);
    webhooks.shutdown().await;
}

// ------------------------------------------------------------------------------------------
// Refusals

fn load_error(dir: &Path, text: &str) -> String {
    let path = dir.join("webhooks.json");
    std::fs::write(&path, text).expect("write config");
    match WebhookConfig::load(&path) {
        Ok(_) => panic!("config accepted: {text}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn bad_configs_are_refused_with_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a-very-secret-value\n").expect("write secret");
    std::fs::write(dir.path().join("empty.secret"), "\n").expect("write secret");
    // One endpoint with `extra` fields after its id and url.
    let ok =
        |extra: &str| format!(r#"[{{"id": "a", "url": "https://hooks.example.com/x"{extra}}}]"#);
    let with_secret = |extra: &str| ok(&format!(r#", "secret_file": "secret"{extra}"#));
    let cases: Vec<(String, &str)> = vec![
        ("[{\"id\": ".to_owned(), "EOF while parsing"),
        // Cut short after its first brace: a syntax error, not a map where a list belongs.
        (
            "{".to_owned(),
            "not valid json: EOF while parsing an object",
        ),
        ("{\"id\": \"a\"}".to_owned(), "expected a list of endpoints"),
        (with_secret(r#", "retries": 3"#), "unknown field `retries`"),
        (
            r#"[{"url": "https://hooks.example.com", "secret_file": "secret"}]"#.to_owned(),
            "missing field `id`",
        ),
        (
            r#"[{"id": "a", "url": "ftp://hooks.example.com/x", "secret_file": "secret"}]"#
                .to_owned(),
            "endpoint \"a\": url must be http or https, not \"ftp\"",
        ),
        (
            r#"[{"id": "a", "url": "hooks.example.com/x", "secret_file": "secret"}]"#.to_owned(),
            "endpoint \"a\": invalid url",
        ),
        (ok(""), "endpoint \"a\": a secret is required"),
        (
            ok(r#", "secret_env": "NANU_TEST_NOT_SET_ANYWHERE""#),
            "environment variable NANU_TEST_NOT_SET_ANYWHERE (secret_env) is not set",
        ),
        (
            ok(r#", "secret_file": "missing.secret""#),
            "cannot read secret_file",
        ),
        (ok(r#", "secret_file": "empty.secret""#), "is empty"),
        (
            ok(r#", "secret_file": "secret", "secret_env": "PATH""#),
            "give secret_env or secret_file, not both",
        ),
        (
            with_secret(r#", "events": ["threshold", "spam"]"#),
            "endpoint \"a\": events: unknown variant `spam`, expected one of `threshold`",
        ),
        (with_secret(r#", "events": []"#), "events is empty"),
        (
            with_secret(r#", "timeout": "soon""#),
            "invalid duration \"soon\"",
        ),
        (
            with_secret(r#", "timeout": "0s""#),
            "timeout \"0s\" is not within",
        ),
        (
            r#"[{"id": "a", "url": "https://x.example", "secret_file": "secret"},
                {"id": "a", "url": "https://y.example", "secret_file": "secret"}]"#
                .to_owned(),
            "duplicate endpoint id \"a\"",
        ),
        (
            r#"[{"id": "no spaces", "url": "https://x.example", "secret_file": "secret"}]"#
                .to_owned(),
            "endpoint id \"no spaces\" must be",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(dir.path(), &text);
        assert!(
            error.contains(expected),
            "{text}\n gave: {error}\n wanted: {expected}"
        );
        assert!(error.starts_with("webhooks config "), "{error}");
        assert!(
            !error.contains("invalid_argument"),
            "no code inside: {error}"
        );
        assert!(!error.contains("a-very-secret-value"), "{error}");
        assert!(
            !error.contains("hooks.example.com/x"),
            "the url stays out: {error}"
        );
    }

    let missing = WebhookConfig::load(&dir.path().join("nowhere.json")).unwrap_err();
    assert!(matches!(missing, WebhookError::Read { .. }));
    assert!(
        missing
            .to_string()
            .starts_with("cannot read webhooks config "),
        "{missing}"
    );
}

#[test]
fn a_loaded_config_shows_no_secret() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("s"), "a-very-secret-value").expect("write secret");
    let path = dir.path().join("webhooks.json");
    std::fs::write(
        &path,
        r#"[{"id": "a", "url": "https://hooks.example.com/x", "secret_file": "s"}]"#,
    )
    .expect("write config");
    let config = WebhookConfig::load(&path).expect("valid");
    assert_eq!(config.ids().collect::<Vec<_>>(), ["a"]);
    let shown = format!("{config:?}");
    assert!(!shown.contains("a-very-secret-value"), "{shown}");
}

#[test]
fn delivery_needs_a_tokio_runtime_and_a_sound_retry_policy() {
    let fx = Fixture::new();
    let empty = || fx.config(json!([]));
    let err = Webhooks::start(fx.vault.clone(), empty(), fx.state_path(), FAST).unwrap_err();
    assert_eq!(
        err.to_string(),
        "webhooks cannot start: not inside a tokio runtime"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _inside = runtime.enter();
    let zero = RetryPolicy {
        base: Duration::ZERO,
        ..FAST
    };
    let err = Webhooks::start(fx.vault.clone(), empty(), fx.state_path(), zero).unwrap_err();
    assert!(err.to_string().contains("must be more than zero"), "{err}");
    let upside_down = RetryPolicy {
        cap: Duration::from_millis(1),
        ..FAST
    };
    let err = Webhooks::start(fx.vault.clone(), empty(), fx.state_path(), upside_down).unwrap_err();
    assert!(err.to_string().contains("is below the retry base"), "{err}");
    assert!(!fx.state_path().exists(), "a refused start writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_serves_one_deliverer_and_a_damaged_one_is_refused() {
    let fx = Fixture::new();
    let config = || fx.config(json!([]));
    let running = fx.start(config());
    let err = Webhooks::start(fx.vault.clone(), config(), fx.state_path(), FAST).unwrap_err();
    assert!(matches!(err, WebhookError::State { .. }));
    assert!(
        err.to_string()
            .contains("in use by another webhook deliverer"),
        "{err}"
    );
    running.shutdown().await;

    std::fs::write(fx.state_path(), "{\"version\": 1, \"endpoi").expect("damage the state");
    let err = Webhooks::start(fx.vault.clone(), config(), fx.state_path(), FAST).unwrap_err();
    assert!(err.to_string().contains("cannot parse it"), "{err}");
    assert_eq!(
        std::fs::read_to_string(fx.state_path()).expect("state"),
        "{\"version\": 1, \"endpoi",
        "a damaged state file is left as it was"
    );
    std::fs::write(fx.state_path(), r#"{"version": 99, "endpoints": {}}"#).expect("write");
    let err = Webhooks::start(fx.vault.clone(), config(), fx.state_path(), FAST).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_debug_and_state_hold_no_secret_and_no_url_path() {
    let fx = Fixture::new();
    let receiver = Receiver::start(&[Reply::Status(401)], Reply::Status(200)).await;
    let secret = "whsec-never-shown-anywhere";
    let webhooks = fx.start(fx.config(json!([
        {"id": "quiet", "url": receiver.url(),
         "secret_file": fx.secret_file("quiet.secret", secret)},
    ])));
    fx.charge();
    eventually("delivered", || receiver.accepted().len() == 1).await;
    eventually("recorded", || status_of(&webhooks, "quiet").delivered == 1).await;
    let status = serde_json::to_string(&webhooks.status()).expect("status json");
    let debug = format!("{webhooks:?}");
    let state = std::fs::read_to_string(fx.state_path()).expect("state");
    for shown in [&status, &debug, &state] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("token=not-for-status"), "{shown}");
        assert!(!shown.contains("/hooks/nanu"), "{shown}");
    }
    assert!(
        status.contains("401"),
        "the refusal is in the status: {status}"
    );
    webhooks.shutdown().await;
}

#[test]
fn endless_and_oversized_files_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let endpoint = |secret_file: &str| {
        let url = "https://hooks.example.com/x";
        format!(r#"[{{"id": "a", "url": "{url}", "secret_file": "{secret_file}"}}]"#)
    };

    // An endless device: read up to the bound, then refused, instead of filling memory.
    let error = load_error(dir.path(), &endpoint("/dev/zero"));
    assert!(
        error.contains("secret_file /dev/zero is larger than 4 KiB"),
        "{error}"
    );
    // The bound itself is a secret's, not a guess: 4 KiB passes, one byte more does not.
    std::fs::write(dir.path().join("largest.secret"), vec![b's'; 4096]).expect("write");
    std::fs::write(dir.path().join("too-long.secret"), vec![b's'; 4097]).expect("write");
    let path = dir.path().join("webhooks.json");
    std::fs::write(&path, endpoint("largest.secret")).expect("write config");
    WebhookConfig::load(&path).expect("a 4 KiB secret is accepted");
    let error = load_error(dir.path(), &endpoint("too-long.secret"));
    assert!(error.contains("is larger than 4 KiB"), "{error}");

    // The configuration file itself.
    let err = WebhookConfig::load(Path::new("/dev/zero")).expect_err("endless config");
    assert!(
        err.to_string()
            .contains("webhooks config /dev/zero: the file is larger than 1 MiB"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_state_file_is_refused_and_left_alone() {
    let fx = Fixture::new();
    // A sparse file: far over the bound on disk in name only, made at once.
    let file = std::fs::File::create(fx.state_path()).expect("create state");
    file.set_len(1 << 30).expect("grow state");
    drop(file);
    let err = Webhooks::start(
        fx.vault.clone(),
        fx.config(json!([])),
        fx.state_path(),
        FAST,
    )
    .expect_err("an oversized state file");
    assert!(matches!(err, WebhookError::State { .. }), "{err:?}");
    assert!(err.to_string().contains("is larger than 16 MiB"), "{err}");
    assert_eq!(
        std::fs::metadata(fx.state_path()).expect("state").len(),
        1 << 30,
        "the file is left as it was"
    );
}

// ------------------------------------------------------------------------------------------
// Credentials in a URL

/// Every line logged in this test process.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps every log line, so that a test can look for what must never be logged.
struct CaptureLog;

impl log::Log for CaptureLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOGGED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CaptureLog).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_url_are_sent_as_basic_auth_and_shown_nowhere() {
    capture_logs();
    let fx = Fixture::new();
    // Refused once, so that a failure is logged and recorded, then taken.
    let receiver = Receiver::start(&[Reply::Status(500)], Reply::Status(200)).await;
    let down = closed_port();
    let config = fx.config(json!([
        {"id": "with-credentials", "url": receiver.url_with_credentials("hook-user:hook%21pass"),
         "secret_file": fx.secret_file("up.secret", "whsec-up")},
        {"id": "down-with-credentials", "url": format!("http://hook-user:hook%21pass@{down}/x"),
         "secret_file": fx.secret_file("down.secret", "whsec-down")},
    ]));
    let config_debug = format!("{config:?}");
    let webhooks = fx.start(config);
    fx.charge();

    eventually("delivered after one refusal", || {
        receiver.accepted().len() == 1
    })
    .await;
    eventually("recorded", || {
        status_of(&webhooks, "with-credentials").delivered == 1
    })
    .await;
    eventually("the endpoint that is down failed twice", || {
        status_of(&webhooks, "down-with-credentials").failures >= 2
    })
    .await;

    // Sent as Basic auth, percent-decoded: base64 of "hook-user:hook!pass".
    let requests = receiver.log();
    assert_eq!(requests.len(), 2, "one refused, one taken");
    for request in &requests {
        assert_eq!(request.authorization, "Basic aG9vay11c2VyOmhvb2shcGFzcw==");
    }

    let status = serde_json::to_string(&webhooks.status()).expect("status json");
    let webhooks_debug = format!("{webhooks:?}");
    let state = std::fs::read_to_string(fx.state_path()).expect("state");
    let logged: Vec<String> = LOGGED
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("with-credentials"))
        .cloned()
        .collect();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("endpoint with-credentials")),
        "the refusal was logged: {logged:?}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.contains("endpoint down-with-credentials")),
        "the failures were logged: {logged:?}"
    );
    assert!(
        status.contains("500") && status.contains(&format!("http://{down}")),
        "the status says what failed, and where: {status}"
    );
    let logged = logged.join("\n");
    for shown in [&status, &webhooks_debug, &config_debug, &state, &logged] {
        for credential in ["hook-user", "hook%21pass", "hook!pass", "aG9vay11c2Vy"] {
            assert!(!shown.contains(credential), "{credential} in: {shown}");
        }
        assert!(!shown.contains("token=not-for-status"), "{shown}");
    }
    webhooks.shutdown().await;
}
