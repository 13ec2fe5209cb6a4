//! Structured inputs (key specs, patches, filters, limits, usage queries, prices) go from
//! JavaScript through the same JSON form every binding, the CLI and the scenarios use, and are
//! decoded by the core's strict serde types (unknown fields are errors).
//!
//! JavaScript writes the fields in camelCase (`inputTokens`, `expiresAt`); they are renamed to
//! the JSON form's snake_case here. Free-form maps (`metadata`, `aliases`) keep their keys as
//! given. Times (`expiresAt`, `from`, `to`) are a `Date` or epoch milliseconds.

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::arg::{Arg, Kind, safe_i64};
use crate::error::{Result, invalid};

/// Fields whose value is free-form JSON: keys are kept, numbers may be fractional.
const FREE_FIELDS: [&str; 2] = ["metadata", "aliases"];

/// Fields that hold an instant.
const TIME_FIELDS: [&str; 3] = ["expires_at", "from", "to"];

/// Nesting deeper than this is refused (the core's own JSON limits are far below it).
const MAX_DEPTH: usize = 64;

fn decode<T: DeserializeOwned>(arg: Arg<'_>, what: &str) -> Result<T> {
    let value = to_json(arg, what, Mode::Fields, 0)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = camel_message(e.inner());
        match path.as_str() {
            "." => invalid(format!("{what}: {message}")),
            _ if path.starts_with('[') => {
                invalid(format!("{what}{}: {message}", camel_path(&path)))
            }
            _ => invalid(format!("{what}.{}: {message}", camel_path(&path))),
        }
    })
}

/// `limits[0].alert_at` -> `limits[0].alertAt`.
fn camel_path(path: &str) -> String {
    path.split('.')
        .map(camel_case)
        .collect::<Vec<_>>()
        .join(".")
}

/// Decodes an object (a key spec, a patch, a filter, a query, a price) into a core type;
/// `what` names it in errors. serde would also read a struct from an array of its fields,
/// which no JavaScript caller means, so anything but a plain object is refused first.
pub fn decode_object<T: DeserializeOwned>(arg: Arg<'_>, what: &str) -> Result<T> {
    arg.expect_object(what)?;
    decode(arg, what)
}

/// Decodes an object, or gives the type's default when the argument is left out.
pub fn decode_object_or_default<T: DeserializeOwned + Default>(
    arg: Arg<'_>,
    what: &str,
) -> Result<T> {
    match arg.present() {
        Some(arg) => decode_object(arg, what),
        None => Ok(T::default()),
    }
}

/// Decodes an array of objects (key specs).
pub fn decode_objects<T: DeserializeOwned>(arg: Arg<'_>, what: &str) -> Result<Vec<T>> {
    for (i, item) in arg.elements(what)?.into_iter().enumerate() {
        item.expect_object(&format!("{what}[{i}]"))?;
    }
    decode(arg, what)
}

/// Decodes an array of limits, each in the text form or the object form.
pub fn decode_limits(arg: Arg<'_>, what: &str) -> Result<Vec<nanu::Limit>> {
    for (i, item) in arg.elements(what)?.into_iter().enumerate() {
        if item.kind() != Kind::String {
            item.expect_object(&format!("{what}[{i}]"))?;
        }
    }
    decode(arg, what)
}

/// Reads free-form JSON (for example metadata or a LiteLLM price document given as an object).
pub fn free_json(arg: Arg<'_>, what: &str) -> Result<Value> {
    to_json(arg, what, Mode::Free, 0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fields of the core's types: camelCase keys, non-negative integers.
    Fields,
    /// Free-form JSON: keys as given, any finite number.
    Free,
}

fn to_json(arg: Arg<'_>, what: &str, mode: Mode, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!("{what} is nested too deeply")));
    }
    match arg.kind() {
        Kind::Null => Ok(Value::Null),
        Kind::Boolean => Ok(Value::Bool(arg.bool(what)?)),
        Kind::String => Ok(Value::String(arg.string(what)?)),
        Kind::Number | Kind::BigInt if mode == Mode::Fields => Ok(Value::from(arg.u64(what)?)),
        Kind::Number => free_number(arg, what),
        Kind::BigInt => Ok(Value::from(arg.u64(what)?)),
        Kind::Object => {
            if arg.is_array() {
                let items = arg.elements(what)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let path = format!("{what}[{i}]");
                    out.push(match item.kind() {
                        Kind::Undefined => Value::Null,
                        _ => to_json(item, &path, mode, depth + 1)?,
                    });
                }
                return Ok(Value::Array(out));
            }
            if arg.is_date() {
                return Ok(Value::String(arg.time(what)?.to_string()));
            }
            let mut out = Map::new();
            for (key, value) in arg.fields(what)? {
                let path = format!("{what}.{key}");
                let (name, inner) = match mode {
                    Mode::Free => (key, Mode::Free),
                    Mode::Fields => {
                        let name = snake_case(&key).ok_or_else(|| {
                            invalid(format!(
                                "{what}: unknown field {key:?} (fields are written in camelCase)"
                            ))
                        })?;
                        let inner = if FREE_FIELDS.contains(&name.as_str()) {
                            Mode::Free
                        } else {
                            Mode::Fields
                        };
                        (name, inner)
                    }
                };
                let json = if mode == Mode::Fields
                    && TIME_FIELDS.contains(&name.as_str())
                    && !value.is_absent()
                {
                    Value::String(value.time(&path)?.to_string())
                } else {
                    to_json(value, &path, inner, depth + 1)?
                };
                if out.insert(name, json).is_some() {
                    return Err(invalid(format!("{what}: field {path:?} is given twice")));
                }
            }
            Ok(Value::Object(out))
        }
        Kind::Undefined | Kind::Symbol | Kind::Function | Kind::External => Err(invalid(format!(
            "{what} cannot be {}",
            match arg.kind() {
                Kind::Undefined => "undefined",
                Kind::Symbol => "a symbol",
                Kind::Function => "a function",
                _ => "an external value",
            }
        ))),
    }
}

fn free_number(arg: Arg<'_>, what: &str) -> Result<Value> {
    let mut n = 0f64;
    // SAFETY: the value is a number (its kind was checked by the caller).
    let status = unsafe { napi::sys::napi_get_value_double(arg.env(), arg.raw(), &mut n) };
    if status != napi::sys::Status::napi_ok {
        return Err(invalid(format!("{what} must be a number")));
    }
    if let Some(i) = safe_i64(n) {
        return Ok(Value::from(i));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| invalid(format!("{what} must be a finite number, not {n}")))
}

/// `inputTokens` -> `input_tokens`. `None` for a name that is not camelCase (it holds `_` or
/// starts with a capital), so that the snake_case spelling is not accepted as a second name.
pub fn snake_case(name: &str) -> Option<String> {
    if name.contains('_') || name.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// `input_tokens` -> `inputTokens`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// serde names fields in backticks in their snake_case spelling; JavaScript callers wrote them
/// in camelCase, so the message names them that way.
fn camel_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    // A core error raised inside serde (an invalid limit text) brings its code along; the
    // code is the JavaScript error's `code` already.
    let text = text.strip_prefix("invalid_argument: ").unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        let is_name = i % 2 == 1
            && !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if is_name {
            out.push_str(&camel_case(part));
        } else {
            out.push_str(part);
        }
    }
    out
}
