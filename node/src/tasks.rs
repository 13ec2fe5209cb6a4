//! Work run off the JavaScript thread (the KDF, commits that wait for an fsync, long reports),
//! answered through a promise.

use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::error::{Result, into_rejection};

type Work<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// A piece of blocking work whose result resolves a promise, or whose error (with its `code`)
/// rejects it.
pub struct Job<T> {
    work: Option<Work<T>>,
}

impl<T> std::fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("done", &self.work.is_none())
            .finish()
    }
}

impl<T> Job<T> {
    /// Work to run on the thread pool.
    pub fn new(work: impl FnOnce() -> Result<T> + Send + 'static) -> Job<T> {
        Job {
            work: Some(Box::new(work)),
        }
    }

    /// Runs `prepare` now, on the JavaScript thread (it reads the arguments), then the work it
    /// returns on the thread pool. A bad argument rejects the promise rather than throwing, as
    /// an `async` function would.
    pub fn prepare<W>(prepare: impl FnOnce() -> Result<W>) -> Job<T>
    where
        W: FnOnce() -> Result<T> + Send + 'static,
    {
        match prepare() {
            Ok(work) => Job::new(work),
            Err(err) => Job::new(move || Err(err)),
        }
    }
}

impl<T> Task for Job<T>
where
    T: ToNapiValue + TypeName + Send + 'static,
{
    type Output = Result<T>;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let work = self
            .work
            .take()
            .ok_or_else(|| napi::Error::from_reason("the task ran twice"))?;
        // A panic is a bug in nanu; it rejects the promise instead of aborting the process.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| {
            napi::Error::new(
                napi::Status::GenericFailure,
                "nanu panicked while running the task (a bug)",
            )
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<T> {
        output.map_err(|err| into_rejection(&env, err))
    }
}
