//! Python values in and out: checked arguments, times, and JSON-shaped values read and written
//! through serde.
//!
//! Rules every conversion follows:
//! - An integer argument is a Python `int` (never a `bool` or a `float`) from 0 to `u64::MAX`;
//!   anything else is an `InvalidArgument` that names the argument, never a truncation.
//! - A time is a timezone-aware `datetime` or an `int` of epoch milliseconds; a naive
//!   `datetime` is refused, since its meaning depends on the machine's zone. Times given back
//!   are aware UTC datetimes (built by the Python package from RFC 3339 text, or here).
//! - A duration is a `timedelta` or an `int` of milliseconds.

use std::time::Duration;

use jiff::Timestamp;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::errors::invalid;

/// Deepest nesting accepted in a JSON-shaped value (metadata, patches), far beyond any real
/// input, so that a cyclic or absurd structure is refused instead of exhausting the stack.
const MAX_DEPTH: usize = 64;

/// `datetime.datetime`, `datetime.timedelta` and the Unix epoch as an aware UTC datetime.
struct DateTimeTypes {
    datetime: Py<PyType>,
    timedelta: Py<PyType>,
    epoch: Py<PyAny>,
}

static DATETIME: PyOnceLock<DateTimeTypes> = PyOnceLock::new();

fn datetime_types(py: Python<'_>) -> PyResult<&DateTimeTypes> {
    DATETIME.get_or_try_init(py, || {
        let module = py.import("datetime")?;
        let datetime = module.getattr("datetime")?.cast_into::<PyType>()?;
        let utc = module.getattr("timezone")?.getattr("utc")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("tzinfo", utc)?;
        let epoch = datetime.call((1970, 1, 1), Some(&kwargs))?;
        Ok(DateTimeTypes {
            datetime: datetime.unbind(),
            timedelta: module.getattr("timedelta")?.cast_into::<PyType>()?.unbind(),
            epoch: epoch.unbind(),
        })
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string())
}

/// A `str` argument.
pub(crate) fn text_arg<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<&'a str> {
    match obj.cast::<PyString>() {
        Ok(text) => utf8(text, name),
        Err(_) => Err(invalid(format!(
            "{name} must be a str, got {}",
            type_name(obj)
        ))),
    }
}

/// The UTF-8 text of a `str`. A `str` holding a lone surrogate (`"\ud800"`) has none: that is
/// an `InvalidArgument` naming the argument, not Python's `UnicodeEncodeError`.
pub(crate) fn utf8<'a>(text: &'a Bound<'_, PyString>, name: &str) -> PyResult<&'a str> {
    text.to_str().map_err(|_| {
        invalid(format!(
            "{name} is not valid text: it holds a lone surrogate, which UTF-8 cannot encode"
        ))
    })
}

/// An optional `str` argument (`None` is absent).
pub(crate) fn opt_text_arg<'a>(
    obj: Option<&'a Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<&'a str>> {
    match obj {
        Some(obj) if !obj.is_none() => text_arg(obj, name).map(Some),
        _ => Ok(None),
    }
}

/// An integer argument from 0 to `u64::MAX`.
pub(crate) fn u64_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let out_of_range = || {
        invalid(format!(
            "{name} must be an integer from 0 to {}, got {}",
            u64::MAX,
            shown(obj)
        ))
    };
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(format!("{name} must be an integer, got a bool")));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<u64>().map_err(|_| out_of_range());
    }
    if obj.is_instance_of::<PyFloat>() {
        return Err(invalid(format!(
            "{name} must be an integer, got the float {}",
            shown(obj)
        )));
    }
    Err(invalid(format!(
        "{name} must be an integer, got {}",
        type_name(obj)
    )))
}

/// An optional integer argument (`None` is absent).
pub(crate) fn opt_u64_arg(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<u64>> {
    match obj {
        Some(obj) if !obj.is_none() => u64_arg(obj, name).map(Some),
        _ => Ok(None),
    }
}

/// A count argument (a list size, a page size).
pub(crate) fn usize_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    let value = u64_arg(obj, name)?;
    usize::try_from(value).map_err(|_| invalid(format!("{name} {value} is too large")))
}

