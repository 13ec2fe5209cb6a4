//! Values passed in from JavaScript, read by hand.
//!
//! Every binding call takes its arguments as [`Arg`] rather than letting Node-API convert them,
//! so that every bad input (a wrong type, a negative, fractional, unsafe or non-finite number, an
//! unknown field) is an `invalid_argument` error that names the argument, never a silently
//! rounded or ignored value.

use std::marker::PhantomData;
use std::ptr;

use jiff::Timestamp;
use napi::bindgen_prelude::{FromNapiValue, TypeName, ValidateNapiValue};
use napi::{ValueType, sys};

use crate::error::{Result, invalid};
use crate::shape::{Fields, Scan};

/// The largest integer a JavaScript `number` holds exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The JavaScript type of a value (`typeof`, with `null` apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Symbol,
    Object,
    Function,
    External,
    BigInt,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Undefined => "undefined",
            Kind::Null => "null",
            Kind::Boolean => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Symbol => "a symbol",
            Kind::Object => "an object",
            Kind::Function => "a function",
            Kind::External => "an external",
            Kind::BigInt => "a bigint",
        }
    }
}

/// A JavaScript value passed to a binding call, valid for the duration of that call.
#[derive(Clone, Copy)]
pub struct Arg<'a> {
    env: sys::napi_env,
    value: sys::napi_value,
    _call: PhantomData<&'a ()>,
}

impl std::fmt::Debug for Arg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arg").field("kind", &self.kind()).finish()
    }
}

impl TypeName for Arg<'_> {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for Arg<'_> {}

impl FromNapiValue for Arg<'_> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        Ok(Arg {
            env,
            value,
            _call: PhantomData,
        })
    }
}

/// Checks the status of a Node-API call made on an argument; a failure means the value was not
/// of the type the call reads.
fn check(status: sys::napi_status, what: &str, expected: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(invalid(format!("{what} must be {expected}")))
    }
}

impl<'a> Arg<'a> {
    pub(crate) fn raw(&self) -> sys::napi_value {
        self.value
    }

    pub(crate) fn env(&self) -> sys::napi_env {
        self.env
    }

