//! Fast JavaScript objects and property names.
//!
//! Building an object through Node-API sets its properties one at a time, each through V8's
//! generic path, with every property name looked up in the string table again: measured here,
//! about 4.7 us for a verdict of 18 properties. A JavaScript object literal with a fixed shape
//! costs a few nanoseconds, so each output type is built by a small function compiled once per
//! environment, `(a0, a1, ...) => ({ keyId: a0, owner: a1, ... })`, and called with the
//! converted field values (about 0.4 us for the same verdict). Input objects on the hot path
//! (verify's request, a charge's usage) are scanned the same way, by a compiled function that
//! lists which fields are present and rejects unknown ones, and then read by interned names;
//! listing an object's keys through Node-API instead costs about 1 us.
//!
//! The cache lives in a thread-local: Node runs one environment per thread (the main thread
//! and each worker), and an environment never moves to another thread.

use std::cell::RefCell;
use std::ptr;

use napi::sys;

use crate::json::camel_case;

/// An object type: its fields, in the snake_case of the Rust struct, written in camelCase.
#[derive(Debug)]
pub struct Shape {
    fields: &'static [&'static str],
    source: Option<fn() -> String>,
}

/// The fields of an input object (verify's request, a charge's usage), read through a compiled
/// scan that also rejects unknown fields.
#[derive(Debug)]
pub struct Fields {
    names: &'static [&'static str],
}

struct Compiled {
    env: sys::napi_env,
    /// `(address of a Shape or Fields and which of its values, reference to that value)`.
    refs: Vec<((usize, u8), sys::napi_ref)>,
}

thread_local! {
    static COMPILED: RefCell<Compiled> = const {
        RefCell::new(Compiled { env: ptr::null_mut(), refs: Vec::new() })
    };
}

fn ok(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            format!("{what} failed"),
        ))
    }
}

/// The value of the script `source` in `env`, compiled on first use and kept for the life of
/// the environment under `key`. The value must be an object (Node 20 keeps references to
/// objects only).
///
/// # Safety
///
/// `env` is the environment of the current call, on its own thread.
unsafe fn compiled(
    env: sys::napi_env,
    key: (usize, u8),
    source: impl FnOnce() -> String,
) -> napi::Result<sys::napi_value> {
    let found = COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if c.env != env {
            // A new environment on this thread: the old one's references died with it.
            c.env = env;
            c.refs.clear();
        }
        c.refs.iter().find(|(k, _)| *k == key).map(|&(_, r)| r)
    });
    let kept = match found {
        Some(kept) => kept,
        None => {
            let source = source();
            let mut text = ptr::null_mut();
            let mut value = ptr::null_mut();
            let mut kept = ptr::null_mut();
            // SAFETY: the script is one of this module's fixed expressions, built from Rust
            // names; evaluating it runs no user code. The strong reference keeps its value
            // alive for the life of the environment.
            unsafe {
                ok(
                    sys::napi_create_string_utf8(
                        env,
                        source.as_ptr().cast(),
                        source.len() as isize,
                        &mut text,
                    ),
                    "creating a script",
                )?;
                ok(
                    sys::napi_run_script(env, text, &mut value),
                    "compiling a script",
                )?;
                ok(
                    sys::napi_create_reference(env, value, 1, &mut kept),
                    "keeping a script",
                )?;
            }
            COMPILED.with(|c| c.borrow_mut().refs.push((key, kept)));
            kept
        }
    };
    let mut value = ptr::null_mut();
    // SAFETY: `kept` was created in `env` and is never deleted while the environment lives.
    ok(
        unsafe { sys::napi_get_reference_value(env, kept, &mut value) },
        "reading a script",
    )?;
    Ok(value)
}

/// Calls a compiled function with `args`.
///
/// # Safety
///
/// `env` is the environment of the current call and every value was created in it.
unsafe fn call(
    env: sys::napi_env,
    function: sys::napi_value,
    args: &[sys::napi_value],
) -> napi::Result<sys::napi_value> {
    let mut this = ptr::null_mut();
    let mut out = ptr::null_mut();
    // SAFETY: calls one of this module's compiled functions in `env`.
    unsafe {
        ok(sys::napi_get_undefined(env, &mut this), "reading undefined")?;
        let status =
            sys::napi_call_function(env, this, function, args.len(), args.as_ptr(), &mut out);
        if status == sys::Status::napi_pending_exception {
            // A getter on an input object threw: let its exception propagate as it is.
            return Err(napi::Error::new(
                napi::Status::PendingException,
                "exception",
            ));
        }
        ok(status, "calling a compiled function")?;
    }
    Ok(out)
}

impl Shape {
    /// A shape with these fields (snake_case Rust names).
    pub const fn new(fields: &'static [&'static str]) -> Shape {
        Shape {
            fields,
            source: None,
        }
    }

    /// A shape built by a hand-written function (`source` returns its text), for an object
    /// on the hot path that is worth a flatter call.
    pub const fn custom(source: fn() -> String) -> Shape {
        Shape {
            fields: &[],
            source: Some(source),
        }
    }

    fn source(&self) -> String {
        if let Some(source) = self.source {
            return source();
        }
        let args: Vec<String> = (0..self.fields.len()).map(|i| format!("a{i}")).collect();
        let props: Vec<String> = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{}: a{i}", camel_case(f)))
            .collect();
        format!(
            "(function ({}) {{ return {{ {} }}; }})",
            args.join(", "),
            props.join(", ")
        )
    }

    /// Builds the object from its field values, in the order of `fields`.
    ///
    /// # Safety
    ///
    /// `env` is the environment of the current call and every value was created in it.
    pub unsafe fn build(
        &'static self,
        env: sys::napi_env,
        values: &[sys::napi_value],
    ) -> napi::Result<sys::napi_value> {
        debug_assert!(self.source.is_some() || values.len() == self.fields.len());
        let key = (self as *const Shape as usize, 0);
        // SAFETY: the caller's environment, on its thread.
        unsafe {
            let function = compiled(env, key, || self.source())?;
            call(env, function, values)
        }
    }
}

