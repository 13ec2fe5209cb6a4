//! Keys and limits as JavaScript receives them.

use std::collections::BTreeMap;

use napi_derive::napi;

use crate::shape::js_object;
use crate::value::{U64, millis};

/// A freshly minted or rotated key: the only time its secret is seen.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct Minted {
    /// The public key id (`key_...`).
    pub key_id: String,
    /// The secret to hand to the user. It is never stored and cannot be shown again.
    pub secret: String,
}

js_object!(Minted { key_id, secret });

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl From<nanu::Minted> for Minted {
    fn from(minted: nanu::Minted) -> Minted {
        Minted {
            secret: minted.secret.expose().to_owned(),
            key_id: minted.key_id,
        }
    }
}

/// One limit: at most `amount` of `unit` per `window`.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct Limit {
    /// `requests`, `tokens`, `input_tokens`, `output_tokens` or `cost` (micro-units).
    #[napi(ts_type = "Unit")]
    pub unit: String,
    /// The most that may be used in one window.
    #[napi(ts_type = "number | bigint")]
    pub amount: U64,
    /// `lifetime`, `rolling`, or a calendar period: `hour`, `day`, `week`, `month`, `year`.
    pub window: String,
    /// The IANA zone of a calendar window.
    pub tz: Option<String>,
    /// The day a monthly window starts on.
    pub anchor: Option<u32>,
    /// The refill period of a rolling window (`1m`, `1h 30m`).
    pub every: Option<String>,
    /// Percents at which a threshold event fires.
    pub alert_at: Vec<u32>,
    /// The text form (`cost=$10/month`), which every limit argument also accepts.
    pub text: String,
}

js_object!(Limit {
    unit,
    amount,
    window,
    tz,
    anchor,
    every,
    alert_at,
    text
});

impl From<&nanu::Limit> for Limit {
    fn from(limit: &nanu::Limit) -> Limit {
        let (tz, anchor, every) = match &limit.window {
            nanu::Window::Lifetime => (None, None, None),
            nanu::Window::Calendar { tz, anchor, .. } => {
                (Some(tz.clone()), anchor.map(u32::from), None)
            }
            nanu::Window::Rolling { every } => (None, None, Some(nanu::format_duration(*every))),
        };
        Limit {
            unit: limit.unit.as_str().to_owned(),
            amount: U64(limit.amount),
            window: limit.window.kind().to_owned(),
            tz,
            anchor,
            every,
            alert_at: limit.alert_at.iter().map(|&p| u32::from(p)).collect(),
            text: limit.to_string(),
        }
    }
}

/// Converts a list of limits.
pub fn limits(limits: &[nanu::Limit]) -> Vec<Limit> {
    limits.iter().map(Limit::from).collect()
}

/// A key as stored, without its secret. Times are epoch milliseconds.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct KeyInfo {
    /// Public, stable id.
    pub key_id: String,
    /// The owner.
    pub owner: String,
    /// The label.
    pub name: String,
    /// The environment fixed at mint.
    pub env: String,
    /// `active`, `disabled`, `revoked` or `expired` (derived at the time of the call).
    #[napi(ts_type = "KeyStatus")]
    pub status: String,
    /// When minted.
    pub created_at: i64,
    /// When last changed by an administrative call.
    pub updated_at: i64,
    /// When the current secret was issued.
    pub rotated_at: i64,
    /// Until when the previous secret still works, during a rotation grace period.
    pub grace_until: Option<i64>,
    /// When the key expires.
    pub expires_at: Option<i64>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Allowed models; `null` allows every model.
    pub models: Option<Vec<String>>,
    /// Model aliases.
    pub aliases: BTreeMap<String, String>,
    /// Allowed client networks; `null` allows every address.
    pub ips: Option<Vec<String>>,
    /// The key's own limits.
    pub limits: Vec<Limit>,
    /// Rotation period.
    pub rotate_every: Option<String>,
    /// The metadata object.
    #[napi(ts_type = "Record<string, unknown>")]
    pub metadata: serde_json::Value,
}

js_object!(KeyInfo {
    key_id,
    owner,
    name,
    env,
    status,
    created_at,
    updated_at,
    rotated_at,
    grace_until,
    expires_at,
    scopes,
    models,
    aliases,
    ips,
    limits,
    rotate_every,
    metadata
});

impl From<nanu::KeyInfo> for KeyInfo {
    fn from(info: nanu::KeyInfo) -> KeyInfo {
        KeyInfo {
            key_id: info.key_id,
            owner: info.owner,
            name: info.name,
            env: info.env,
            status: info.status.as_str().to_owned(),
            created_at: millis(info.created_at),
            updated_at: millis(info.updated_at),
            rotated_at: millis(info.rotated_at),
            grace_until: info.grace_until.map(millis),
            expires_at: info.expires_at.map(millis),
            scopes: info.scopes,
            models: info.models,
            aliases: info.aliases,
            ips: info.ips,
            limits: limits(&info.limits),
            rotate_every: info.rotate_every,
            metadata: serde_json::Value::Object(info.metadata),
        }
    }
}

/// One page of `list`, in key id order.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct KeyPage {
    /// The keys.
    pub keys: Vec<KeyInfo>,
    /// Pass as `after` to read the next page; `null` on the last page.
    pub next: Option<String>,
}

js_object!(KeyPage { keys, next });

impl From<nanu::KeyPage> for KeyPage {
    fn from(page: nanu::KeyPage) -> KeyPage {
        KeyPage {
            keys: page.keys.into_iter().map(KeyInfo::from).collect(),
            next: page.next,
        }
    }
}
