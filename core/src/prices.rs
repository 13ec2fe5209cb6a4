//! Model prices: integer micro-units per million tokens and per request, the import of
//! LiteLLM's price file, and exact decimal money text.
//!
//! Money never passes through a float. A price written as decimal text (in LiteLLM's JSON, or
//! typed by a person) is converted once, from its digits and exponent, with integer arithmetic
//! only; a value finer than the integer unit is rounded up when importing prices (a provider
//! never bills less) and rejected when parsing an amount a person typed.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// Micro-units in one unit of the vault's currency.
const MICROS_PER_UNIT: u64 = 1_000_000;

/// Tokens in the "million tokens" that per-token prices are quoted for.
const TOKENS_PER_MTOK: u128 = 1_000_000;

/// Decimal places from dollars per token to micro-dollars per million tokens (10^6 * 10^6).
const TOKEN_PRICE_SCALE: u32 = 12;

/// Decimal places from dollars to micro-dollars.
const MONEY_SCALE: u32 = 6;

/// A model's price in integer micro-units.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Micro-units per million input tokens.
    #[serde(default)]
    pub input_per_mtok: u64,
    /// Micro-units per million output tokens.
    #[serde(default)]
    pub output_per_mtok: u64,
    /// Micro-units per request.
    #[serde(default)]
    pub per_request: u64,
}

impl Price {
    /// The cost of one request in micro-units: `per_request + ceil((input_tokens *
    /// input_per_mtok + output_tokens * output_per_mtok) / 1_000_000)`.
    ///
    /// The token part is computed exactly in `u128` and rounded up once per request, so a
    /// request is never billed less than its exact price. A cost that does not fit in `u64`
    /// is an invalid-argument error, never a wrapped or saturated figure.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Result<u64> {
        let overflow = || {
            Error::invalid(format!(
                "cost of {input_tokens} input and {output_tokens} output tokens overflows u64 \
                 micro-units"
            ))
        };

        // Each product of two u64 fits in u128; only their sum can overflow it.
        let input = u128::from(input_tokens) * u128::from(self.input_per_mtok);
        let output = u128::from(output_tokens) * u128::from(self.output_per_mtok);
        let scaled = input.checked_add(output).ok_or_else(overflow)?;
        let tokens = scaled / TOKENS_PER_MTOK + u128::from(scaled % TOKENS_PER_MTOK != 0);

        let total = tokens + u128::from(self.per_request);
        u64::try_from(total).map_err(|_| overflow())
    }
}

/// What an import of LiteLLM's price file produced.
#[derive(Debug, Default)]
pub struct LitellmImport {
    /// Models with a per-token (or per-request) price, in file order.
    pub prices: Vec<(String, Price)>,
    /// Entries that carry no token or request price (images, audio, per-second, ...), with
    /// the reason, e.g. ("dall-e-3", "no per-token or per-request price (billed by
    /// output_cost_per_image)").
    pub skipped: Vec<(String, String)>,
    /// Prices whose exact decimal value had a fraction of a micro-unit (per million tokens,
    /// or per request) and were rounded up: (model name, LiteLLM field name).
    pub rounded: Vec<(String, String)>,
}

/// Where a LiteLLM price field goes in a [`Price`].
#[derive(Clone, Copy, Debug)]
enum Slot {
    Input,
    Output,
    Request,
}

/// The LiteLLM fields nanu prices from: name, destination, and decimal places from the
/// file's dollars to the destination's unit. A query (rerank, search) is billed per call, so
/// it counts as a request; both request fields add up when an entry has both.
const LITELLM_FIELDS: [(&str, Slot, u32); 4] = [
    ("input_cost_per_token", Slot::Input, TOKEN_PRICE_SCALE),
    ("output_cost_per_token", Slot::Output, TOKEN_PRICE_SCALE),
    ("input_cost_per_request", Slot::Request, MONEY_SCALE),
    ("input_cost_per_query", Slot::Request, MONEY_SCALE),
];

/// The key of LiteLLM's documentation entry, which describes the fields and is not a model.
const LITELLM_SAMPLE_KEY: &str = "sample_spec";

