//! Owner commands: shared limits, the default policy for new owners.

use nanu::Durability;

use crate::access;
use crate::args::{Global, OwnerCommand, OwnerDefaultArgs, OwnerSetArgs, OwnerShowArgs};
use crate::failure::Outcome;
use crate::output::{self, print, print_json};
use crate::parse;

/// `nanu owner ...`.
pub fn run(global: &Global, command: &OwnerCommand) -> Outcome {
    match command {
        OwnerCommand::Set(args) => set(global, args),
        OwnerCommand::Show(args) => show(global, args),
        OwnerCommand::Ls => ls(global),
        OwnerCommand::Default(args) => default(global, args),
    }
}

fn set(global: &Global, args: &OwnerSetArgs) -> Outcome {
    let limits = parse::limits(&args.limits)?;
    let vault = access::open(global, Durability::Durable)?;
    parse::limits_in_currency(&args.limits, &vault.currency())?;
    vault.set_owner_policy(&args.owner, &limits, &access::context(global))?;
    let info = vault.owner(&args.owner)?;
    let currency = vault.currency();
    vault.close()?;
    if global.json {
        return print_json(&info);
    }
    print(&format!("owner {}", info.owner))?;
    print(&output::limits_table(&info.remaining, &currency).to_string())
}

fn show(global: &Global, args: &OwnerShowArgs) -> Outcome {
    let vault = access::open(global, Durability::Durable)?;
    let info = vault.owner(&args.owner)?;
    let currency = vault.currency();
    vault.close()?;
    if global.json {
        return print_json(&info);
    }
    print(&format!("owner {}: {} key(s)", info.owner, info.keys))?;
    if info.limits.is_empty() {
        return print("no owner limits");
    }
    print(&output::limits_table(&info.remaining, &currency).to_string())
}

fn ls(global: &Global) -> Outcome {
    let vault = access::open(global, Durability::Durable)?;
    let owners = vault.owners();
    let mut infos = Vec::with_capacity(owners.len());
    for owner in &owners {
        infos.push(vault.owner(owner)?);
    }
    vault.close()?;
    if global.json {
        return print_json(&infos);
    }
    let mut table = output::table(["owner", "keys", "limits"]);
    output::align_right(&mut table, &[1]);
    for info in &infos {
        let limits: Vec<String> = info.limits.iter().map(ToString::to_string).collect();
        table.add_row(vec![
            info.owner.clone(),
            output::count(info.keys),
            output::list(&limits),
        ]);
    }
    print(&table.to_string())
}

fn default(global: &Global, args: &OwnerDefaultArgs) -> Outcome {
    let limits = parse::limits(&args.limits)?;
    let vault = access::open(global, Durability::Durable)?;
    parse::limits_in_currency(&args.limits, &vault.currency())?;
    if args.clear || !limits.is_empty() {
        vault.set_default_owner_policy(&limits, &access::context(global))?;
    }
    let current = vault.default_owner_policy();
    vault.close()?;
    if global.json {
        return print_json(&serde_json::json!({ "limits": current }));
    }
    if current.is_empty() {
        return print("new owners get no limits");
    }
    let texts: Vec<String> = current.iter().map(ToString::to_string).collect();
    print(&format!("new owners get: {}", texts.join(", ")))
}
