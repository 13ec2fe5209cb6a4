//! Key commands: mint, ls, show, update, rotate, rotate-due, revoke.

use nanu::{Durability, KeyFilter, KeyInfo, KeyPatch, KeySpec, Minted, Status, Vault};
use serde::Serialize;

use crate::access;
use crate::args::{
    Global, KeyArg, LsArgs, MintArgs, PolicyArgs, RevokeArgs, RotateArgs, RotateDueArgs, StatusArg,
    UpdateArgs,
};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::{self, print, print_json};
use crate::parse;

/// A freshly issued secret, as printed.
#[derive(Serialize)]
struct Issued<'a> {
    key_id: &'a str,
    secret: &'a str,
}

fn print_issued(global: &Global, minted: &[Minted]) -> Outcome {
    let issued: Vec<Issued<'_>> = minted
        .iter()
        .map(|m| Issued {
            key_id: &m.key_id,
            secret: m.secret.expose(),
        })
        .collect();
    let printed = if global.json {
        match issued.as_slice() {
            [one] => print_json(one),
            many => print_json(many),
        }
    } else {
        issued
            .iter()
            .try_for_each(|one| print(&format!("key_id  {}\nsecret  {}", one.key_id, one.secret)))
    };

    // The keys exist now, whatever happened to stdout. A secret that was not shown is lost,
    // so even a reader that went away is an error here, and the error names the keys (never
    // the secrets) so that the operator can rotate or revoke them.
    if let Err(failure) = printed {
        let ids: Vec<&str> = issued.iter().map(|one| one.key_id).collect();
        return Err(Failure::with_code(
            Exit::Storage,
            "storage",
            format!(
                "{}; the secret of {} may not have been shown: rotate or revoke the key",
                failure.message,
                ids.join(", ")
            ),
        ));
    }
    if !issued.is_empty() {
        output::note("nanu: the secret is shown once and never stored: keep it now");
    }
    Ok(())
}

/// `nanu mint`.
pub fn mint(global: &Global, args: &MintArgs) -> Outcome {
    let policy = &args.policy;
    let spec = KeySpec {
        owner: args.owner.clone(),
        name: policy.name.clone().unwrap_or_default(),
        env: args.env.clone(),
        scopes: policy.scopes.clone(),
        models: (!policy.models.is_empty()).then(|| policy.models.clone()),
        aliases: parse::pairs("--alias", &policy.aliases)?,
        ips: (!policy.ips.is_empty()).then(|| policy.ips.clone()),
        expires_at: parse::time_opt("--expires", policy.expires.as_deref())?,
        ttl: policy.ttl.clone(),
        limits: parse::limits(&policy.limits)?,
        rotate_every: policy.rotate_every.clone(),
        metadata: parse::metadata(&policy.meta, policy.meta_json.as_deref())?,
    };

    let vault = access::open(global, Durability::Durable)?;
    parse::limits_in_currency(&policy.limits, &vault.currency())?;
    let minted = vault.mint(&spec, &access::context(global))?;
    vault.close()?;
    print_issued(global, std::slice::from_ref(&minted))
}

/// `nanu ls`.
pub fn ls(global: &Global, args: &LsArgs) -> Outcome {
    let filter = KeyFilter {
        owner: args.owner.clone(),
        env: args.env.clone(),
        status: args.status.map(|s| match s {
            StatusArg::Active => Status::Active,
            StatusArg::Disabled => Status::Disabled,
            StatusArg::Revoked => Status::Revoked,
            StatusArg::Expired => Status::Expired,
        }),
        after: args.after.clone(),
        limit: Some(args.limit),
    };

    let vault = access::open(global, Durability::Durable)?;
    let page = vault.list(&filter)?;
    vault.close()?;
    if global.json {
        return print_json(&page);
    }
    let mut table = output::table(["key", "owner", "name", "env", "status", "limits", "created"]);
    for key in &page.keys {
        let limits: Vec<String> = key.limits.iter().map(ToString::to_string).collect();
        table.add_row(vec![
            key.key_id.clone(),
            key.owner.clone(),
            key.name.clone(),
            key.env.clone(),
            key.status.to_string(),
            output::list(&limits),
            output::time(key.created_at),
        ]);
    }
    print(&table.to_string())?;
    match &page.next {
        Some(next) => print(&format!("more: nanu ls --after {next}")),
        None => Ok(()),
    }
}