/// Parses LiteLLM's `model_prices_and_context_window.json` text.
///
/// An entry's price comes from `input_cost_per_token` and `output_cost_per_token` (dollars
/// per token) and from `input_cost_per_request` plus `input_cost_per_query` (dollars per
/// call). Each value is converted once, exactly, from its decimal text to integer
/// micro-dollars per million tokens (or per request): `3e-06` becomes 3_000_000 and
/// `1.5e-07` becomes 150_000. A value with a fraction of the unit left over is rounded up and
/// listed in [`LitellmImport::rounded`]. A missing or `null` field counts as zero.
///
/// Entries are skipped, with a reason, when they are not objects, when they carry none of
/// those fields (image, audio, video and per-second models), or when every one of those
/// fields is zero while another `*cost*` field is not: such a model is billed by something
/// nanu does not count, and importing it as free would let it through any cost limit. The
/// `sample_spec` entry is ignored. A model name that appears twice keeps its first position
/// and its last value, as LiteLLM's own loader (Python's `json`) does.
///
/// Only the base prices are imported. Tiered prices (`*_above_200k_tokens`), cache reads and
/// writes, batch, flex and priority tiers, and audio, image or reasoning token prices are not,
/// because a charge reports only input and output tokens: every token is costed at the base
/// rate, which is above what a provider bills for cached tokens and below what it bills for
/// the long-prompt tier of a model that has one.
///
/// A price field that is negative, not a number, or too large for `u64` is an
/// invalid-argument error naming the model and the field, and nothing is imported. So is a
/// document that is not a JSON object of entries.
pub fn parse_litellm(json: &str) -> Result<LitellmImport> {
    let entries = serde_json::from_str::<LitellmEntries>(json)
        .map_err(|err| Error::invalid(format!("litellm price file: {err}")))?;

    let mut import = LitellmImport::default();
    for (name, entry) in entries.0 {
        if name == LITELLM_SAMPLE_KEY {
            continue;
        }
        import_litellm_entry(name, &entry, &mut import)?;
    }
    Ok(import)
}

/// Converts one entry of LiteLLM's file into a price, a skip or an error.
fn import_litellm_entry(name: String, entry: &Value, import: &mut LitellmImport) -> Result<()> {
    if name.is_empty() {
        import.skipped.push((name, "empty model name".to_owned()));
        return Ok(());
    }
    let Some(fields) = entry.as_object() else {
        import
            .skipped
            .push((name, "entry is not an object".to_owned()));
        return Ok(());
    };

    let mut price = Price::default();
    let mut priced = false;
    let mut rounded = Vec::new();
    for (field, slot, scale) in LITELLM_FIELDS {
        let number = match fields.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(number)) => number,
            Some(_) => {
                return Err(Error::invalid(format!(
                    "litellm price file: model {name:?}: {field} is not a number"
                )));
            }
        };
        let (amount, was_rounded) = scale_json_number(number, scale).map_err(|err| {
            Error::invalid(format!(
                "litellm price file: model {name:?}: {field} {}: {err}",
                number.as_str()
            ))
        })?;
        priced = true;
        if was_rounded {
            rounded.push(field);
        }
        match slot {
            Slot::Input => price.input_per_mtok = amount,
            Slot::Output => price.output_per_mtok = amount,
            Slot::Request => {
                price.per_request = price.per_request.checked_add(amount).ok_or_else(|| {
                    Error::invalid(format!(
                        "litellm price file: model {name:?}: per-request price overflows u64 \
                         micro-units"
                    ))
                })?;
            }
        }
    }

    if !priced {
        let reason = match other_cost_field(fields) {
            Some(other) => format!("no per-token or per-request price (billed by {other})"),
            None => "no per-token or per-request price".to_owned(),
        };
        import.skipped.push((name, reason));
        return Ok(());
    }
    if price == Price::default()
        && let Some(other) = other_cost_field(fields)
    {
        import.skipped.push((
            name,
            format!("per-token price is zero but billed by {other}"),
        ));
        return Ok(());
    }

    import.rounded.extend(
        rounded
            .into_iter()
            .map(|field| (name.clone(), field.to_owned())),
    );
    import.prices.push((name, price));
    Ok(())
}

/// Scales a JSON number's exact decimal text by `10^scale`.
fn scale_json_number(number: &Number, scale: u32) -> Result<(u64, bool), ScaleError> {
    let decimal = DecimalText::parse(number.as_str()).ok_or(ScaleError::NotDecimal)?;
    decimal.scale(scale)
}

/// The first field, in the entry's key order, that names a cost nanu does not import and
/// holds a nonzero amount (directly, or in an object of amounts such as
/// `search_context_cost_per_query`).
fn other_cost_field(fields: &Map<String, Value>) -> Option<&str> {
    let imported = |key: &str| LITELLM_FIELDS.iter().any(|(field, _, _)| *field == key);
    let nonzero = |value: &Value| match value {
        Value::Number(number) => is_nonzero(number),
        Value::Object(inner) => inner
            .values()
            .any(|v| v.as_number().is_some_and(is_nonzero)),
        _ => false,
    };
    fields
        .iter()
        .find(|(key, value)| key.contains("cost") && !imported(key) && nonzero(value))
        .map(|(key, _)| key.as_str())
}

/// Whether a JSON number is nonzero: exactly when its mantissa has a nonzero digit.
fn is_nonzero(number: &Number) -> bool {
    number
        .as_str()
        .bytes()
        .take_while(|b| !matches!(b, b'e' | b'E'))
        .any(|b| matches!(b, b'1'..=b'9'))
}

/// LiteLLM's top-level object as (model name, entry) pairs in file order.
///
/// serde_json's own map sorts its keys unless its `preserve_order` feature is on, so the
/// object is read through this visitor instead.
struct LitellmEntries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for LitellmEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(LitellmEntriesVisitor)
    }
}

struct LitellmEntriesVisitor;

