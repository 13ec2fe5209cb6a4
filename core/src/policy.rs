//! What a key or an owner is allowed to do: limits, units and windows.
//!
//! These are plain values. They are validated when they enter the vault (mint, update,
//! owner policy) and are then trusted by the admission code in `ledger`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::window::Period;

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Admitted requests: each verify that passes consumes one.
    Requests,
    /// Input plus output tokens.
    Tokens,
    /// Input (prompt) tokens.
    InputTokens,
    /// Output (completion) tokens.
    OutputTokens,
    /// Money, in integer micro-units of the vault's currency.
    Cost,
}

impl Unit {
    /// Every unit, in the order reports list them.
    pub const ALL: [Unit; 5] = [
        Unit::Requests,
        Unit::Tokens,
        Unit::InputTokens,
        Unit::OutputTokens,
        Unit::Cost,
    ];

    /// The stable lowercase name used in every language.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Tokens => "tokens",
            Unit::InputTokens => "input_tokens",
            Unit::OutputTokens => "output_tokens",
            Unit::Cost => "cost",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Unit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Unit, Error> {
        Unit::ALL
            .into_iter()
            .find(|unit| unit.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown unit {s:?}")))
    }
}

/// The period over which a limit's amount applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    /// Never resets.
    Lifetime,
    /// Resets at calendar boundaries in an IANA time zone.
    Calendar {
        /// Hour, day, week (from Monday), month or year.
        period: Period,
        /// IANA zone name, `UTC` by default.
        tz: String,
        /// For monthly windows: the day of the month the window starts on (1 to 31, clamped to
        /// the last day of short months).
        anchor: Option<u8>,
    },
    /// A token bucket (GCRA): bursts up to the amount, refilled at amount per `every`.
    Rolling {
        /// The refill period; at least one millisecond.
        every: Duration,
    },
}

impl Window {
    /// `lifetime`, `rolling`, or the calendar period's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Window::Lifetime => "lifetime",
            Window::Calendar { period, .. } => period.as_str(),
            Window::Rolling { .. } => "rolling",
        }
    }
}

/// Percent thresholds at which an alert event fires, once per window.
pub const DEFAULT_ALERT_AT: [u8; 3] = [50, 80, 100];

/// One limit: at most `amount` of `unit` per `window`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LimitInput", into = "LimitRepr")]
pub struct Limit {
    /// What is counted.
    pub unit: Unit,
    /// The most that may be used in one window.
    pub amount: u64,
    /// When the count starts over.
    pub window: Window,
    /// Percents (1 to 100, ascending) at which a threshold event fires.
    pub alert_at: Vec<u8>,
}

impl Limit {
    /// A limit with the default alert thresholds.
    pub fn new(unit: Unit, amount: u64, window: Window) -> Limit {
        Limit {
            unit,
            amount,
            window,
            alert_at: DEFAULT_ALERT_AT.to_vec(),
        }
    }

    /// Checks what serde and the constructors cannot: zone names, anchors, durations and
    /// thresholds.
    pub fn validate(&self) -> Result<(), Error> {
        match &self.window {
            Window::Lifetime => {}
            Window::Calendar { period, tz, anchor } => {
                jiff::tz::TimeZone::get(tz)
                    .map_err(|_| Error::invalid(format!("unknown time zone {tz:?}")))?;
                if let Some(day) = anchor {
                    if *period != Period::Month {
                        return Err(Error::invalid("an anchor is only allowed on month windows"));
                    }
                    if !(1..=31).contains(day) {
                        return Err(Error::invalid(format!("anchor day {day} is not in 1..=31")));
                    }
                }
            }
            Window::Rolling { every } => {
                if *every < Duration::from_millis(1) {
                    return Err(Error::invalid("a rolling window must be at least 1ms"));
                }
                if every.as_micros() > i64::MAX as u128 {
                    return Err(Error::invalid("a rolling window is too long"));
                }
            }
        }
        if self.alert_at.iter().any(|p| !(1..=100).contains(p)) {
            return Err(Error::invalid("alert_at percents must be within 1..=100"));
        }
        if self.alert_at.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "alert_at percents must be strictly ascending",
            ));
        }
        if self.alert_at.len() > 8 {
            return Err(Error::invalid("at most 8 alert_at thresholds per limit"));
        }
        Ok(())
    }
}

/// The JSON form of a limit, shared by every binding, the CLI and the admin API:
/// `{"unit": "cost", "amount": 10000000, "window": "month", "tz": "Europe/Berlin",
/// "anchor": 31, "alert_at": [50, 80, 100]}` or
/// `{"unit": "requests", "amount": 100, "window": "rolling", "every": "1m"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitRepr {
    unit: Unit,
    amount: u64,
    window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tz: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anchor: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every: Option<String>,
    #[serde(default = "default_alert_at")]
    alert_at: Vec<u8>,
}

/// A limit in JSON is either the object form or the text form of `Limit::from_str`
/// (`"cost=$10/month@Europe/Berlin"`). Chosen by the JSON type rather than by trying each form
/// (`#[serde(untagged)]`), so that a bad field of the object form is reported as itself, not as
/// "data did not match any variant".
enum LimitInput {
    Text(String),
    Object(LimitRepr),
}