/// A value's repr for a message, cut short; arguments that reach this are numbers or types,
/// never secrets.
fn shown(obj: &Bound<'_, PyAny>) -> String {
    let text = obj
        .repr()
        .map_or_else(|_| "?".to_owned(), |r| r.to_string());
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// Microseconds since the Unix epoch of a time argument: an aware `datetime`, or an `int` of
/// epoch milliseconds.
fn micros_of(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    let py = obj.py();
    let types = datetime_types(py)?;
    if obj.is_instance(types.datetime.bind(py))? {
        if obj.call_method0("utcoffset")?.is_none() {
            return Err(invalid(format!(
                "{name} is a naive datetime, whose instant depends on the machine's time zone: \
                 give an aware datetime (for example datetime.now(timezone.utc)) or epoch \
                 milliseconds"
            )));
        }
        let delta = obj.sub(types.epoch.bind(py))?;
        let days: i64 = delta.getattr("days")?.extract()?;
        let seconds: i64 = delta.getattr("seconds")?.extract()?;
        let micros: i64 = delta.getattr("microseconds")?.extract()?;
        // |days| < 3.7 million for any datetime, so none of this can overflow.
        return Ok((days * 86_400 + seconds) * 1_000_000 + micros);
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        let millis: i64 = obj
            .extract()
            .map_err(|_| invalid(format!("{name} {} is out of range", shown(obj))))?;
        return millis
            .checked_mul(1000)
            .ok_or_else(|| invalid(format!("{name} {millis} is out of range")));
    }
    Err(invalid(format!(
        "{name} must be an aware datetime or an int of epoch milliseconds, got {}",
        type_name(obj)
    )))
}

/// A time argument as an instant.
pub(crate) fn time_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Timestamp> {
    let micros = micros_of(obj, name)?;
    Timestamp::from_microsecond(micros).map_err(|_| {
        invalid(format!(
            "{name} is outside the supported years -9999 to 9999"
        ))
    })
}

/// An optional time argument (`None` means the vault's clock).
pub(crate) fn opt_time_arg(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Timestamp>> {
    match obj {
        Some(obj) if !obj.is_none() => time_arg(obj, name).map(Some),
        _ => Ok(None),
    }
}

/// A duration argument: a `timedelta` or an `int` of milliseconds, not negative.
pub(crate) fn duration_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    let py = obj.py();
    let types = datetime_types(py)?;
    if obj.is_instance(types.timedelta.bind(py))? {
        let days: i64 = obj.getattr("days")?.extract()?;
        let seconds: i64 = obj.getattr("seconds")?.extract()?;
        let micros: i64 = obj.getattr("microseconds")?.extract()?;
        let total = (days * 86_400 + seconds) * 1_000_000 + micros;
        let total =
            u64::try_from(total).map_err(|_| invalid(format!("{name} must not be negative")))?;
        return Ok(Duration::from_micros(total));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        return Ok(Duration::from_millis(u64_arg(obj, name)?));
    }
    Err(invalid(format!(
        "{name} must be a timedelta or an int of milliseconds, got {}",
        type_name(obj)
    )))
}

/// An aware UTC `datetime` of an instant.
pub(crate) fn datetime_of<'py>(py: Python<'py>, at: Timestamp) -> PyResult<Bound<'py, PyAny>> {
    let types = datetime_types(py)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("microseconds", at.as_microsecond())?;
    let delta = types.timedelta.bind(py).call((), Some(&kwargs))?;
    types.epoch.bind(py).add(delta)
}

/// A `timedelta` of a duration.
pub(crate) fn timedelta_of<'py>(py: Python<'py>, d: Duration) -> PyResult<Bound<'py, PyAny>> {
    let types = datetime_types(py)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(
        "microseconds",
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
    )?;
    types.timedelta.bind(py).call((), Some(&kwargs))
}

/// The RFC 3339 text (UTC, `Z`) of a time argument, as the JSON forms of key specs, patches
/// and usage queries carry times.
#[pyfunction]
#[pyo3(signature = (value, name = "time"))]
pub(crate) fn timestamp_text(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    Ok(time_arg(value, name)?.to_string())
}

/// Microseconds since the Unix epoch of a time argument (an aware datetime or epoch
/// milliseconds).
#[pyfunction]
#[pyo3(signature = (value, name = "time"))]
pub(crate) fn epoch_micros(value: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    Ok(time_arg(value, name)?.as_microsecond())
}

/// Reads a JSON-shaped Python value (dict, list, tuple, str, int, float, bool, None; aware
/// datetimes become RFC 3339 text) into a core input type. Errors name the path of the bad
/// field: `key spec: limits[0]: ...`.
pub(crate) fn from_py<T: DeserializeOwned>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    let value = to_value(obj, what, 0)?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // A core error raised inside serde carries its code in its text; the exception's
        // class already says it.
        let inner = inner.strip_prefix("invalid_argument: ").unwrap_or(&inner);
        if path == "." {
            invalid(format!("{what}: {inner}"))
        } else {
            invalid(format!("{what}: {path}: {inner}"))
        }
    })
}

/// Writes a core output value as JSON-shaped Python values (dict, list, str, int, bool, None).
pub(crate) fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(value)
        .map_err(|e| invalid(format!("cannot convert a result: {e}")))?;
    from_value(py, &value)
}

fn to_value(obj: &Bound<'_, PyAny>, what: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "{what}: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(n) = obj.extract::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = obj.extract::<u64>() {
            return Ok(Value::Number(n.into()));
        }
        // Kept exact as a big number, so that serde refuses it with a message rather than
        // anything here rounding it.
        let text = obj.str()?.to_string();
        let number: Number = serde_json::from_str(&text)
            .map_err(|_| invalid(format!("{what}: cannot read the integer {text}")))?;
        return Ok(Value::Number(number));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value();
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| invalid(format!("{what}: {f} is not a finite number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(utf8(s, what)?.to_owned()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (key, value) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                return Err(invalid(format!(
                    "{what}: a key is a {}, not a str",
                    type_name(&key)
                )));
            };
            let key = utf8(key, what)?.to_owned();
            let value = to_value(&value, what, depth + 1)?;
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(to_value(&item?, what, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    let py = obj.py();
    if obj.is_instance(datetime_types(py)?.datetime.bind(py))? {
        return Ok(Value::String(time_arg(obj, what)?.to_string()));
    }
    Err(invalid(format!(
        "{what}: a {} is not a JSON value (str, int, float, bool, None, list, dict)",
        type_name(obj)
    )))
}

fn from_value<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                // With exact numbers on, a number outside i64 and u64 keeps its text: an
                // integer becomes a Python int of any size, anything else a float.
                let text = n.to_string();
                if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    py.get_type::<PyInt>().call1((text,))?
                } else {
                    PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
                }
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_value(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, from_value(py, item)?)?;
            }
            dict.into_any()
        }
    })
}