impl<'de> Visitor<'de> for LitellmEntriesVisitor {
    type Value = LitellmEntries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping model names to prices")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        let mut positions: HashMap<String, usize> = HashMap::new();
        while let Some((name, entry)) = map.next_entry::<String, Value>()? {
            match positions.get(&name) {
                Some(&position) => entries[position].1 = entry,
                None => {
                    positions.insert(name.clone(), entries.len());
                    entries.push((name, entry));
                }
            }
        }
        Ok(LitellmEntries(entries))
    }
}

/// Parses a decimal dollar amount written by a person into micro-units, exactly.
///
/// Accepts surrounding whitespace, an optional leading `$`, digits with an optional decimal
/// point, and an optional exponent: `"10"`, `"0.50"`, `".5"`, `"1e-6"`, `"$3.25"`. An amount
/// finer than one micro-unit (more than 6 fraction digits once trailing zeros are set aside),
/// a negative amount, text that is not a decimal number (`NaN`, `inf`, `1,000`) and an amount
/// over `u64::MAX` micro-units are invalid-argument errors. Negative zero is zero.
pub fn parse_money(text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix('$').unwrap_or(trimmed);
    let decimal = DecimalText::parse(digits).ok_or_else(|| {
        Error::invalid(format!(
            "amount {}: {}",
            shown(text),
            ScaleError::NotDecimal
        ))
    })?;

    match decimal.scale(MONEY_SCALE) {
        Ok((micros, false)) => Ok(micros),
        Ok((_, true)) => Err(Error::invalid(format!(
            "amount {}: finer than one micro-unit (more than 6 fraction digits)",
            shown(text)
        ))),
        Err(err) => Err(Error::invalid(format!("amount {}: {err}", shown(text)))),
    }
}

/// Formats micro-units as a decimal amount, `"12.345678"`, with trailing zeros trimmed down to
/// two fraction digits (`"10.00"`, `"0.50"`). The text parses back to the same amount with
/// [`parse_money`].
pub fn format_money(micros: u64) -> String {
    let whole = micros / MICROS_PER_UNIT;
    let fraction = format!("{:06}", micros % MICROS_PER_UNIT);
    let kept = fraction.trim_end_matches('0').len().max(2);
    format!("{whole}.{}", &fraction[..kept])
}

/// A user's text for an error message, quoted and cut short so that a huge input does not
/// make a huge message.
fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// Why a decimal could not be scaled to an integer unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScaleError {
    NotDecimal,
    Negative,
    Overflow,
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScaleError::NotDecimal => "not a decimal number",
            ScaleError::Negative => "negative",
            ScaleError::Overflow => "too large for u64 micro-units",
        })
    }
}

/// A decimal number's text split into its parts, borrowed from the input: the value is
/// `(int_digits frac_digits) * 10^(exponent - frac_digits.len())`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DecimalText<'a> {
    negative: bool,
    int_digits: &'a str,
    frac_digits: &'a str,
    /// The written exponent, saturated at `i64`'s range: a value whose exponent reaches that
    /// far is past `u64` or below any unit however many digits it has, so saturating does
    /// not change any result.
    exponent: i64,
}

