//! The checked-in OpenAPI document (`server/openapi.json`) is the one the code generates.

use std::path::PathBuf;

#[test]
fn checked_in_openapi_document_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = nanu_server::openapi_json();
    if std::env::var_os("NANU_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated).expect("write server/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "server/openapi.json is stale: the routes or types changed. Regenerate it with\n  \
         NANU_UPDATE_OPENAPI=1 cargo test -p nanu-server --test openapi\nand commit the result."
    );
}

#[test]
fn document_is_openapi_3_1_with_every_route() {
    let doc: serde_json::Value = serde_json::from_str(nanu_server::openapi_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/healthz", "get"),
        ("/openapi.json", "get"),
        ("/v1/keys", "post"),
        ("/v1/keys", "get"),
        ("/v1/keys/{key_id}", "get"),
        ("/v1/keys/{key_id}", "patch"),
        ("/v1/keys/{key_id}/rotate", "post"),
        ("/v1/keys/{key_id}/revoke", "post"),
        ("/v1/keys/{key_id}/remaining", "get"),
        ("/v1/owners", "get"),
        ("/v1/owners/{owner}", "get"),
        ("/v1/owners/{owner}/limits", "put"),
        ("/v1/owners/{owner}/revoke", "post"),
        ("/v1/prices", "get"),
        ("/v1/prices/{model}", "put"),
        ("/v1/prices/{model}", "delete"),
        ("/v1/prices/import", "post"),
        ("/v1/usage", "get"),
        ("/v1/stats", "get"),
        ("/v1/events", "get"),
        ("/v1/audit", "get"),
        ("/v1/audit/verify", "get"),
        ("/v1/webhooks", "get"),
        ("/v1/verify", "post"),
        ("/v1/charge", "post"),
        ("/v1/release", "post"),
    ];
    for (path, method) in expected {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is missing");
        if path.starts_with("/v1/") {
            assert!(
                operation["security"].is_array(),
                "{method} {path} names no scope"
            );
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        }
    }
    let operations: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations,
        expected.len(),
        "a route is documented that the test does not know"
    );
}
