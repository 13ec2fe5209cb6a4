//! Starting and stopping: shutdown lets the vault close with everything flushed, and the
//! webhook deliverer is wired to the served vault.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use nanu::{Options, Vault};
use nanu_server::WebhookSetup;
use nanu_server::webhooks::RetryPolicy;
use serde_json::{Value, json};

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_over_http_survive_a_stop_and_reopen() {
    let server = TestServer::start().await;
    let (key_id, secret) = server.mint(json!({"owner": "acme", "name": "kept"})).await;
    server
        .post(
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r1", "input_tokens": 7, "cost": 11}),
        )
        .await
        .expect(200);
    let addr = server.addr;
    let path = server.vault_path();
    let client = server.client.clone();
    let _dir = server.stop().await;

    // Nothing listens any more.
    assert!(
        client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    );

    let vault = Vault::open(&path, &Options::key([7; 32])).unwrap();
    assert_eq!(vault.get(&key_id).unwrap().name, "kept");
    let usage = vault.usage(&nanu::UsageQuery::default()).unwrap();
    assert_eq!(usage[0].cost, 11);
    assert!(
        vault
            .verify(&secret, &nanu::VerifyRequest::default())
            .unwrap()
            .allowed
    );
    vault.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_events_of_the_served_vault() {
    // A receiver on 127.0.0.1 that records what it is sent.
    let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let recorder = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let recorder = recorder.clone();
            async move {
                let seq = headers
                    .get("nanu-event-seq")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                recorder.lock().unwrap().push((seq, event));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = listener.local_addr().unwrap();
    let receiver_task = tokio::spawn(async move {
        axum::serve(listener, receiver).await.unwrap();
    });

    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(config_dir.path().join("hook.secret"), "s3cret\n").unwrap();
    let config_path = config_dir.path().join("webhooks.json");
    let config = json!([{
        "id": "ops",
        "url": format!("http://{receiver_addr}/hook"),
        "secret_file": "hook.secret",
        "events": ["revoked"]
    }]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let state_path = config_dir.path().join("webhooks.state");
    let setup = WebhookSetup {
        config: config_path,
        state: state_path.clone(),
        retry: RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            poll: Duration::from_millis(20),
        },
    };
    let server = TestServer::start_with(|c| c.webhooks = Some(setup)).await;

    let listed = server.get("/v1/webhooks").await;
    listed.expect(200);
    assert_eq!(listed.json["endpoints"][0]["id"], "ops");
    assert!(!listed.text.contains("s3cret"));

    let (key_id, _) = server.mint(json!({"owner": "acme"})).await;
    server
        .post(&format!("/v1/keys/{key_id}/revoke"), json!({}))
        .await
        .expect(200);

    // Delivery is asynchronous: wait for the status to show it, at most 20 seconds.
    let mut status = Value::Null;
    for _ in 0..400 {
        status = server.get("/v1/webhooks").await.json;
        if status["endpoints"][0]["delivered"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["endpoints"][0]["delivered"], 1, "{status}");
    let delivered = received.lock().unwrap().clone();
    assert_eq!(
        delivered.len(),
        1,
        "one revoked event delivered: {delivered:?}"
    );
    assert_eq!(delivered[0].1["kind"], "revoked");
    assert_eq!(delivered[0].1["key_id"], key_id.as_str());
    assert_eq!(delivered[0].0, delivered[0].1["seq"].to_string());

    server.stop().await;
    assert!(
        state_path.exists(),
        "the delivery state is saved on shutdown"
    );
    receiver_task.abort();
}

/// Set in the environment of the child process that
/// [`sigterm_stops_a_server_held_by_a_slow_client`] starts: the vault the child serves.
const CHILD_VAULT: &str = "NANU_TEST_SIGTERM_CHILD_VAULT";

/// Not a test of its own: the server process of
/// [`sigterm_stops_a_server_held_by_a_slow_client`], which runs this test binary again with
/// only this test selected. It serves the vault as `nanu serve` does (`nanu_server::run`, with
/// its signal handling), until SIGTERM.
#[test]
#[ignore = "the child process of sigterm_stops_a_server_held_by_a_slow_client"]
fn serve_until_sigterm_as_a_child_process() {
    let path = std::env::var_os(CHILD_VAULT).expect("started by the sigterm test");
    let vault = Vault::open(&path, &Options::key([7; 32])).expect("open the vault");
    let config = nanu_server::Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        // Only the shutdown timeout can end a slow client's connection here.
        header_timeout: Duration::from_secs(3600),
        body_timeout: Duration::from_secs(3600),
        shutdown_timeout: Duration::from_millis(300),
        ..nanu_server::Config::default()
    };
    nanu_server::run(vault, config, |addr| println!("listening on {addr}"))
        .expect("the server stops cleanly");
    println!("stopped cleanly");
}

#[test]
fn sigterm_stops_a_server_held_by_a_slow_client() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.vault");
    let vault = Vault::create(&path, &Options::key([7; 32])).unwrap();
    let mut spec = nanu::KeySpec::new("ops");
    spec.env = "admin".to_owned();
    spec.scopes = vec!["admin".to_owned()];
    let admin = vault.mint(&spec, &nanu::Context::actor("test")).unwrap();
    let admin = admin.secret.expose().to_owned();
    vault.close().unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lifecycle::serve_until_sigterm_as_a_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_VAULT, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        let read = stdout.read_line(&mut line).unwrap();
        assert!(read > 0, "the server process ended before it listened");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };

    // A change over HTTP, which the vault's close must keep.
    let body = r#"{"owner": "acme", "name": "made-before-sigterm"}"#;
    let mut client = TcpStream::connect(&addr).unwrap();
    write!(
        client,
        "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // A client that sends half its headers and then nothing, and one answered after it, so
    // that the slow one is surely in the server's hands.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: nanu.test\r\n")
        .unwrap();
    let mut probe = TcpStream::connect(&addr).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: nanu.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    probe.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    // Bounded by the shutdown timeout (300 ms); a minute only keeps a failure from hanging.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the server process was still running a minute after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}; the server said: {rest}");
    assert!(rest.contains("stopped cleanly"), "{rest}");

    // The slow connection was closed, and the vault holds the change.
    let mut left = Vec::new();
    let _ = slow.read_to_end(&mut left);
    assert!(left.is_empty(), "{}", String::from_utf8_lossy(&left));
    let vault = Vault::open(&path, &Options::key([7; 32])).unwrap();
    let named = vault
        .list(&nanu::KeyFilter::default())
        .unwrap()
        .keys
        .into_iter()
        .any(|key| key.name == "made-before-sigterm");
    assert!(named, "the key minted over HTTP survived the stop");
    assert!(vault.verify_audit().unwrap().ok);
    vault.close().unwrap();
}

#[test]
fn listening_beyond_loopback_is_warned_about() {
    use nanu_server::exposure_warning;
    use std::net::SocketAddr;

    for exposed in [
        "0.0.0.0:7878",
        "[::]:7878",
        "192.0.2.10:80",
        "[2001:db8::1]:7878",
    ] {
        let addr: SocketAddr = exposed.parse().unwrap();
        let warning = exposure_warning(addr).unwrap_or_else(|| panic!("no warning for {addr}"));
        assert!(warning.contains(&addr.to_string()), "{warning}");
        assert!(warning.contains("other hosts can reach"), "{warning}");
        assert!(warning.contains("without TLS"), "{warning}");
    }
    for loopback in [
        "127.0.0.1:7878",
        "127.8.9.10:1",
        "[::1]:7878",
        "[::ffff:127.0.0.1]:7878",
    ] {
        let addr: SocketAddr = loopback.parse().unwrap();
        assert_eq!(exposure_warning(addr), None, "{addr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_is_a_lowercase_io_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::create(dir.path().join("v"), &Options::key([7; 32])).unwrap());
    let config = nanu_server::Config {
        listen: addr,
        ..nanu_server::Config::default()
    };
    let err = nanu_server::Server::bind(vault.clone(), config)
        .await
        .expect_err("the address is taken");
    assert!(
        matches!(err, nanu_server::ServeError::Bind { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("cannot listen on {addr}: address already in use")
    );
    vault.close().unwrap();
}