impl<'a> DecimalText<'a> {
    /// Splits `[-]digits[.digits][(e|E)[+|-]digits]`, with at least one mantissa digit on
    /// either side of the point. Anything else (signs other than a leading `-`, separators,
    /// spaces, `NaN`, `inf`) is `None`.
    fn parse(text: &'a str) -> Option<DecimalText<'a>> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent_text) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, Some(exponent)),
            None => (unsigned, None),
        };
        let (int_digits, frac_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_digits)
            || !all_digits(frac_digits)
            || (int_digits.is_empty() && frac_digits.is_empty())
        {
            return None;
        }

        let exponent = match exponent_text {
            None => 0,
            Some(text) => {
                let (sign, digits) = match text.as_bytes().first() {
                    Some(b'-') => (-1, &text[1..]),
                    Some(b'+') => (1, &text[1..]),
                    _ => (1, text),
                };
                if digits.is_empty() || !all_digits(digits) {
                    return None;
                }
                digits.bytes().fold(0i64, |acc, b| {
                    acc.saturating_mul(10)
                        .saturating_add(sign * i64::from(b - b'0'))
                })
            }
        };
        Some(DecimalText {
            negative,
            int_digits,
            frac_digits,
            exponent,
        })
    }

    /// The mantissa's digits as numbers, integer part first.
    fn digits(&self) -> impl Iterator<Item = u64> + '_ {
        self.int_digits
            .bytes()
            .chain(self.frac_digits.bytes())
            .map(|b| u64::from(b - b'0'))
    }

    /// The value times `10^scale` as an integer, rounded up when a fraction is left, and
    /// whether it was. Runs in time linear in the text, whatever the exponent.
    fn scale(&self, scale: u32) -> Result<(u64, bool), ScaleError> {
        if self.digits().all(|digit| digit == 0) {
            return Ok((0, false));
        }
        if self.negative {
            return Err(ScaleError::Negative);
        }

        // The value is mantissa * 10^shift, where the mantissa is every digit read as one
        // integer; only the digits left of the shifted point are accumulated.
        let frac_len = i64::try_from(self.frac_digits.len()).unwrap_or(i64::MAX);
        let shift = self
            .exponent
            .saturating_sub(frac_len)
            .saturating_add(i64::from(scale));
        let digit_count = self.int_digits.len() + self.frac_digits.len();
        let dropped = usize::try_from(shift.min(0).unsigned_abs()).unwrap_or(usize::MAX);
        let kept = digit_count.saturating_sub(dropped);

        let mut whole: u64 = 0;
        let mut fraction_left = false;
        for (index, digit) in self.digits().enumerate() {
            if index < kept {
                whole = whole
                    .checked_mul(10)
                    .and_then(|w| w.checked_add(digit))
                    .ok_or(ScaleError::Overflow)?;
            } else if digit != 0 {
                fraction_left = true;
                break;
            }
        }

        if shift > 0 {
            // A nonzero mantissa times 10^20 or more is past u64, so a huge shift fails here.
            let factor = u32::try_from(shift)
                .ok()
                .and_then(|shift| 10u64.checked_pow(shift))
                .ok_or(ScaleError::Overflow)?;
            whole = whole.checked_mul(factor).ok_or(ScaleError::Overflow)?;
        }
        if fraction_left {
            whole = whole.checked_add(1).ok_or(ScaleError::Overflow)?;
        }
        Ok((whole, fraction_left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use proptest::prelude::*;

    const LITELLM_FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/litellm-model-prices-1.110.2.json"
    );

    fn scaled(text: &str, scale: u32) -> Result<(u64, bool), ScaleError> {
        DecimalText::parse(text)
            .ok_or(ScaleError::NotDecimal)?
            .scale(scale)
    }

    fn token_price(text: &str) -> Result<(u64, bool), ScaleError> {
        scaled(text, TOKEN_PRICE_SCALE)
    }

    /// An independent exact conversion for cross-checking: it moves the decimal point in a
    /// string of digits and parses the whole part as u128. `None` when that is past u128.
    fn reference_scale(text: &str, scale: i64) -> Option<(u128, bool)> {
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().unwrap()),
            None => (text, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{int}{frac}");
        let point = int.len() as i64 + exponent + scale;
        let (whole, rest) = if point <= 0 {
            (String::new(), digits)
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_owned(),
                digits[point as usize..].to_owned(),
            )
        };
        let whole = whole.trim_start_matches('0');
        let value = if whole.is_empty() {
            0
        } else {
            whole.parse::<u128>().ok()?
        };
        let fraction = rest.bytes().any(|b| b != b'0');
        Some((value + u128::from(fraction), fraction))
    }

    fn invalid_message(result: Result<impl fmt::Debug>) -> String {
        let err = result.expect_err("expected an error");
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
        err.message().to_owned()
    }

    #[test]
    fn token_prices_convert_exactly_from_every_literal_form() {
        let cases: &[(&str, u64)] = &[
            ("3e-06", 3_000_000),
            ("3e-6", 3_000_000),
            ("3E-6", 3_000_000),
            ("3e-06", 3_000_000),
            ("0.000003", 3_000_000),
            ("0.0000030", 3_000_000),
            ("1.5e-07", 150_000),
            ("0.00000015", 150_000),
            ("15e-8", 150_000),
            ("0.000015", 15_000_000),
            ("1.65e-05", 16_500_000),
            ("2.5e-06", 2_500_000),
            ("1e-05", 10_000_000),
            ("1e-12", 1),
            ("0.000000000001", 1),
            ("1e+0", 1_000_000_000_000),
            ("1e+2", 100_000_000_000_000),
            ("2", 2_000_000_000_000),
            ("2.", 2_000_000_000_000),
            (".5", 500_000_000_000),
            ("0", 0),
            ("0.0", 0),
            ("-0", 0),
            ("-0.0e5", 0),
            ("0e999999999999999999999999", 0),
            ("000.000", 0),
            ("18446744.073709551615", u64::MAX),
            ("18446744073709551615e-12", u64::MAX),
        ];
        for &(text, expected) in cases {
            assert_eq!(token_price(text), Ok((expected, false)), "{text}");
        }
    }

    #[test]
    fn fractions_of_the_unit_round_up_and_say_so() {
        let cases: &[(&str, u64)] = &[
            ("1e-13", 1),
            ("1e-400", 1),
            ("1e-99999999999999999999999999", 1),
            ("3.3333333333333335e-07", 333_334),
            ("1.6000000000000001e-06", 1_600_001),
            ("9.499999999999999e-07", 950_000),
            ("0.0000030000000000000001", 3_000_001),
            ("18446744.0737095516141", u64::MAX),
        ];
        for &(text, expected) in cases {
            assert_eq!(token_price(text), Ok((expected, true)), "{text}");
        }

        let tiny = format!("0.{}1", "0".repeat(5_000));
        assert_eq!(token_price(&tiny), Ok((1, true)));
    }

    #[test]
    fn huge_negative_and_malformed_values_are_refused() {
        for text in [
            "1e400",
            "1e20",
            "1e99999999999999999999999999",
            "18446744.073709551616",
            "18446744.0737095516151",
            "99999999999999999999999",
        ] {
            assert_eq!(token_price(text), Err(ScaleError::Overflow), "{text}");
        }
        let long = format!("1{}", "0".repeat(10_000));
        assert_eq!(token_price(&long), Err(ScaleError::Overflow));

        for text in ["-1e-6", "-0.000001", "-3"] {
            assert_eq!(token_price(text), Err(ScaleError::Negative), "{text}");
        }

        for text in [
            "", ".", "-", "e5", ".e5", "1e", "1e+", "1e-", "1e+-2", "1.2.3", "abc", "NaN", "nan",
            "inf", "-inf", "Infinity", "1_000", "1,000", " 1", "1 ", "--1", "+1", "0x10", "1e5.5",
            "$1", "１",
        ] {
            assert_eq!(token_price(text), Err(ScaleError::NotDecimal), "{text:?}");
        }
    }

    #[test]
    fn cost_rounds_up_once_per_request() {
        let gpt_4o = Price {
            input_per_mtok: 2_500_000,
            output_per_mtok: 10_000_000,
            per_request: 0,
        };
        assert_eq!(gpt_4o.cost(1_000, 500), Ok(7_500));
        assert_eq!(gpt_4o.cost(0, 0), Ok(0));
        assert_eq!(gpt_4o.cost(1_000_000, 0), Ok(2_500_000));

        let mini = Price {
            input_per_mtok: 150_000,
            output_per_mtok: 600_000,
            per_request: 0,
        };
        // 1 token at 0.15 micro-units is billed 1, not 0.
        assert_eq!(mini.cost(1, 0), Ok(1));
        // 0.15 + 0.6 = 0.75 rounds up once to 1, not once per side to 2.
        assert_eq!(mini.cost(1, 1), Ok(1));
        // 7 * 0.15 = 1.05 -> 2; exactly 20 * 0.15 = 3 stays 3.
        assert_eq!(mini.cost(7, 0), Ok(2));
        assert_eq!(mini.cost(20, 0), Ok(3));

        let online = Price {
            input_per_mtok: 0,
            output_per_mtok: 2_800_000,
            per_request: 5_000,
        };
        assert_eq!(online.cost(0, 0), Ok(5_000));
        assert_eq!(online.cost(123, 1), Ok(5_003));

        assert_eq!(Price::default().cost(u64::MAX, u64::MAX), Ok(0));
    }

    #[test]
    fn cost_overflow_is_an_error_not_a_wrap() {
        let max = Price {
            input_per_mtok: u64::MAX,
            output_per_mtok: u64::MAX,
            per_request: 0,
        };
        let message = invalid_message(max.cost(u64::MAX, u64::MAX));
        assert!(message.contains("overflows"), "{message}");
        assert!(message.contains(&u64::MAX.to_string()), "{message}");
        assert!(max.cost(u64::MAX, 0).is_err());

        // Exactly u64::MAX is still a cost.
        let unit = Price {
            input_per_mtok: 1_000_000,
            output_per_mtok: 0,
            per_request: 0,
        };
        assert_eq!(unit.cost(u64::MAX, 0), Ok(u64::MAX));
        let flat = Price {
            per_request: u64::MAX,
            ..Price::default()
        };
        assert_eq!(flat.cost(0, 0), Ok(u64::MAX));
        assert!(flat.cost(1, 0).is_ok());
        let flat_and_tokens = Price {
            per_request: u64::MAX,
            ..unit
        };
        assert!(flat_and_tokens.cost(1, 0).is_err());
    }

    #[test]
    fn price_serde_defaults_missing_fields_and_rejects_unknown_ones() {
        let price: Price = serde_json::from_str(r#"{"input_per_mtok": 3000000}"#).unwrap();
        assert_eq!(
            price,
            Price {
                input_per_mtok: 3_000_000,
                ..Price::default()
            }
        );

        let full = Price {
            input_per_mtok: 1,
            output_per_mtok: 2,
            per_request: u64::MAX,
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<Price>(&text).unwrap(), full);

        assert!(serde_json::from_str::<Price>(r#"{"input_per_mtok": 1, "extra": 2}"#).is_err());
        assert!(serde_json::from_str::<Price>(r#"{"input_per_mtok": -1}"#).is_err());
        assert!(serde_json::from_str::<Price>(r#"{"input_per_mtok": 1.5}"#).is_err());
    }

    #[test]
    fn parse_money_reads_amounts_people_write() {
        let cases: &[(&str, u64)] = &[
            ("10", 10_000_000),
            ("0.50", 500_000),
            (".5", 500_000),
            ("5.", 5_000_000),
            ("1e-6", 1),
            ("1E-6", 1),
            ("$3.25", 3_250_000),
            ("  $3.25\n", 3_250_000),
            ("12.345678", 12_345_678),
            ("1.0000000000", 1_000_000),
            ("2.5e3", 2_500_000_000),
            ("0", 0),
            ("-0", 0),
            ("$0.00", 0),
            ("18446744073709.551615", u64::MAX),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_money(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn parse_money_refuses_what_it_cannot_hold_exactly() {
        let message = invalid_message(parse_money("0.0000001"));
        assert_eq!(
            message,
            r#"amount "0.0000001": finer than one micro-unit (more than 6 fraction digits)"#
        );
        assert!(parse_money("1e-7").is_err());
        assert!(parse_money("1.0000001").is_err());
        assert!(parse_money("1e-400").is_err());

        assert_eq!(
            invalid_message(parse_money("-1")),
            r#"amount "-1": negative"#
        );
        assert!(parse_money("-0.000001").is_err());
        assert!(parse_money("$-1").is_err());

        assert_eq!(
            invalid_message(parse_money("18446744073709.551616")),
            r#"amount "18446744073709.551616": too large for u64 micro-units"#
        );
        assert!(parse_money("1e400").is_err());
        assert!(parse_money("1e99999999999999999999999999999").is_err());

        for text in [
            "", " ", "$", "NaN", "nan", "inf", "infinity", "1,000", "1 000", "$$1", "1$",
        ] {
            let message = invalid_message(parse_money(text));
            assert!(
                message.ends_with("not a decimal number"),
                "{text:?}: {message}"
            );
        }

        let long = "9".repeat(1_000);
        let message = invalid_message(parse_money(&long));
        assert!(message.len() < 100, "{message}");
        assert!(message.contains("..."), "{message}");
    }

    #[test]
    fn format_money_keeps_two_to_six_fraction_digits() {
        assert_eq!(format_money(0), "0.00");
        assert_eq!(format_money(1), "0.000001");
        assert_eq!(format_money(500_000), "0.50");
        assert_eq!(format_money(10_000_000), "10.00");
        assert_eq!(format_money(10_100_000), "10.10");
        assert_eq!(format_money(12_345_678), "12.345678");
        assert_eq!(format_money(12_345_600), "12.3456");
        assert_eq!(format_money(u64::MAX), "18446744073709.551615");
    }

    #[test]
    fn litellm_import_converts_skips_and_rounds() {
        let json = r#"{
            "sample_spec": {"input_cost_per_token": 0.0, "mode": "chat"},
            "zeta": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5E-5},
            "alpha": {"input_cost_per_token": 1.6000000000000001e-06, "output_cost_per_token": 1},
            "dall-e-3": {"output_cost_per_image": 0.04, "mode": "image_generation"},
            "no-cost": {"mode": "chat"},
            "pixels": {"input_cost_per_token": 0, "input_cost_per_pixel": 1e-08},
            "free": {"input_cost_per_token": 0.0, "output_cost_per_token": 0},
            "online": {"input_cost_per_request": 0.005, "output_cost_per_token": 2.8e-7},
            "rerank": {"input_cost_per_query": 0.001, "input_cost_per_request": 1e-9},
            "nulls": {"input_cost_per_token": null, "output_cost_per_token": 2e-6},
            "odd": [1, 2],
            "": {"input_cost_per_token": 1}
        }"#;
        let import = parse_litellm(json).unwrap();

        let mtok = |input, output| Price {
            input_per_mtok: input,
            output_per_mtok: output,
            per_request: 0,
        };
        let expected = vec![
            ("zeta".to_owned(), mtok(3_000_000, 15_000_000)),
            ("alpha".to_owned(), mtok(1_600_001, 1_000_000_000_000)),
            ("free".to_owned(), Price::default()),
            (
                "online".to_owned(),
                Price {
                    per_request: 5_000,
                    ..mtok(0, 280_000)
                },
            ),
            (
                "rerank".to_owned(),
                Price {
                    per_request: 1_001,
                    ..Price::default()
                },
            ),
            ("nulls".to_owned(), mtok(0, 2_000_000)),
        ];
        assert_eq!(import.prices, expected);

        let skipped: Vec<(&str, &str)> = import
            .skipped
            .iter()
            .map(|(m, r)| (m.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "dall-e-3",
                    "no per-token or per-request price (billed by output_cost_per_image)"
                ),
                ("no-cost", "no per-token or per-request price"),
                (
                    "pixels",
                    "per-token price is zero but billed by input_cost_per_pixel"
                ),
                ("odd", "entry is not an object"),
                ("", "empty model name"),
            ]
        );

        let rounded: Vec<(&str, &str)> = import
            .rounded
            .iter()
            .map(|(m, f)| (m.as_str(), f.as_str()))
            .collect();
        assert_eq!(
            rounded,
            [
                ("alpha", "input_cost_per_token"),
                ("rerank", "input_cost_per_request")
            ]
        );
    }

    #[test]
    fn litellm_import_keeps_values_a_float_would_change() {
        // As f64, 1.65e-05 * 1e12 is 16500000.000000002 and 0.0000030000000000000001 is 3e-06.
        let json = r#"{
            "a": {"input_cost_per_token": 1.65e-05},
            "b": {"input_cost_per_token": 0.0000030000000000000001},
            "c": {"input_cost_per_token": 123456789012345678901e-20}
        }"#;
        let import = parse_litellm(json).unwrap();
        let inputs: Vec<u64> = import
            .prices
            .iter()
            .map(|(_, p)| p.input_per_mtok)
            .collect();
        assert_eq!(inputs, [16_500_000, 3_000_001, 1_234_567_890_124]);
        assert_eq!(import.rounded.len(), 2);
    }

    #[test]
    fn litellm_duplicate_model_keeps_first_position_and_last_value() {
        let json = r#"{
            "m": {"input_cost_per_token": 1e-6},
            "n": {"input_cost_per_token": 2e-6},
            "m": {"input_cost_per_token": 3e-6}
        }"#;
        let import = parse_litellm(json).unwrap();
        let inputs: Vec<(&str, u64)> = import
            .prices
            .iter()
            .map(|(m, p)| (m.as_str(), p.input_per_mtok))
            .collect();
        assert_eq!(inputs, [("m", 3_000_000), ("n", 2_000_000)]);
    }

    #[test]
    fn litellm_bad_prices_are_errors_naming_model_and_field() {
        let cases = [
            (
                r#"{"m": {"input_cost_per_token": -1e-6}}"#,
                "input_cost_per_token -1e-6: negative",
            ),
            (
                r#"{"m": {"output_cost_per_token": "3e-6"}}"#,
                "output_cost_per_token is not a number",
            ),
            (
                r#"{"m": {"input_cost_per_request": true}}"#,
                "input_cost_per_request is not a number",
            ),
            (
                r#"{"m": {"input_cost_per_query": {}}}"#,
                "input_cost_per_query is not a number",
            ),
            (
                r#"{"m": {"input_cost_per_token": 1e400}}"#,
                "input_cost_per_token 1e+400: too large for u64 micro-units",
            ),
            (
                r#"{"m": {"input_cost_per_token": 20000000}}"#,
                "input_cost_per_token 20000000: too large for u64 micro-units",
            ),
            (
                r#"{"m": {"input_cost_per_request": 18446744073709, "input_cost_per_query": 1}}"#,
                "per-request price overflows u64 micro-units",
            ),
        ];
        for (json, expected) in cases {
            let message = invalid_message(parse_litellm(json));
            assert_eq!(
                message,
                format!("litellm price file: model \"m\": {expected}"),
                "{json}"
            );
        }
    }

    #[test]
    fn litellm_document_must_be_an_object() {
        for json in [
            "[]",
            "3",
            "null",
            "\"prices\"",
            "",
            "{",
            "{\"m\": {}} trailing",
        ] {
            let message = invalid_message(parse_litellm(json));
            assert!(
                message.starts_with("litellm price file: "),
                "{json:?}: {message}"
            );
        }
        let message = invalid_message(parse_litellm("[1]"));
        assert!(
            message.contains("expected an object mapping model names to prices"),
            "{message}"
        );

        let empty = parse_litellm("{}").unwrap();
        assert!(empty.prices.is_empty() && empty.skipped.is_empty() && empty.rounded.is_empty());
    }

    #[test]
    fn litellm_real_file_imports_exact_figures() {
        let Ok(text) = std::fs::read_to_string(LITELLM_FILE) else {
            println!("skipped: {LITELLM_FILE} is missing");
            return;
        };
        let import = parse_litellm(&text).unwrap();

        assert_eq!(import.prices.len(), 3_954);
        assert_eq!(import.skipped.len(), 923);
        assert_eq!(import.rounded.len(), 43);
        assert_eq!(
            import.prices.len() + import.skipped.len(),
            4_878 - 1,
            "all but sample_spec"
        );

        let price = |model: &str| {
            import
                .prices
                .iter()
                .find(|(name, _)| name == model)
                .map(|(_, price)| *price)
        };
        let mtok = |input, output| Price {
            input_per_mtok: input,
            output_per_mtok: output,
            per_request: 0,
        };
        assert_eq!(price("gpt-4o"), Some(mtok(2_500_000, 10_000_000)));
        assert_eq!(price("gpt-4o-mini"), Some(mtok(150_000, 600_000)));
        assert_eq!(price("gpt-4"), Some(mtok(30_000_000, 60_000_000)));
        assert_eq!(
            price("claude-sonnet-4-5"),
            Some(mtok(3_000_000, 15_000_000))
        );
        assert_eq!(
            price("anthropic.claude-3-5-sonnet-20241022-v2:0"),
            Some(mtok(3_000_000, 15_000_000))
        );
        assert_eq!(price("text-embedding-3-small"), Some(mtok(20_000, 0)));
        assert_eq!(price("ollama/llama2"), Some(Price::default()));
        assert_eq!(
            price("perplexity/pplx-70b-online"),
            Some(Price {
                per_request: 5_000,
                ..mtok(0, 2_800_000)
            })
        );
        assert_eq!(
            price("amazon.rerank-v1:0"),
            Some(Price {
                per_request: 1_000,
                ..mtok(0, 0)
            })
        );
        assert_eq!(
            price("tavily/search"),
            Some(Price {
                per_request: 8_000,
                ..mtok(0, 0)
            })
        );
        // 1.65e-05 as f64 times 1e12 is 16500000.000000002, which a float import rounds up.
        assert_eq!(
            price("us.anthropic.claude-sonnet-4-6").map(|p| p.output_per_mtok),
            Some(16_500_000)
        );
        assert_eq!(price("azure/hd/1024-x-1024/dall-e-3"), None);

        assert_eq!(import.prices[0].0, "azure/gpt-realtime-2.1-2026-07-07");
        assert_eq!(import.prices[0].1, mtok(4_000_000, 24_000_000));
        assert_eq!(
            import.prices.last().map(|(name, _)| name.as_str()),
            Some("vertex_ai/gemini-4-hydrogen")
        );

        let reasons = |prefix: &str| {
            import
                .skipped
                .iter()
                .filter(|(_, r)| r.starts_with(prefix))
                .count()
        };
        assert_eq!(reasons("no per-token or per-request price"), 909);
        assert_eq!(reasons("per-token price is zero but billed by"), 14);
        let reason = |model: &str| {
            import
                .skipped
                .iter()
                .find(|(name, _)| name == model)
                .map(|(_, r)| r.as_str())
        };
        assert_eq!(
            reason("1024-x-1024/50-steps/bedrock/amazon.nova-canvas-v1:0"),
            Some("no per-token or per-request price (billed by output_cost_per_image)")
        );
        assert_eq!(
            reason("azure/gpt-realtime-translate-2026-05-06"),
            Some("no per-token or per-request price (billed by input_cost_per_second)")
        );
        assert_eq!(
            reason("azure/hd/1024-x-1024/dall-e-3"),
            Some("per-token price is zero but billed by input_cost_per_pixel")
        );

        assert!(import.rounded.iter().any(|(name, field)| {
            name == "novita/deepseek/deepseek-v4-pro" && field == "input_cost_per_token"
        }));
        assert_eq!(
            price("novita/deepseek/deepseek-v4-pro").map(|p| p.input_per_mtok),
            Some(1_600_001)
        );
    }

    #[test]
    fn litellm_real_file_matches_an_independent_exact_conversion() {
        let Ok(text) = std::fs::read_to_string(LITELLM_FILE) else {
            println!("skipped: {LITELLM_FILE} is missing");
            return;
        };
        let import = parse_litellm(&text).unwrap();
        let entries = serde_json::from_str::<LitellmEntries>(&text).unwrap().0;
        let by_name: HashMap<&str, &Value> = entries
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
            .collect();

        // Every imported figure equals the string-shifting reference, and a naive f64
        // conversion (value * 10^12, rounded up) disagrees with it on some of them.
        let mut checked = 0;
        let mut float_would_differ = 0;
        for (name, price) in &import.prices {
            let entry = by_name[name.as_str()];
            for (field, got) in [
                ("input_cost_per_token", price.input_per_mtok),
                ("output_cost_per_token", price.output_per_mtok),
            ] {
                let Some(number) = entry.get(field).and_then(Value::as_number) else {
                    continue;
                };
                let (exact, rounded) = reference_scale(number.as_str(), 12).unwrap();
                assert_eq!(u128::from(got), exact, "{name} {field} {number}");
                let listed = import.rounded.iter().any(|(m, f)| m == name && f == field);
                assert_eq!(listed, rounded, "{name} {field} {number}");

                let float: f64 = number.as_str().parse().unwrap();
                if (float * 1e12).ceil() != exact as f64 {
                    float_would_differ += 1;
                }
                checked += 1;
            }
        }
        assert!(checked > 7_000, "{checked}");
        assert!(float_would_differ > 100, "{float_would_differ}");
    }

    proptest! {
        #[test]
        fn format_then_parse_money_round_trips(micros in any::<u64>()) {
            prop_assert_eq!(parse_money(&format_money(micros)), Ok(micros));
        }

        #[test]
        fn parse_money_of_whole_and_fraction_is_exact(
            whole in 0u64..=18_446_744_073_708,
            fraction in 0u64..1_000_000,
        ) {
            let text = format!("${whole}.{fraction:06}");
            prop_assert_eq!(parse_money(&text), Ok(whole * 1_000_000 + fraction));
        }

        #[test]
        fn scaling_matches_the_reference(
            mantissa in any::<u64>(),
            frac_len in 0usize..25,
            exponent in -40i64..40,
            scale in prop_oneof![Just(6u32), Just(12u32)],
        ) {
            let digits = mantissa.to_string();
            let split = digits.len().saturating_sub(frac_len);
            let text = format!("{}.{}e{exponent}", &digits[..split], &digits[split..]);
            let text = text.replace(".e", "e");
            let text = if text.starts_with('.') { format!("0{text}") } else { text };
            let expected = reference_scale(&text, i64::from(scale));
            match scaled(&text, scale) {
                Ok((value, rounded)) => {
                    prop_assert_eq!(Some((u128::from(value), rounded)), expected, "{}", text);
                }
                Err(err) => {
                    prop_assert_eq!(err, ScaleError::Overflow, "{}", text);
                    let past_u64 = expected.is_none_or(|(value, _)| value > u128::from(u64::MAX));
                    prop_assert!(past_u64, "{}", text);
                }
            }
        }
    }
}
