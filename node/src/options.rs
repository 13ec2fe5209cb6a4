//! How a vault is opened, and the per-call context of administrative calls.

use std::time::Duration;

use crate::arg::Arg;
use crate::error::{Result, from_core, invalid};

/// Reads `{ passphrase | key, durability, concurrency, kdf, prefix, currency, flushIntervalMs,
/// holdTimeoutMs, expiringLeadMs, idempotencyWindowMs, leaseTimeoutMs }`.
pub fn vault_options(arg: Arg<'_>) -> Result<nanu::Options> {
    let fields = arg.fields("options")?;
    let mut unlock = None;
    let mut options = nanu::Options::passphrase("");
    for (name, value) in fields {
        let what = format!("options.{name}");
        match name.as_str() {
            "passphrase" | "key" => {
                if unlock.is_some() {
                    return Err(invalid("options: give passphrase or key, not both"));
                }
                unlock = Some(parse_unlock(&name, value)?);
            }
            "durability" => {
                let text = value.string(&what)?;
                options.durability = text.parse().map_err(from_core)?;
            }
            "concurrency" => {
                let text = value.string(&what)?;
                options.concurrency = text.parse().map_err(from_core)?;
            }
            "kdf" => options.kdf = kdf(value)?,
            "prefix" => options.prefix = value.string(&what)?,
            "currency" => options.currency = value.string(&what)?,
            "flushIntervalMs" => options.flush_interval = millis(value, &what)?,
            "holdTimeoutMs" => options.hold_timeout = millis(value, &what)?,
            "expiringLeadMs" => options.expiring_lead = millis(value, &what)?,
            "idempotencyWindowMs" => options.idempotency_window = millis(value, &what)?,
            "leaseTimeoutMs" => options.lease_timeout = millis(value, &what)?,
            _ => {
                return Err(invalid(format!(
                    "options: unknown field {name:?} (expected passphrase, key, durability, \
                     concurrency, kdf, prefix, currency, flushIntervalMs, holdTimeoutMs, \
                     expiringLeadMs, idempotencyWindowMs or leaseTimeoutMs)"
                )));
            }
        }
    }
    options.unlock = unlock.ok_or_else(|| invalid("options: give a passphrase or a key"))?;
    Ok(options)
}

/// A passphrase (a string) or a raw 32-byte key (a `Buffer`, a `Uint8Array` or 64 hex digits).
fn parse_unlock(name: &str, value: Arg<'_>) -> Result<nanu::Unlock> {
    if name == "passphrase" {
        let passphrase = value.string("options.passphrase")?;
        if passphrase.is_empty() {
            return Err(invalid("options.passphrase must not be empty"));
        }
        return Ok(nanu::Unlock::passphrase(passphrase));
    }
    if let Some(bytes) = value.bytes() {
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("options.key must be 32 bytes, not {}", bytes.len())))?;
        return Ok(nanu::Unlock::key(key));
    }
    let hex = value
        .string("options.key")
        .map_err(|_| invalid("options.key must be a Buffer, a Uint8Array or 64 hex digits"))?;
    nanu::Unlock::key_hex(&hex).map_err(from_core)
}

/// Argon2id parameters: `{ mCostKib, tCost, pCost }`, each defaulting to the vault default.
pub fn kdf(arg: Arg<'_>) -> Result<nanu::KdfParams> {
    let mut kdf = nanu::KdfParams::DEFAULT;
    for (name, value) in arg.fields("kdf")? {
        let what = format!("kdf.{name}");
        let slot = match name.as_str() {
            "mCostKib" => &mut kdf.m_cost_kib,
            "tCost" => &mut kdf.t_cost,
            "pCost" => &mut kdf.p_cost,
            _ => {
                return Err(invalid(format!(
                    "kdf: unknown field {name:?} (expected mCostKib, tCost or pCost)"
                )));
            }
        };
        *slot = u32::try_from(value.u64(&what)?)
            .map_err(|_| invalid(format!("{what} is too large")))?;
    }
    Ok(kdf)
}

fn millis(value: Arg<'_>, what: &str) -> Result<Duration> {
    Ok(Duration::from_millis(value.u64(what)?))
}

/// Reads `{ at, actor }`, the context of an administrative call; absent means now and no actor.
pub fn context(arg: Arg<'_>) -> Result<nanu::Context> {
    let mut ctx = nanu::Context::default();
    let Some(arg) = arg.present() else {
        return Ok(ctx);
    };
    for (name, value) in arg.fields("context")? {
        if !context_field(&mut ctx, &name, value, "context")? {
            return Err(invalid(format!(
                "context: unknown field {name:?} (expected at or actor)"
            )));
        }
    }
    Ok(ctx)
}

/// Reads `at` or `actor` into `ctx`; returns whether `name` was one of them.
pub fn context_field(
    ctx: &mut nanu::Context,
    name: &str,
    value: Arg<'_>,
    what: &str,
) -> Result<bool> {
    match name {
        "at" => ctx.at = value.opt_time(&format!("{what}.at"))?,
        "actor" => ctx.actor = value.opt_string(&format!("{what}.actor"))?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Reads `{ graceMs, at, actor }` for `rotate` and `rotateDue`; the grace defaults to zero,
/// which ends the previous secret at once.
pub fn rotate_options(arg: Arg<'_>) -> Result<(Duration, nanu::Context)> {
    let mut ctx = nanu::Context::default();
    let mut grace = Duration::ZERO;
    let Some(arg) = arg.present() else {
        return Ok((grace, ctx));
    };
    for (name, value) in arg.fields("options")? {
        if name == "graceMs" {
            grace = millis(value, "options.graceMs")?;
        } else if !context_field(&mut ctx, &name, value, "options")? {
            return Err(invalid(format!(
                "options: unknown field {name:?} (expected graceMs, at or actor)"
            )));
        }
    }
    Ok((grace, ctx))
}

/// Reads `{ passphrase | key, kdf, at, actor }` for `rekey`.
pub fn rekey_options(arg: Arg<'_>) -> Result<(nanu::Unlock, nanu::KdfParams, nanu::Context)> {
    let mut ctx = nanu::Context::default();
    let mut unlock = None;
    let mut kdf_params = nanu::KdfParams::DEFAULT;
    for (name, value) in arg.fields("options")? {
        match name.as_str() {
            "passphrase" | "key" => {
                if unlock.is_some() {
                    return Err(invalid("options: give passphrase or key, not both"));
                }
                unlock = Some(parse_unlock(&name, value)?);
            }
            "kdf" => kdf_params = kdf(value)?,
            _ => {
                if !context_field(&mut ctx, &name, value, "options")? {
                    return Err(invalid(format!(
                        "options: unknown field {name:?} (expected passphrase, key, kdf, at or \
                         actor)"
                    )));
                }
            }
        }
    }
    let unlock = unlock.ok_or_else(|| invalid("options: give a passphrase or a key"))?;
    Ok((unlock, kdf_params, ctx))
}
