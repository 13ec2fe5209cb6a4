//! How results reach stdout: tables for people, JSON for scripts, and the small formats both
//! share (times, money, counts).

use std::io::Write;

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, Table, TableStyle, presets};
use jiff::Timestamp;
use nanu::{LimitStatus, Remaining, Unit, format_money};
use serde::Serialize;

use crate::failure::Outcome;

/// Writes text to stdout. A reader that went away (`nanu ls | head`) ends the command
/// quietly instead of panicking.
pub fn print(text: &str) -> Outcome {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Writes one line to stderr and says whether it got there. A closed or full stderr is
/// ignored: a note or an error message that cannot be shown must not turn into a panic (which
/// `eprintln!` would raise, and which inside the panic hook aborts the process).
pub fn note(text: &str) -> bool {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{text}").and_then(|()| err.flush()).is_ok()
}

/// Writes a value as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Outcome {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::failure::Failure::invalid(format!("encoding json: {e}")))?;
    print(&text)
}

/// nanu's table look: a header, a rule under it, and the rows.
const STYLE: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction(' '));

/// A table with nanu's look, wrapped to the terminal when there is one.
pub fn table<I: IntoIterator<Item = &'static str>>(header: I) -> Table {
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// Aligns the given columns (numbers) to the right.
pub fn align_right(table: &mut Table, columns: &[usize]) {
    for &index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// A two-column table of labelled values.
pub fn fields(rows: Vec<(&str, String)>) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (label, value) in rows {
        table.add_row(vec![label.to_owned(), value]);
    }
    table
}

/// An instant for people: `2026-05-01 12:00:00Z`, to the second.
pub fn time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional instant for people, `-` when absent.
pub fn time_or_dash(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), time)
}

/// Money in micro-units with the currency name: `12.50 usd`.
pub fn money(micros: u64, currency: &str) -> String {
    format!("{} {currency}", format_money(micros))
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount of a limit's unit: money for cost, a count otherwise.
pub fn amount(unit: Unit, value: u64, currency: &str) -> String {
    match unit {
        Unit::Cost => money(value, currency),
        _ => count(value),
    }
}

/// `part / whole` as a percent with one decimal, computed in integers.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    let tenths = u128::from(part) * 1000 / u128::from(whole);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// The state of every limit of a key and its owner.
pub fn limits_table(remaining: &Remaining, currency: &str) -> Table {
    let mut table = table(["level", "limit", "used", "held", "remaining", "resets"]);
    align_right(&mut table, &[2, 3, 4]);
    for status in &remaining.limits {
        table.add_row(limit_row(status, currency));
    }
    table
}

fn limit_row(status: &LimitStatus, currency: &str) -> Vec<String> {
    let unit = status.limit.unit;
    let level = match status.level {
        nanu::Level::Key => "key",
        nanu::Level::Owner => "owner",
    };
    vec![
        level.to_owned(),
        status.limit.to_string(),
        amount(unit, status.used, currency),
        amount(unit, status.held, currency),
        amount(unit, status.remaining, currency),
        time_or_dash(status.resets_at),
    ]
}

/// A list for a table cell: comma-separated, `-` when empty.
pub fn list<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(19_366), "19,366");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn percents_are_exact_tenths() {
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(2, 3), "66.6%");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(u64::MAX, u64::MAX), "100.0%");
    }
}
