//! Values going out to JavaScript: 64-bit counts and instants.

use jiff::Timestamp;
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{ValueType, sys};

use crate::arg::MAX_SAFE_INTEGER;

/// A `u64` as JavaScript receives it: a `number` up to 2^53 - 1 (`Number.MAX_SAFE_INTEGER`)
/// and a `bigint` above, so that no count or amount is ever rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct U64(pub u64);

impl TypeName for U64 {
    fn type_name() -> &'static str {
        "number | bigint"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for U64 {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let mut out = std::ptr::null_mut();
        let status = if val.0 <= MAX_SAFE_INTEGER {
            // The bound makes the conversion exact; i64 holds every safe integer.
            let n = i64::try_from(val.0).unwrap_or(i64::MAX);
            // SAFETY: creates a number in the caller's environment.
            unsafe { sys::napi_create_int64(env, n, &mut out) }
        } else {
            // SAFETY: creates a bigint in the caller's environment.
            unsafe { sys::napi_create_bigint_uint64(env, val.0, &mut out) }
        };
        napi::check_status!(status, "creating a number failed")?;
        Ok(out)
    }
}

impl From<u64> for U64 {
    fn from(n: u64) -> U64 {
        U64(n)
    }
}

/// An instant as JavaScript receives it: epoch milliseconds (the vault keeps microseconds;
/// the rest is cut, as `Date` would).
pub fn millis(at: Timestamp) -> i64 {
    at.as_millisecond()
}

/// A duration in whole milliseconds, rounded up so that waiting that long is always enough,
/// and capped at `Number.MAX_SAFE_INTEGER` (some 285,000 years) so that it stays a `number`.
pub fn millis_ceil(d: std::time::Duration) -> i64 {
    let ms = d
        .as_nanos()
        .div_ceil(1_000_000)
        .min(u128::from(MAX_SAFE_INTEGER));
    i64::try_from(ms).unwrap_or(i64::MAX)
}