impl<'de> Deserialize<'de> for LimitInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;

        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = LimitInput;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a limit: text such as \"requests=100/min\", or an object")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<LimitInput, E> {
                Ok(LimitInput::Text(text.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LimitInput, A::Error> {
                let map = serde::de::value::MapAccessDeserializer::new(map);
                LimitRepr::deserialize(map).map(LimitInput::Object)
            }
        }

        deserializer.deserialize_any(Form)
    }
}

impl TryFrom<LimitInput> for Limit {
    type Error = Error;

    fn try_from(input: LimitInput) -> Result<Limit, Error> {
        match input {
            LimitInput::Text(text) => text.parse(),
            LimitInput::Object(repr) => repr.try_into(),
        }
    }
}

fn default_alert_at() -> Vec<u8> {
    DEFAULT_ALERT_AT.to_vec()
}

impl TryFrom<LimitRepr> for Limit {
    type Error = Error;

    fn try_from(repr: LimitRepr) -> Result<Limit, Error> {
        let window = match repr.window.as_str() {
            "lifetime" => Window::Lifetime,
            "rolling" => {
                let every = repr
                    .every
                    .as_deref()
                    .ok_or_else(|| Error::invalid("a rolling limit needs \"every\""))?;
                Window::Rolling {
                    every: parse_duration(every)?,
                }
            }
            other => {
                let period: Period = other.parse()?;
                Window::Calendar {
                    period,
                    tz: repr.tz.clone().unwrap_or_else(|| "UTC".to_owned()),
                    anchor: repr.anchor,
                }
            }
        };
        if !matches!(window, Window::Calendar { .. })
            && (repr.tz.is_some() || repr.anchor.is_some())
        {
            return Err(Error::invalid(
                "tz and anchor apply only to calendar windows",
            ));
        }
        if !matches!(window, Window::Rolling { .. }) && repr.every.is_some() {
            return Err(Error::invalid("every applies only to rolling windows"));
        }
        let limit = Limit {
            unit: repr.unit,
            amount: repr.amount,
            window,
            alert_at: repr.alert_at,
        };
        limit.validate()?;
        Ok(limit)
    }
}

impl From<Limit> for LimitRepr {
    fn from(limit: Limit) -> LimitRepr {
        let (window, tz, anchor, every) = match limit.window {
            Window::Lifetime => ("lifetime".to_owned(), None, None, None),
            Window::Calendar { period, tz, anchor } => {
                (period.as_str().to_owned(), Some(tz), anchor, None)
            }
            Window::Rolling { every } => (
                "rolling".to_owned(),
                None,
                None,
                Some(format_duration(every)),
            ),
        };
        LimitRepr {
            unit: limit.unit,
            amount: limit.amount,
            window,
            tz,
            anchor,
            every,
            alert_at: limit.alert_at,
        }
    }
}

/// Parses a duration written as `90s`, `1m`, `1h30m`, or ISO 8601 (`PT1M`). Days, months
/// and years are refused: a calendar day can be 23 or 25 hours, so write `24h` for a rolling
/// day, or use a calendar window.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let signed: jiff::SignedDuration = text.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "invalid duration {text:?}: expected hours, minutes and seconds such as 90s, \
                 10m or 1h30m (write 24h for a day)"
        ))
    })?;
    Duration::try_from(signed)
        .map_err(|_| Error::invalid(format!("duration {text:?} must not be negative")))
}

/// Formats a duration in the friendly form `parse_duration` reads back.
pub fn format_duration(d: Duration) -> String {
    let signed = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    format!("{signed:#}")
}

/// A limit in the OpenAPI document: the text form or the object form when it is read, always
/// the object form when it is written.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };

        let integer = |min: u64, max: Option<u64>, description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(max)
                .description(Some(description))
        };
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let window = text("`lifetime`, `rolling`, or a calendar period").enum_values(Some([
            "lifetime", "rolling", "hour", "day", "week", "month", "year",
        ]));
        let alert_at = ArrayBuilder::new()
            .items(integer(1, Some(100), "a percent"))
            .description(Some(
                "percents (ascending) at which a threshold event fires; default [50, 80, 100]",
            ));
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("the object form, as every response gives it"))
            .property("unit", utoipa::openapi::Ref::from_schema_name("Unit"))
            .property("amount", integer(0, None, "the most one window may use"))
            .property("window", window)
            .property("tz", text("IANA zone of a calendar window (default UTC)"))
            .property(
                "anchor",
                integer(1, Some(31), "start day of a month window"),
            )
            .property(
                "every",
                text("refill period of a rolling window, e.g. `1m`"),
            )
            .property("alert_at", alert_at)
            .required("unit")
            .required("amount")
            .required("window")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let form = text("the text form, e.g. `requests=100/min` or `cost=$10/month@Europe/Berlin`");
        OneOfBuilder::new()
            .item(form)
            .item(object)
            .description(Some("at most `amount` of `unit` per `window`"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Limit {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("Unit".to_owned(), Unit::schema()));
    }
}
