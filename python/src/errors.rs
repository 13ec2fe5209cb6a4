//! Core errors as the exception classes of `nanu._errors`, one class per stable code.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// `nanu._errors._BY_CODE`: the exception class of each code.
static CLASSES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn class_of<'py>(py: Python<'py>, code: &str) -> PyResult<Bound<'py, PyType>> {
    let classes = CLASSES.get_or_try_init(py, || -> PyResult<_> {
        let module = py.import("nanu._errors")?;
        Ok(module.getattr("_BY_CODE")?.cast_into::<PyDict>()?.unbind())
    })?;
    let classes = classes.bind(py);
    let class = match classes.get_item(code)? {
        Some(class) => class,
        // A code added to the core before this binding learned it: the root class still
        // carries the code on the instance.
        None => py.import("nanu._errors")?.getattr("Error")?,
    };
    Ok(class.cast_into::<PyType>()?)
}

/// The exception for a core error: the class of its code, with the core's message.
pub(crate) fn to_py(py: Python<'_>, err: &nanu::Error) -> PyErr {
    raise(py, err.code().as_str(), err.message())
}

/// An `invalid_argument` exception with a message.
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| raise(py, "invalid_argument", &message))
}

/// A `closed` exception.
pub(crate) fn closed(py: Python<'_>) -> PyErr {
    raise(py, "closed", "the vault is closed")
}

fn raise(py: Python<'_>, code: &str, message: &str) -> PyErr {
    match class_of(py, code) {
        Ok(class) => PyErr::from_type(class, (message.to_owned(), code.to_owned())),
        // The package is broken (nanu._errors missing): say so rather than hide the error.
        Err(err) => err,
    }
}

/// Converts core results, attached to the interpreter.
pub(crate) trait OrRaise<T> {
    /// The value, or the error raised as its exception class.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for nanu::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|err| to_py(py, &err))
    }
}
