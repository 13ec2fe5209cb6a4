//! Events, the alert callback and the audit trail.

use napi::bindgen_prelude::{FromNapiValue, Function, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::arg::Arg;
use crate::error::{Result, from_napi};
use crate::shape::js_object;
use crate::value::{U64, millis};
use crate::verdict::LimitStatus;

/// One event, ordered by `seq` (from 1, without gaps).
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct Event {
    /// Sequence number.
    #[napi(ts_type = "number | bigint")]
    pub seq: U64,
    /// When it happened, in epoch milliseconds.
    pub at: i64,
    /// What happened.
    #[napi(ts_type = "EventKind")]
    pub kind: &'static str,
    /// The key concerned.
    pub key_id: Option<String>,
    /// The owner concerned.
    pub owner: Option<String>,
    /// For threshold events, the percent crossed.
    pub percent: Option<u32>,
    /// For limit events, the limit's state right after the crossing.
    pub limit: Option<LimitStatus>,
    /// For unpriced events, the model.
    pub model: Option<String>,
}

js_object!(Event {
    seq,
    at,
    kind,
    key_id,
    owner,
    percent,
    limit,
    model
});

impl From<nanu::Event> for Event {
    fn from(e: nanu::Event) -> Event {
        Event {
            seq: U64(e.seq),
            at: millis(e.at),
            kind: e.kind.as_str(),
            key_id: e.key_id,
            owner: e.owner,
            percent: e.percent.map(u32::from),
            limit: e.limit.map(LimitStatus::from),
            model: e.model,
        }
    }
}

/// The JavaScript callback of a subscription, callable from the vault's commit thread. It
/// does not keep the Node event loop alive: a process with nothing else to do exits.
pub type Listener = ThreadsafeFunction<Event, Unknown<'static>, Event, napi::Status, false, true>;

/// Wraps a JavaScript function as a listener.
pub fn listener(callback: Arg<'_>) -> Result<Listener> {
    let callback = callback.function("callback")?;
    // SAFETY: the value is a function of the current call (checked above).
    let function: Function<'_, Event, Unknown<'static>> =
        unsafe { Function::from_napi_value(callback.env(), callback.raw()) }
            .map_err(|e| from_napi("callback", e))?;
    function
        .build_threadsafe_function::<Event>()
        .weak::<true>()
        .build()
        .map_err(|e| from_napi("callback", e))
}

/// Hands an event to a listener; the callback runs on the JavaScript thread later.
pub fn deliver(listener: &Listener, event: &nanu::Event) {
    listener.call(
        Event::from(event.clone()),
        ThreadsafeFunctionCallMode::NonBlocking,
    );
}

/// One administrative change, hash-chained to the one before.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct AuditRecord {
    /// Sequence number, from 1, without gaps.
    #[napi(ts_type = "number | bigint")]
    pub seq: U64,
    /// When, in epoch milliseconds.
    pub at: i64,
    /// What was done (`mint`, `update`, `rotate`, `revoke`, `revoke_owner`, ...).
    pub action: String,
    /// The key id or owner acted upon.
    pub target: String,
    /// Who did it, as the caller said.
    pub actor: Option<String>,
    /// What changed (never a secret), in the vault's JSON form.
    #[napi(ts_type = "unknown")]
    pub detail: serde_json::Value,
    /// Hex of the chained hash.
    pub hash: String,
}

js_object!(AuditRecord {
    seq,
    at,
    action,
    target,
    actor,
    detail,
    hash
});

impl From<nanu::AuditRecord> for AuditRecord {
    fn from(r: nanu::AuditRecord) -> AuditRecord {
        AuditRecord {
            seq: U64(r.seq),
            at: millis(r.at),
            action: r.action,
            target: r.target,
            actor: r.actor,
            detail: r.detail,
            hash: r.hash,
        }
    }
}

/// The first bad record of an audit chain.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct AuditProblem {
    /// Its sequence number.
    #[napi(ts_type = "number | bigint")]
    pub seq: U64,
    /// What is wrong with it.
    pub problem: String,
}

js_object!(AuditProblem { seq, problem });

/// The result of checking the audit chain.
#[derive(Debug)]
#[napi(
    object,
    object_from_js = false,
    object_to_js = false,
    use_nullable = true
)]
pub struct AuditCheck {
    /// Records checked.
    #[napi(ts_type = "number | bigint")]
    pub records: U64,
    /// Whether the chain is intact.
    pub ok: bool,
    /// The first record found removed, altered or unreadable.
    pub first_bad: Option<AuditProblem>,
}

js_object!(AuditCheck {
    records,
    ok,
    first_bad
});

impl From<nanu::AuditCheck> for AuditCheck {
    fn from(c: nanu::AuditCheck) -> AuditCheck {
        AuditCheck {
            records: U64(c.records),
            ok: c.ok,
            first_bad: c.first_bad.map(|(seq, problem)| AuditProblem {
                seq: U64(seq),
                problem,
            }),
        }
    }
}
