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
