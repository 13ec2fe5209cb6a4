//! Price commands: import LiteLLM's table, set, remove and list prices.

use nanu::{Durability, Price, format_money};

use crate::access;
use crate::args::{
    Global, PricesCommand, PricesImportArgs, PricesLsArgs, PricesRmArgs, PricesSetArgs,
};
use crate::failure::{Failure, Outcome};
use crate::output::{self, print, print_json};
use crate::parse;

/// `nanu prices ...`.
pub fn run(global: &Global, command: &PricesCommand) -> Outcome {
    match command {
        PricesCommand::Import(args) => import(global, args),
        PricesCommand::Set(args) => set(global, args),
        PricesCommand::Rm(args) => rm(global, args),
        PricesCommand::Ls(args) => ls(global, args),
    }
}

fn import(global: &Global, args: &PricesImportArgs) -> Outcome {
    let json = std::fs::read_to_string(&args.file).map_err(|e| Failure::input(&args.file, &e))?;
    let vault = access::open(global, Durability::Durable)?;
    let report = vault.import_prices(&json, &access::context(global))?;
    vault.close()?;
    if global.json {
        return print_json(&report);
    }
    print(&format!(
        "imported {} model prices from {}; skipped {} entries without a token or request \
         price; {} prices rounded up to a whole micro-unit per million tokens",
        output::count(report.imported),
        args.file.display(),
        output::count(report.skipped.len() as u64),
        output::count(report.rounded.len() as u64),
    ))
}

fn set(global: &Global, args: &PricesSetArgs) -> Outcome {
    let price = Price {
        input_per_mtok: parse::money("--input", &args.input)?,
        output_per_mtok: parse::money("--output", &args.output)?,
        per_request: parse::money("--per-request", &args.per_request)?,
    };
    let vault = access::open(global, Durability::Durable)?;
    vault.set_price(&args.model, Some(price), &access::context(global))?;
    let currency = vault.currency();
    vault.close()?;
    if global.json {
        return print_json(&serde_json::json!({ "model": args.model, "price": price }));
    }
    print(&format!(
        "{}: input {} and output {} per million tokens, {} per request",
        args.model,
        output::money(price.input_per_mtok, &currency),
        output::money(price.output_per_mtok, &currency),
        output::money(price.per_request, &currency),
    ))
}

fn rm(global: &Global, args: &PricesRmArgs) -> Outcome {
    let vault = access::open(global, Durability::Durable)?;
    if vault.price(&args.model).is_none() {
        return Err(Failure::new(
            crate::failure::Exit::NotFound,
            format!("no price for model {:?}", args.model),
        ));
    }
    vault.set_price(&args.model, None, &access::context(global))?;
    vault.close()?;
    if global.json {
        return print_json(&serde_json::json!({ "model": args.model, "removed": true }));
    }
    print(&format!("removed the price of {}", args.model))
}

fn ls(global: &Global, args: &PricesLsArgs) -> Outcome {
    let vault = access::open(global, Durability::Durable)?;
    let prices = vault.prices();
    let currency = vault.currency();
    vault.close()?;
    let shown = prices
        .iter()
        .filter(|(model, _)| args.pattern.as_deref().is_none_or(|p| model.contains(p)));
    if global.json {
        let map: serde_json::Map<String, serde_json::Value> = shown
            .map(|(model, price)| (model.clone(), serde_json::json!(price)))
            .collect();
        return print_json(&map);
    }
    let mut table = output::table([
        "model",
        "input / M tokens",
        "output / M tokens",
        "per request",
    ]);
    output::align_right(&mut table, &[1, 2, 3]);
    for (model, price) in shown {
        table.add_row(vec![
            model.clone(),
            format_money(price.input_per_mtok),
            format_money(price.output_per_mtok),
            format_money(price.per_request),
        ]);
    }
    print(&format!("prices in {currency}"))?;
    print(&table.to_string())
}
