//! Usage reports, counts, events, the audit trail and webhook status.

use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_filtered_grouped_and_bucketed_like_the_library() {
    let server = TestServer::start().await;
    let (acme, acme_secret) = server.mint(json!({"owner": "acme"})).await;
    let (globex, _) = server.mint(json!({"owner": "globex", "env": "test"})).await;
    let charges = [
        (&acme, "gpt-4o", 100, 10, 1000),
        (&acme, "gpt-4o", 200, 20, 2000),
        (&acme, "claude", 300, 30, 3000),
        (&globex, "gpt-4o", 400, 40, 4000),
    ];
    for (i, (key, model, input, output, cost)) in charges.iter().enumerate() {
        server
            .post(
                "/v1/charge",
                json!({
                    "key_id": key, "request_id": format!("r{i}"), "model": model,
                    "input_tokens": input, "output_tokens": output, "cost": cost
                }),
            )
            .await
            .expect(200);
    }
    // A denied verify of a known key counts as denied.
    server
        .post("/v1/verify", json!({"secret": acme_secret, "env": "test"}))
        .await
        .expect(200);

    let total = server.get("/v1/usage").await;
    total.expect(200);
    let rows = total.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["requests"], 4);
    assert_eq!(rows[0]["denied"], 1);
    assert_eq!(rows[0]["cost"], 10_000);
    assert_eq!(rows[0]["tokens"], 1100);

    let by = server.get("/v1/usage?group_by=model,owner").await;
    by.expect(200);
    let rows = by.json["rows"].as_array().unwrap();
    let find = |model: &str, owner: &str| {
        rows.iter()
            .find(|r| r["group"]["model"] == model && r["group"]["owner"] == owner)
            .unwrap_or_else(|| panic!("no row for {model} {owner}: {rows:?}"))
    };
    assert_eq!(find("gpt-4o", "acme")["cost"], 3000);
    assert_eq!(find("claude", "acme")["input_tokens"], 300);
    assert_eq!(find("gpt-4o", "globex")["output_tokens"], 40);

    let filtered = server
        .get(&format!("/v1/usage?key_id={acme}&model=gpt-4o"))
        .await;
    assert_eq!(filtered.json["rows"][0]["cost"], 3000);
    let env = server.get("/v1/usage?env=test").await;
    assert_eq!(env.json["rows"][0]["cost"], 4000);

    // The same query through the library gives the same rows.
    let query = nanu::UsageQuery {
        group_by: vec![nanu::Dim::Model, nanu::Dim::Owner],
        ..nanu::UsageQuery::default()
    };
    let library = serde_json::to_value(server.vault.usage(&query).unwrap()).unwrap();
    assert_eq!(by.json["rows"], library);

    let bucketed = server
        .get("/v1/usage?bucket=hour&tz=Asia/Kolkata&group_by=owner")
        .await;
    bucketed.expect(200);
    let bucket = bucketed.json["rows"][0]["bucket"].as_str().unwrap();
    // Kolkata is UTC+5:30: its hours start at :30 UTC.
    assert!(bucket.contains(":30:00"), "{bucket}");

    let window = server
        .get("/v1/usage?from=2000-01-01&to=2000-01-02T00:00:00Z")
        .await;
    window.expect(200);
    assert_eq!(window.json["rows"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_keys_owners_holds_and_garbage() {
    let server = TestServer::start().await;
    let (_, secret) = server.mint(json!({"owner": "acme"})).await;
    server.verify("garbage").await;
    let held = server
        .post(
            "/v1/verify",
            json!({"secret": secret, "hold": {"input_tokens": 10}}),
        )
        .await;
    assert!(held.json["hold_id"].is_u64());

    let stats = server.get("/v1/stats").await;
    stats.expect(200);
    assert_eq!(stats.json["keys"], 2);
    assert_eq!(stats.json["owners"], 2);
    assert_eq!(stats.json["malformed"], 1);
    assert_eq!(stats.json["holds"], 1);
    assert_eq!(stats.json["corrupt_keys"], 0);
    assert_eq!(stats.json["currency"], "usd");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_audit_page_by_sequence() {
    let server = TestServer::start().await;
    let (key_id, _) = server
        .mint(json!({
            "owner": "acme",
            "limits": [{"unit": "tokens", "amount": 100, "window": "lifetime", "alert_at": [50]}]
        }))
        .await;
    for i in 0..3 {
        server
            .post(
                "/v1/charge",
                json!({"key_id": key_id, "request_id": format!("r{i}"), "input_tokens": 40}),
            )
            .await
            .expect(200);
    }
    let events = server.get("/v1/events").await;
    events.expect(200);
    let kinds: Vec<&str> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["threshold", "exhausted"]);
    let first_seq = events.json["events"][0]["seq"].as_u64().unwrap();
    let after = server
        .get(&format!("/v1/events?after={first_seq}&limit=5"))
        .await;
    assert_eq!(after.json["events"].as_array().unwrap().len(), 1);
    assert_eq!(after.json["events"][0]["kind"], "exhausted");
    let stats = server.get("/v1/stats").await;
    let newest = after.json["events"][0]["seq"].as_u64().unwrap();
    assert_eq!(stats.json["last_event_seq"], newest);

    let audit = server.get("/v1/audit?limit=2").await;
    audit.expect(200);
    let records = audit.json["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["seq"], 1);
    assert_eq!(records[0]["action"], "create");
    let rest = server.get("/v1/audit?after=2").await;
    assert_eq!(rest.json["records"][0]["seq"], 3);

    let check = server.get("/v1/audit/verify").await;
    check.expect(200);
    assert_eq!(check.json["ok"], true);
    assert_eq!(check.json["records"], 3);
    assert!(check.json["first_bad"].is_null());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_list_is_empty_without_configuration() {
    let server = TestServer::start().await;
    let answer = server.get("/v1/webhooks").await;
    answer.expect(200);
    assert_eq!(answer.json, json!({"endpoints": []}));
    server.stop().await;
}