/// What [`Fields::scan`] found in an input object.
#[derive(Debug)]
pub enum Scan {
    /// The value is not a plain object.
    NotAnObject,
    /// An own field that is not one of the names, with a value other than `undefined`.
    Unknown(sys::napi_value),
    /// Bit `i` of `mask` is set when the field `names[i]` is an own field whose value is not
    /// `undefined`; `values` holds them (read with [`Fields::value`]).
    Present { mask: u32, values: sys::napi_value },
}

impl Fields {
    /// The fields an input object may have (at most 32).
    pub const fn new(names: &'static [&'static str]) -> Fields {
        assert!(names.len() <= 32);
        Fields { names }
    }

    /// The names, in order.
    pub fn names(&self) -> &'static [&'static str] {
        self.names
    }

    fn scan_source(&self) -> String {
        let slots: Vec<String> = (0..self.names.len()).map(|i| format!("a{i}")).collect();
        let cases: Vec<String> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("case {n:?}: m |= {}; a{i} = v; break;", 1u32 << i))
            .collect();
        // Own enumerable string keys, as `Object.keys` lists them, each read once; a field
        // set to `undefined` counts as absent. The values come back in an array, which the
        // binding reads by index (cheaper than a property lookup by name).
        format!(
            "(function (o) {{ \
               if (typeof o !== 'object' || o === null || Array.isArray(o) || \
                   o instanceof Date) return -1; \
               let m = 0, {slots}; \
               for (const k in o) {{ \
                 if (!Object.prototype.hasOwnProperty.call(o, k)) continue; \
                 const v = o[k]; \
                 if (v === undefined) continue; \
                 switch (k) {{ {cases} default: return k; }} \
               }} \
               return [m >>> 0, {slots}]; \
             }})",
            slots = slots.join(", "),
            cases = cases.join(" ")
        )
    }

    /// Which of the fields `object` has, or the first unknown one.
    ///
    /// # Safety
    ///
    /// `env` is the environment of the current call and `object` was created in it.
    pub unsafe fn scan(
        &'static self,
        env: sys::napi_env,
        object: sys::napi_value,
    ) -> napi::Result<Scan> {
        let key = (self as *const Fields as usize, 0);
        // SAFETY: the caller's environment, on its thread.
        let found = unsafe {
            let function = compiled(env, key, || self.scan_source())?;
            call(env, function, &[object])?
        };
        let mut kind = 0;
        // SAFETY: `found` was just returned in `env`.
        ok(
            unsafe { sys::napi_typeof(env, found, &mut kind) },
            "scanning",
        )?;
        match kind {
            sys::ValueType::napi_string => Ok(Scan::Unknown(found)),
            sys::ValueType::napi_number => Ok(Scan::NotAnObject),
            _ => {
                let mut mask = ptr::null_mut();
                let mut n = 0u32;
                // SAFETY: the scan returns `[mask, values...]` when it returns an array.
                unsafe {
                    ok(sys::napi_get_element(env, found, 0, &mut mask), "scanning")?;
                    ok(sys::napi_get_value_uint32(env, mask, &mut n), "scanning")?;
                }
                Ok(Scan::Present {
                    mask: n,
                    values: found,
                })
            }
        }
    }

    /// The value of field `i` from a scan's `values`.
    ///
    /// # Safety
    ///
    /// `env` is the environment of the current call and `values` came from [`Fields::scan`].
    pub unsafe fn value(
        &'static self,
        env: sys::napi_env,
        values: sys::napi_value,
        i: usize,
    ) -> napi::Result<sys::napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: `values` is the scan's array, with one slot per name after the mask.
        ok(
            unsafe { sys::napi_get_element(env, values, i as u32 + 1, &mut value) },
            "reading a field",
        )?;
        Ok(value)
    }
}

/// Implements `ToNapiValue` for a `#[napi(object, object_to_js = false)]` struct through a
/// compiled [`Shape`]. Every field must be listed (the destructuring checks it).
macro_rules! js_object {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl napi::bindgen_prelude::ToNapiValue for $ty {
            unsafe fn to_napi_value(
                env: napi::sys::napi_env,
                val: Self,
            ) -> napi::Result<napi::sys::napi_value> {
                static SHAPE: $crate::shape::Shape =
                    $crate::shape::Shape::new(&[$(stringify!($field)),+]);
                let $ty { $($field),+ } = val;
                // SAFETY: converts each field in the caller's environment.
                let values = [$(unsafe {
                    napi::bindgen_prelude::ToNapiValue::to_napi_value(env, $field)?
                }),+];
                // SAFETY: the values were just created in `env`.
                unsafe { SHAPE.build(env, &values) }
            }
        }
    };
}

pub(crate) use js_object;