/// `nanu show KEY`.
pub fn show(global: &Global, args: &KeyArg) -> Outcome {
    let vault = access::open(global, Durability::Durable)?;
    let info = vault.get(&args.key)?;
    let remaining = vault.remaining(&args.key, None)?;
    let currency = vault.currency();
    vault.close()?;

    if global.json {
        return print_json(&serde_json::json!({ "key": info, "remaining": remaining }));
    }
    print(&key_fields(&info).to_string())?;
    if !remaining.limits.is_empty() {
        print("")?;
        print(&output::limits_table(&remaining, &currency).to_string())?;
    }
    Ok(())
}

fn key_fields(info: &KeyInfo) -> comfy_table::Table {
    let aliases: Vec<String> = info
        .aliases
        .iter()
        .map(|(alias, model)| format!("{alias}={model}"))
        .collect();
    let limits: Vec<String> = info.limits.iter().map(ToString::to_string).collect();
    output::fields(vec![
        ("key", info.key_id.clone()),
        ("owner", info.owner.clone()),
        ("name", info.name.clone()),
        ("env", info.env.clone()),
        ("status", info.status.to_string()),
        ("limits", output::list(&limits)),
        ("scopes", output::list(&info.scopes)),
        (
            "models",
            info.models
                .as_deref()
                .map_or_else(|| "any".to_owned(), output::list),
        ),
        ("aliases", output::list(&aliases)),
        (
            "ips",
            info.ips
                .as_deref()
                .map_or_else(|| "any".to_owned(), output::list),
        ),
        ("created", output::time(info.created_at)),
        ("updated", output::time(info.updated_at)),
        ("secret issued", output::time(info.rotated_at)),
        ("grace until", output::time_or_dash(info.grace_until)),
        ("expires", output::time_or_dash(info.expires_at)),
        (
            "rotate every",
            info.rotate_every.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        (
            "metadata",
            serde_json::Value::Object(info.metadata.clone()).to_string(),
        ),
    ])
}

/// `nanu update KEY`.
pub fn update(global: &Global, args: &UpdateArgs) -> Outcome {
    let policy: &PolicyArgs = &args.policy;
    let limits = parse::limits(&policy.limits)?;
    let aliases = parse::pairs("--alias", &policy.aliases)?;
    let expires_at = parse::time_opt("--expires", policy.expires.as_deref())?;
    let new_metadata = parse::metadata(&policy.meta, policy.meta_json.as_deref())?;
    let metadata_given = args.clear_meta || !policy.meta.is_empty() || policy.meta_json.is_some();

    let mut patch = KeyPatch {
        name: policy.name.clone(),
        ..KeyPatch::default()
    };
    if args.clear_limits || !limits.is_empty() {
        patch.limits = Some(limits);
    }
    if args.clear_scopes || !policy.scopes.is_empty() {
        patch.scopes = Some(policy.scopes.clone());
    }
    if args.clear_models {
        patch.models = Some(None);
    } else if !policy.models.is_empty() {
        patch.models = Some(Some(policy.models.clone()));
    }
    if args.clear_aliases || !aliases.is_empty() {
        patch.aliases = Some(aliases);
    }
    if args.clear_ips {
        patch.ips = Some(None);
    } else if !policy.ips.is_empty() {
        patch.ips = Some(Some(policy.ips.clone()));
    }
    if args.clear_expires {
        patch.expires_at = Some(None);
    } else if let Some(at) = expires_at {
        patch.expires_at = Some(Some(at));
    }
    if args.clear_rotate_every {
        patch.rotate_every = Some(None);
    } else if let Some(every) = &policy.rotate_every {
        patch.rotate_every = Some(Some(every.clone()));
    }
    if args.disable {
        patch.disabled = Some(true);
    } else if args.enable {
        patch.disabled = Some(false);
    }
    if patch == KeyPatch::default() && policy.ttl.is_none() && !metadata_given {
        return Err(Failure::invalid(format!(
            "nothing to change for key {}: give at least one flag (see nanu update --help)",
            args.key
        )));
    }

    let vault = access::open(global, Durability::Durable)?;
    parse::limits_in_currency(&policy.limits, &vault.currency())?;
    let ctx = access::context(global);
    // --ttl and metadata merges are relative to the key's current state, read here.
    let current = vault.get(&args.key)?;
    if let Some(ttl) = &policy.ttl {
        patch.expires_at = Some(Some(expiry_from_ttl(ttl)?));
    }
    if metadata_given {
        let mut merged = if args.clear_meta {
            serde_json::Map::new()
        } else {
            current.metadata
        };
        merged.extend(new_metadata);
        patch.metadata = Some(merged);
    }
    let info = vault.update(&args.key, &patch, &ctx)?;
    vault.close()?;
    if global.json {
        return print_json(&info);
    }
    print(&key_fields(&info).to_string())
}

/// Now plus a span such as `30d` or `1 month`, in UTC.
fn expiry_from_ttl(ttl: &str) -> Outcome<jiff::Timestamp> {
    let span: jiff::Span = ttl
        .trim()
        .parse()
        .map_err(|e| Failure::invalid(format!("invalid --ttl {ttl:?}: {e}")))?;
    if span.is_negative() || span.is_zero() {
        return Err(Failure::invalid(format!("--ttl {ttl:?} must be positive")));
    }
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .map_err(|e| Failure::invalid(format!("--ttl {ttl:?}: {e}")))
}

/// `nanu rotate KEY`.
pub fn rotate(global: &Global, args: &RotateArgs) -> Outcome {
    let grace = parse::duration("--grace", &args.grace)?;
    let vault = access::open(global, Durability::Durable)?;
    let minted = vault.rotate(&args.key, grace, &access::context(global))?;
    vault.close()?;
    print_issued(global, std::slice::from_ref(&minted))
}

/// `nanu rotate-due`.
pub fn rotate_due(global: &Global, args: &RotateDueArgs) -> Outcome {
    let grace = parse::duration("--grace", &args.grace)?;
    let vault = access::open(global, Durability::Durable)?;
    let minted = vault.rotate_due(grace, &access::context(global))?;
    vault.close()?;
    if minted.is_empty() && !global.json {
        return print("no key is due for rotation");
    }
    if global.json {
        let issued: Vec<Issued<'_>> = minted
            .iter()
            .map(|m| Issued {
                key_id: &m.key_id,
                secret: m.secret.expose(),
            })
            .collect();
        return print_json(&issued);
    }
    print_issued(global, &minted)
}

/// `nanu revoke KEY` or `nanu revoke --owner O`.
pub fn revoke(global: &Global, args: &RevokeArgs) -> Outcome {
    let vault = access::open(global, Durability::Durable)?;
    let ctx = access::context(global);
    let result = match (&args.key, &args.owner) {
        (Some(key), None) => revoke_key(&vault, key, &ctx).map(|()| {
            (
                serde_json::json!({ "key_id": key, "revoked": true }),
                format!("revoked {key}"),
            )
        }),
        (None, Some(owner)) => revoke_owner(&vault, owner, &ctx).map(|n| {
            (
                serde_json::json!({ "owner": owner, "revoked": n }),
                format!("revoked {n} key(s) of owner {owner}"),
            )
        }),
        _ => Err(Failure::invalid("give a key id or --owner, not both")),
    };
    let (json, text) = result?;
    vault.close()?;
    if global.json {
        print_json(&json)
    } else {
        print(&text)
    }
}

fn revoke_key(vault: &Vault, key: &str, ctx: &nanu::Context) -> Outcome {
    Ok(vault.revoke(key, ctx)?)
}

fn revoke_owner(vault: &Vault, owner: &str, ctx: &nanu::Context) -> Outcome<u64> {
    // An owner that was never seen is an error, not a silent "revoked 0".
    vault.owner(owner)?;
    Ok(vault.revoke_owner(owner, ctx)?)
}
