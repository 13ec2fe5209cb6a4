//! The panic boundary. Every export's body is one call of [`guard`]; a test
//! (`tests/boundary.rs`) checks that no export is left outside it.

use std::any::Any;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use nanu_core::Error;

use crate::secret::nanu_secret;
use crate::status::{fail, nanu_status, set_last_error};

/// Runs an export's work, turning its result into what C receives and a panic into the
/// export's fallback value (`NANU_STATUS_PANIC` for status-returning exports), so that no
/// unwind ever crosses into C.
pub(crate) fn guard<R: Outcome>(work: impl FnOnce() -> R) -> R::Output {
    // The work only touches state that a panic cannot leave half-changed from C's point of
    // view: outputs are written last, after everything that can fail.
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.finish(),
        Err(payload) => {
            set_last_error(&format!(
                "internal error: nanu panicked ({}); please report it",
                panic_text(&*payload)
            ));
            R::Output::fallback()
        }
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "no message"
    }
}

/// What the work inside an export returns, and how C receives it.
pub(crate) trait Outcome {
    /// The export's C return type.
    type Output: Fallback;

    /// Converts the work's result, recording an error as this thread's last error.
    fn finish(self) -> Self::Output;
}

/// The value an export returns when its work panicked.
pub(crate) trait Fallback {
    fn fallback() -> Self;
}

impl Outcome for Result<(), Error> {
    type Output = nanu_status;

    fn finish(self) -> nanu_status {
        match self {
            Ok(()) => nanu_status::Ok,
            Err(err) => fail(&err),
        }
    }
}

impl Fallback for nanu_status {
    fn fallback() -> nanu_status {
        nanu_status::Panic
    }
}

/// Exports that return a plain value return it as is, and a fixed value after a panic.
macro_rules! plain_outcomes {
    ($($ty:ty => $fallback:expr),* $(,)?) => {$(
        impl Outcome for $ty {
            type Output = $ty;

            fn finish(self) -> $ty {
                self
            }
        }

        impl Fallback for $ty {
            fn fallback() -> $ty {
                $fallback
            }
        }
    )*};
}

plain_outcomes!(
    () => (),
    usize => 0,
    u32 => 0,
    *const c_char => c"".as_ptr(),
    *const nanu_secret => std::ptr::null(),
);

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::status::nanu_last_error;

    fn last_error() -> String {
        // SAFETY: nanu_last_error returns a NUL-terminated string that stays valid until the
        // next nanu call on this thread, and it is copied before any other call.
        unsafe { CStr::from_ptr(nanu_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| -> Result<(), Error> { panic!("boom at the boundary") });
        assert_eq!(status, nanu_status::Panic);
        assert!(
            last_error().contains("boom at the boundary"),
            "{}",
            last_error()
        );

        let text = guard(|| -> *const c_char { panic!("{}", String::from("formatted")) });
        // SAFETY: the fallback is a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(text) }.to_bytes(), b"");
        assert!(last_error().contains("formatted"));

        assert_eq!(guard(|| -> usize { panic!("len") }), 0);
    }

    #[test]
    fn an_error_is_recorded_for_this_thread_only() {
        let status = guard(|| -> Result<(), Error> {
            Err(Error::new(
                nanu_core::ErrorCode::Conflict,
                "request id \"r1\" differs",
            ))
        });
        assert_eq!(status, nanu_status::Conflict);
        assert_eq!(last_error(), "request id \"r1\" differs");
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
    }
}
