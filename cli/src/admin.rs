//! The vault itself: create it, read and check its audit trail, change its passphrase.

use nanu::{Durability, Options, Vault};

use crate::access;
use crate::args::{AuditArgs, Global, InitArgs, RekeyArgs};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::{self, print, print_json};

/// `nanu init`.
pub fn init(global: &Global, args: &InitArgs) -> Outcome {
    let path = access::vault_path(global);
    if path.exists() {
        return Err(Failure::invalid(format!(
            "{} already exists",
            path.display()
        )));
    }
    let kdf = access::kdf(global)?;
    let unlock = access::unlock(global, &path, true)?;
    let mut options = Options::new(unlock).kdf(kdf);
    options.prefix = args.prefix.clone();
    options.currency = args.currency.clone();
    let vault = Vault::create(&path, &options)?;
    vault.close()?;
    if global.json {
        return print_json(&serde_json::json!({
            "vault": path,
            "prefix": args.prefix,
            "currency": args.currency,
        }));
    }
    print(&format!(
        "created {} (prefix {}, currency {})",
        path.display(),
        args.prefix,
        args.currency
    ))
}

/// `nanu audit`. With `--verify`, exits 4 when the chain is broken.
pub fn audit(global: &Global, args: &AuditArgs) -> Outcome {
    if args.limit == 0 {
        return Err(Failure::invalid("--limit must be at least 1"));
    }
    let vault = access::open(global, Durability::Durable)?;
    if args.verify {
        let check = vault.verify_audit()?;
        vault.close()?;
        if global.json {
            print_json(&check)?;
        } else if check.ok {
            print(&format!(
                "audit chain intact: {} records",
                output::count(check.records)
            ))?;
        }
        return match check.first_bad {
            None => Ok(()),
            Some((seq, why)) => Err(Failure::with_code(
                Exit::Storage,
                "corrupt",
                format!("the audit chain is broken at record {seq}: {why}"),
            )),
        };
    }
    let records = vault.audit(args.after, args.limit)?;
    vault.close()?;
    if global.json {
        return print_json(&records);
    }
    let mut table = output::table(["seq", "at", "action", "target", "actor", "detail"]);
    for record in &records {
        table.add_row(vec![
            record.seq.to_string(),
            output::time(record.at),
            record.action.clone(),
            record.target.clone(),
            record.actor.clone().unwrap_or_else(|| "-".to_owned()),
            record.detail.to_string(),
        ]);
    }
    print(&table.to_string())
}

/// `nanu rekey`.
pub fn rekey(global: &Global, args: &RekeyArgs) -> Outcome {
    let kdf = access::kdf(global)?;
    let (path, unlock) = access::locate(global)?;
    let vault = access::open_at(
        &path,
        unlock,
        Durability::Durable,
        access::concurrency(global),
    )?;
    let new_unlock = access::new_unlock(args.new_key_file.as_deref())?;
    vault.rekey(&new_unlock, kdf, &access::context(global))?;
    vault.close()?;
    if global.json {
        return print_json(&serde_json::json!({ "vault": path, "rekeyed": true }));
    }
    print(&format!(
        "re-sealed {} under the new passphrase or key",
        path.display()
    ))
}
