//! The OpenAPI 3.1 document, generated from the routes and the core's types. It is checked in
//! as `server/openapi.json`; a test fails when that copy is stale.

use std::sync::OnceLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::{keys, meta, owners, prices, reports, traffic};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nanu admin API",
        description = "The admin server of a nanu vault (`nanu serve`): keys, owners, prices, \
            usage, events, the audit trail, webhook status, and the request path (verify, \
            charge, release) over HTTP. Every `/v1` call needs an admin key (a key of env \
            `admin`) as `Authorization: Bearer <secret>`, holding the scope the call names \
            (or `admin`). Money is integer micro-units of the vault's currency.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        meta::healthz,
        meta::openapi,
        keys::mint,
        keys::list,
        keys::get,
        keys::update,
        keys::rotate,
        keys::revoke,
        keys::remaining,
        owners::list,
        owners::get,
        owners::set_limits,
        owners::revoke,
        prices::list,
        prices::set,
        prices::remove,
        prices::import,
        reports::usage,
        reports::stats,
        reports::events,
        reports::audit,
        reports::audit_verify,
        meta::webhooks,
        traffic::verify,
        traffic::charge,
        traffic::release,
    ),
    components(schemas(ErrorBody, nanu::Bucket)),
    modifiers(&Errors),
    tags(
        (name = "keys", description = "mint, read, change, rotate and revoke keys"),
        (name = "owners", description = "owners and their shared limits"),
        (name = "prices", description = "the price table"),
        (name = "reports", description = "usage, counts, events and the audit trail"),
        (name = "traffic", description = "the request path of a gateway: verify, charge, release"),
        (name = "server", description = "health, this document and webhook delivery"),
    ),
)]
struct ApiDoc;

/// Adds the bearer scheme and the error answers every `/v1` route can give, so that each route
/// lists only what is particular to it.
struct Errors;

impl Modify for Errors {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let has_id = path.contains('{');
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                add(
                    operation,
                    "400",
                    concat!(
                        "malformed input: bad json, a wrong type, an unknown field or query ",
                        "parameter, a bad query value, or an argument the vault refuses"
                    ),
                );
                add(
                    operation,
                    "401",
                    "no bearer token, or not a usable admin key",
                );
                add(operation, "403", "the admin key lacks the scope");
                if has_id {
                    add(operation, "404", "no such key, owner or price");
                }
                if has_body {
                    add(
                        operation,
                        "408",
                        "the body did not arrive within the server's body timeout",
                    );
                    add(operation, "413", "the body is over the size limit");
                }
                add(
                    operation,
                    "429",
                    "the admin key's own limits refuse more calls for now",
                );
                add(
                    operation,
                    "500",
                    "the vault file could not be read or written",
                );
            }
        }
    }
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status.to_owned(), response.into());
}

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline, as checked in; built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut value = match serde_json::to_value(document()) {
            Ok(value) => value,
            Err(err) => return format!("{{\"error\": \"cannot render the document: {err}\"}}\n"),
        };
        mark_unsigned(&mut value);
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    })
}

/// utoipa writes a `u64` as `format: int64, minimum: 0`, which tools read as at most 2^63 - 1;
/// the API takes any `u64`. Such integers become `format: uint64` with the true maximum.
fn mark_unsigned(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let unsigned = map.get("format").and_then(|f| f.as_str()) == Some("int64")
                && map.get("minimum").and_then(|m| m.as_u64()) == Some(0);
            if unsigned {
                map.insert("format".to_owned(), "uint64".into());
                if !map.contains_key("maximum") {
                    map.insert("maximum".to_owned(), u64::MAX.into());
                }
            }
            map.values_mut().for_each(mark_unsigned);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mark_unsigned),
        _ => {}
    }
}
