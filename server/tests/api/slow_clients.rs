//! Clients that send slowly or stop half-way: their headers and bodies have deadlines, and a
//! stop does not wait for them longer than the shutdown timeout. Raw TCP connections, so that a
//! test sends exactly the bytes it means to.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::TestServer;

/// How long a test waits for the server to close a connection before it calls it left open.
/// The timeouts under test are a fraction of a second; this only keeps a failing test from
/// hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// A connection that has sent `bytes` and then nothing more.
async fn stalled(server: &TestServer, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    stream
}

/// Everything the server sends until it closes the connection; fails the test if it does not.
async fn until_closed(mut stream: TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server left the connection open; it had sent: {}",
        String::from_utf8_lossy(&received)
    );
    String::from_utf8_lossy(&received).into_owned()
}

/// The head of a POST to `/v1/keys` with the admin key and the given framing headers.
fn post_head(server: &TestServer, framing: &str) -> String {
    format!(
        "POST /v1/keys HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{framing}\r\n\r\n",
        server.addr, server.admin
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed() {
    let server =
        TestServer::start_with(|config| config.header_timeout = Duration::from_millis(200)).await;

    // Many at once, as a flood would open them: silent, cut inside the request line, and cut
    // inside the headers.
    let partials: [&[u8]; 3] = [
        b"",
        b"GET /heal",
        b"GET /healthz HTTP/1.1\r\nHost: nanu.test\r\nX-Slow: 1\r\n",
    ];
    let mut connections = Vec::new();
    for i in 0..150 {
        connections.push(stalled(&server, partials[i % partials.len()]).await);
    }
    for connection in connections {
        let answer = until_closed(connection).await;
        assert!(answer.is_empty(), "no request, no answer: {answer}");
    }

    // A kept-alive connection is answered, then closed once it idles past the same timeout.
    let kept = stalled(&server, b"GET /healthz HTTP/1.1\r\nHost: nanu.test\r\n\r\n").await;
    let answer = until_closed(kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"ok\""), "{answer}");

    // The server itself goes on answering.
    server.get("/healthz").await.expect(200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_is_answered_408_and_changes_nothing() {
    let server =
        TestServer::start_with(|config| config.body_timeout = Duration::from_millis(300)).await;
    let keys_before = server.vault.stats().keys;
    let audit_before = server.vault.audit(0, 10_000).unwrap().len();

    // A length that promises more than comes, and a chunked body that stops after one chunk.
    let cut_short = format!("{}{{\"owner\": ", post_head(&server, "Content-Length: 100"));
    let chunked = format!(
        "{}9\r\n{{\"owner\":\r\n",
        post_head(&server, "Transfer-Encoding: chunked")
    );
    for request in [cut_short, chunked] {
        let answer = until_closed(stalled(&server, request.as_bytes()).await).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
        assert!(
            answer.contains("did not arrive within 300ms"),
            "the message says which limit: {answer}"
        );
    }
    assert_eq!(server.vault.stats().keys, keys_before, "nothing was minted");
    assert_eq!(server.vault.audit(0, 10_000).unwrap().len(), audit_before);

    // A body that comes at once is served as ever.
    server
        .post("/v1/keys", json!({"owner": "acme"}))
        .await
        .expect(201);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_slow_clients_no_longer_than_the_shutdown_timeout() {
    // Clients this slow are not timed out by the header and body deadlines here: only the
    // shutdown timeout can end their connections.
    let server = TestServer::start_with(|config| {
        config.header_timeout = Duration::from_secs(3600);
        config.body_timeout = Duration::from_secs(3600);
        config.shutdown_timeout = Duration::from_millis(200);
    })
    .await;
    let half_headers = stalled(&server, b"GET /healthz HTTP/1.1\r\nHost: nanu.test\r\n").await;
    let half_body = format!("{}{{\"owner\": ", post_head(&server, "Content-Length: 100"));
    let half_body = stalled(&server, half_body.as_bytes()).await;
    // Connections are accepted in order: once a later one is answered, both slow ones are in
    // the server's hands.
    server.get("/healthz").await.expect(200);

    let path = server.vault_path();
    let stopped = tokio::time::timeout(PATIENCE, server.stop()).await;
    let _dir = stopped.expect("the server stopped although two clients were still sending");

    // Their connections were closed, without an answer.
    assert_eq!(until_closed(half_headers).await, "");
    assert_eq!(until_closed(half_body).await, "");
    // The vault was closed cleanly and opens again.
    let vault = nanu::Vault::open(&path, &nanu::Options::key([7; 32])).expect("reopen");
    assert!(vault.verify_audit().expect("audit").ok);
    vault.close().expect("close");
}