    fn with(&self, value: sys::napi_value) -> Arg<'a> {
        Arg {
            env: self.env,
            value,
            _call: PhantomData,
        }
    }

    /// The value's type.
    pub fn kind(&self) -> Kind {
        let mut t = 0;
        // SAFETY: `env` and `value` come from the current call; `napi_typeof` only reads.
        let status = unsafe { sys::napi_typeof(self.env, self.value, &mut t) };
        if status != sys::Status::napi_ok {
            return Kind::Undefined;
        }
        match t {
            sys::ValueType::napi_null => Kind::Null,
            sys::ValueType::napi_boolean => Kind::Boolean,
            sys::ValueType::napi_number => Kind::Number,
            sys::ValueType::napi_string => Kind::String,
            sys::ValueType::napi_symbol => Kind::Symbol,
            sys::ValueType::napi_object => Kind::Object,
            sys::ValueType::napi_function => Kind::Function,
            sys::ValueType::napi_external => Kind::External,
            sys::ValueType::napi_bigint => Kind::BigInt,
            _ => Kind::Undefined,
        }
    }

    /// Whether the value is `undefined` or `null`: an argument or field left out.
    pub fn is_absent(&self) -> bool {
        matches!(self.kind(), Kind::Undefined | Kind::Null)
    }

    /// `None` when the value is `undefined` or `null`.
    pub fn present(self) -> Option<Arg<'a>> {
        (!self.is_absent()).then_some(self)
    }

    fn wrong(&self, what: &str, expected: &str) -> crate::error::Error {
        invalid(format!(
            "{what} must be {expected}, not {}",
            self.kind().name()
        ))
    }

    /// A string. Strings up to `buf.len() - 1` bytes are read into `buf` without allocating.
    pub fn str_in<'b>(&self, what: &str, buf: &'b mut [u8]) -> Result<StrRead<'b>> {
        let mut len = 0usize;
        // SAFETY: `buf` is writable for `buf.len()` bytes; Node-API writes at most that many,
        // a terminating NUL included, and reports the bytes written without it.
        let status = unsafe {
            sys::napi_get_value_string_utf8(
                self.env,
                self.value,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut len,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(self.wrong(what, "a string"));
        }
        if len + 1 < buf.len() {
            // Node-API cuts at a character boundary, so a short read is a whole string.
            return std::str::from_utf8(&buf[..len])
                .map(StrRead::Borrowed)
                .map_err(|_| invalid(format!("{what} is not valid text")));
        }
        self.string_unbuffered(what).map(StrRead::Owned)
    }

    /// A string.
    pub fn string(&self, what: &str) -> Result<String> {
        // Most strings (ids, names, models) fit a small buffer: one Node-API call, not two.
        let mut buf = [0u8; 256];
        let text = self.str_in(what, &mut buf)?;
        Ok(match text {
            StrRead::Borrowed(s) => s.to_owned(),
            StrRead::Owned(s) => s,
        })
    }

    fn string_unbuffered(&self, what: &str) -> Result<String> {
        let mut len = 0usize;
        // SAFETY: a null buffer asks only for the length in bytes.
        let status = unsafe {
            sys::napi_get_value_string_utf8(self.env, self.value, ptr::null_mut(), 0, &mut len)
        };
        if status != sys::Status::napi_ok {
            return Err(self.wrong(what, "a string"));
        }
        let mut bytes = vec![0u8; len + 1];
        let mut written = 0usize;
        // SAFETY: `bytes` holds `len + 1` bytes, room for the string and its NUL.
        let status = unsafe {
            sys::napi_get_value_string_utf8(
                self.env,
                self.value,
                bytes.as_mut_ptr().cast(),
                bytes.len(),
                &mut written,
            )
        };
        check(status, what, "a string")?;
        bytes.truncate(written);
        String::from_utf8(bytes).map_err(|_| invalid(format!("{what} is not valid text")))
    }

    /// A string, or `None` when absent.
    pub fn opt_string(&self, what: &str) -> Result<Option<String>> {
        self.present().map(|v| v.string(what)).transpose()
    }

    /// A boolean.
    pub fn bool(&self, what: &str) -> Result<bool> {
        let mut b = false;
        // SAFETY: reads a boolean; fails without side effects on any other type.
        let status = unsafe { sys::napi_get_value_bool(self.env, self.value, &mut b) };
        if status != sys::Status::napi_ok {
            return Err(self.wrong(what, "a boolean"));
        }
        Ok(b)
    }

    fn f64(&self) -> Option<f64> {
        let mut n = 0f64;
        // SAFETY: reads a number; fails without side effects on any other type.
        let status = unsafe { sys::napi_get_value_double(self.env, self.value, &mut n) };
        (status == sys::Status::napi_ok).then_some(n)
    }

    /// A non-negative integer: a `number` that is a safe integer, or a `bigint` up to 2^64 - 1.
    pub fn u64(&self, what: &str) -> Result<u64> {
        const EXPECTED: &str = "a non-negative safe integer or a bigint below 2^64";
        match self.kind() {
            Kind::Number => {
                let n = self.f64().ok_or_else(|| self.wrong(what, EXPECTED))?;
                safe_u64(n).ok_or_else(|| invalid(format!("{what} must be {EXPECTED}, not {n}")))
            }
            Kind::BigInt => {
                let mut n = 0u64;
                let mut lossless = false;
                // SAFETY: reads a bigint; `lossless` is false when it is negative or too big.
                let status = unsafe {
                    sys::napi_get_value_bigint_uint64(self.env, self.value, &mut n, &mut lossless)
                };
                check(status, what, EXPECTED)?;
                if !lossless {
                    return Err(invalid(format!("{what} must be {EXPECTED}")));
                }
                Ok(n)
            }
            _ => Err(self.wrong(what, EXPECTED)),
        }
    }

    /// A non-negative integer, or `None` when absent.
    pub fn opt_u64(&self, what: &str) -> Result<Option<u64>> {
        self.present().map(|v| v.u64(what)).transpose()
    }

    /// A count that indexes memory (a page size, a list limit).
    pub fn usize(&self, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        usize::try_from(n).map_err(|_| invalid(format!("{what} is too large")))
    }

    /// An instant: a `Date`, epoch milliseconds as a safe integer (negative before 1970), or
    /// an RFC 3339 string, which keeps microseconds (`2025-01-01T00:00:04.999999Z`).
    pub fn time(&self, what: &str) -> Result<Timestamp> {
        const EXPECTED: &str = "a Date, epoch milliseconds (a safe integer) or an RFC 3339 string";
        let ms = match self.kind() {
            Kind::Number => {
                let n = self.f64().ok_or_else(|| self.wrong(what, EXPECTED))?;
                safe_i64(n).ok_or_else(|| invalid(format!("{what} must be {EXPECTED}, not {n}")))?
            }
            Kind::String => {
                let mut buf = [0u8; 64];
                let text = self.str_in(what, &mut buf)?;
                return text
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("{what} {:?} is not an RFC 3339 time", &*text)));
            }
            Kind::Object if self.is_date() => {
                let mut n = 0f64;
                // SAFETY: the value is a Date, checked just above.
                let status = unsafe { sys::napi_get_date_value(self.env, self.value, &mut n) };
                check(status, what, EXPECTED)?;
                safe_i64(n).ok_or_else(|| invalid(format!("{what} is an invalid Date")))?
            }
            _ => return Err(self.wrong(what, EXPECTED)),
        };
        Timestamp::from_millisecond(ms)
            .map_err(|_| invalid(format!("{what} is out of the supported range of times")))
    }

    /// An instant, or `None` when absent.
    pub fn opt_time(&self, what: &str) -> Result<Option<Timestamp>> {
        self.present().map(|v| v.time(what)).transpose()
    }

    /// Whether the value is a `Date`.
    pub fn is_date(&self) -> bool {
        let mut b = false;
        // SAFETY: a type check without side effects.
        let status = unsafe { sys::napi_is_date(self.env, self.value, &mut b) };
        status == sys::Status::napi_ok && b
    }

    /// Whether the value is an array.
    pub fn is_array(&self) -> bool {
        let mut b = false;
        // SAFETY: a type check without side effects.
        let status = unsafe { sys::napi_is_array(self.env, self.value, &mut b) };
        status == sys::Status::napi_ok && b
    }

    /// The bytes of a `Buffer` or `Uint8Array`, or `None` for any other value.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        let mut is_typed = false;
        // SAFETY: a type check without side effects.
        let status = unsafe { sys::napi_is_typedarray(self.env, self.value, &mut is_typed) };
        if status != sys::Status::napi_ok || !is_typed {
            return None;
        }
        let mut kind = 0;
        let mut len = 0usize;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0usize;
        // SAFETY: the value is a typed array (checked above); Node-API reports where its
        // bytes are, and they stay valid for this call.
        let status = unsafe {
            sys::napi_get_typedarray_info(
                self.env,
                self.value,
                &mut kind,
                &mut len,
                &mut data,
                &mut buffer,
                &mut offset,
            )
        };
        if status != sys::Status::napi_ok || kind != sys::TypedarrayType::uint8_array {
            return None;
        }
        if len == 0 {
            return Some(Vec::new());
        }
        // SAFETY: `data` points at `len` initialized bytes of a Uint8Array, alive for the call.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        Some(bytes.to_vec())
    }

    /// Whether the value is an object other than an array or a `Date`.
    pub fn is_plain_object(&self) -> bool {
        self.kind() == Kind::Object && !self.is_array() && !self.is_date()
    }

    /// Checks that the value is an object other than an array or a `Date`.
    pub fn expect_object(&self, what: &str) -> Result<()> {
        if self.is_plain_object() {
            Ok(())
        } else {
            Err(self.wrong(what, "an object"))
        }
    }

    /// The elements of an array.
    pub fn elements(&self, what: &str) -> Result<Vec<Arg<'a>>> {
        if !self.is_array() {
            return Err(self.wrong(what, "an array"));
        }
        let mut len = 0u32;
        // SAFETY: the value is an array (checked above).
        let status = unsafe { sys::napi_get_array_length(self.env, self.value, &mut len) };
        check(status, what, "an array")?;
        (0..len)
            .map(|i| {
                let mut element = ptr::null_mut();
                // SAFETY: reads element `i` of the array; a getter that throws fails the call.
                let status =
                    unsafe { sys::napi_get_element(self.env, self.value, i, &mut element) };
                check(status, what, "an array")?;
                Ok(self.with(element))
            })
            .collect()
    }

    /// The own enumerable string-keyed properties of a plain object, in their order, leaving
    /// out those whose value is `undefined`.
    pub fn fields(&self, what: &str) -> Result<Vec<(String, Arg<'a>)>> {
        self.expect_object(what)?;
        let mut names = ptr::null_mut();
        // SAFETY: the value is an object (checked above); the call lists its own enumerable
        // string keys.
        let status = unsafe {
            sys::napi_get_all_property_names(
                self.env,
                self.value,
                sys::KeyCollectionMode::own_only,
                sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                sys::KeyConversion::numbers_to_strings,
                &mut names,
            )
        };
        check(status, what, "an object")?;
        let names = self.with(names);
        let mut fields = Vec::new();
        for name in names.elements(what)? {
            let mut value = ptr::null_mut();
            // SAFETY: reads a property by a key the object just listed.
            let status =
                unsafe { sys::napi_get_property(self.env, self.value, name.raw(), &mut value) };
            check(status, what, "an object")?;
            let value = self.with(value);
            if value.kind() == Kind::Undefined {
                continue;
            }
            fields.push((name.string(what)?, value));
        }
        Ok(fields)
    }

    /// The fields of a plain object named by `fields`, `None` where absent (or `undefined`).
    /// An own field not named is an error.
    pub fn fields_of<const N: usize>(
        &self,
        fields: &'static Fields,
        what: &str,
    ) -> Result<[Option<Arg<'a>>; N]> {
        debug_assert_eq!(fields.names().len(), N);
        let failed = |e: napi::Error| {
            if e.status == napi::Status::PendingException {
                // A getter threw; its exception is what the caller sees.
                invalid(format!("reading {what} failed"))
            } else {
                invalid(format!("{what}: {}", e.reason))
            }
        };
        // SAFETY: the environment and value of the current call.
        let scan = unsafe { fields.scan(self.env, self.value) }.map_err(failed)?;
        let (mask, values) = match scan {
            Scan::Present { mask, values } => (mask, values),
            Scan::NotAnObject => return Err(self.wrong(what, "an object")),
            Scan::Unknown(name) => {
                let name = self.with(name).string(what)?;
                return Err(invalid(format!(
                    "{what}: unknown field {name:?} (expected {})",
                    fields.names().join(", ")
                )));
            }
        };
        let mut out = [None; N];
        for (i, slot) in out.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                // SAFETY: the environment of the current call and the scan's values.
                let value = unsafe { fields.value(self.env, values, i) }.map_err(failed)?;
                *slot = Some(self.with(value));
            }
        }
        Ok(out)
    }

    /// A named property of an object (`undefined` when missing).
    pub fn get(&self, name: &std::ffi::CStr) -> Result<Arg<'a>> {
        let mut value = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; a getter that throws fails the call.
        let status = unsafe {
            sys::napi_get_named_property(self.env, self.value, name.as_ptr(), &mut value)
        };
        if status != sys::Status::napi_ok {
            return Err(invalid(format!(
                "reading {} failed",
                name.to_string_lossy()
            )));
        }
        Ok(self.with(value))
    }

    /// A function, checked.
    pub fn function(&self, what: &str) -> Result<Arg<'a>> {
        if self.kind() != Kind::Function {
            return Err(self.wrong(what, "a function"));
        }
        Ok(*self)
    }
}

/// A string read by [`Arg::str_in`]: in the caller's buffer when it fit.
#[derive(Debug)]
pub enum StrRead<'b> {
    Borrowed(&'b str),
    Owned(String),
}

impl std::ops::Deref for StrRead<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            StrRead::Borrowed(s) => s,
            StrRead::Owned(s) => s,
        }
    }
}

/// `n` as a `u64` when it is a non-negative safe integer.
pub fn safe_u64(n: f64) -> Option<u64> {
    // Comparing against the exact bound keeps every accepted value exactly representable.
    if n.is_finite() && n.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(&n) {
        Some(n as u64)
    } else {
        None
    }
}

/// `n` as an `i64` when it is a safe integer.
pub fn safe_i64(n: f64) -> Option<i64> {
    let bound = MAX_SAFE_INTEGER as f64;
    if n.is_finite() && n.fract() == 0.0 && (-bound..=bound).contains(&n) {
        Some(n as i64)
    } else {
        None
    }
}
