//! What the frozen views of core values (`SidecarEntry`, `MarkerReport`,
//! `ErrorInfo`, `StopOutcome`) share: read-only getters over the core value
//! in `inner`, and its JSON as `to_dict()` and as the pickled form.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

/// A view class: a frozen `#[pyclass]` of the `firma_stack` module, equal
/// (and with `hashable` also hashable) as its core value, which it holds
/// in `inner`; and its `#[pymethods]`.
///
/// `class Class(CoreType) { ... }` (after the class's doc comment, its
/// docstring) declares the class; the rest is as for `impl Class { ... }`,
/// which gives only the `#[pymethods]` of a class declared elsewhere.
///
/// `impl Class { name -> Type = |inner| expression; ... }` gives one
/// read-only getter per line (its doc comment is the property's docstring).
/// The optional `to_dict` line (with its docstring) adds `to_dict()`, the
/// core's JSON as a dict, and with `pickled by f` also `__reduce__`, which
/// pickles that JSON and rebuilds with the `_native` function `f`. The
/// `methods` block holds the class's other methods, as written.
macro_rules! view_pymethods {
    (
        $(#[$doc:meta])*
        class $class:ident($inner:ty), hashable { $($getters:tt)* }
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        #[::pyo3::pyclass(frozen, eq, hash, module = "firma_stack")]
        #[derive(PartialEq, Hash)]
        pub(crate) struct $class {
            inner: $inner,
        }

        $crate::view::view_pymethods! { impl $class { $($getters)* } $($rest)* }
    };
    (
        $(#[$doc:meta])*
        class $class:ident($inner:ty) { $($getters:tt)* }
        $($rest:tt)*
    ) => {
        $(#[$doc])*
        #[::pyo3::pyclass(frozen, eq, module = "firma_stack")]
        #[derive(PartialEq)]
        pub(crate) struct $class {
            inner: $inner,
        }

        $crate::view::view_pymethods! { impl $class { $($getters)* } $($rest)* }
    };
    (
        impl $class:ident {
            $( $(#[$get_attr:meta])* $get:ident -> $ret:ty = |$inner:ident| $body:expr; )*
        }
        $( $(#[$dict_attr:meta])* to_dict $(, pickled by $rebuild:ident)?; )?
        methods { $($methods:tt)* }
    ) => {
        #[::pyo3::pymethods]
        impl $class {
            $(
                $(#[$get_attr])*
                #[getter]
                fn $get(&self) -> $ret {
                    let $inner = &self.inner;
                    $body
                }
            )*

            $(
                $(#[$dict_attr])*
                fn to_dict<'py>(
                    &self,
                    py: ::pyo3::Python<'py>,
                ) -> ::pyo3::PyResult<::pyo3::Bound<'py, ::pyo3::PyAny>> {
                    $crate::view::loads(py, ::serde_json::to_string(&self.inner))
                }

                $(
                    fn __reduce__<'py>(
                        &self,
                        py: ::pyo3::Python<'py>,
                    ) -> ::pyo3::PyResult<::pyo3::Bound<'py, ::pyo3::types::PyTuple>> {
                        $crate::view::reduce(
                            py,
                            stringify!($rebuild),
                            ::serde_json::to_string(&self.inner),
                        )
                    }
                )?
            )?

            $($methods)*
        }
    };
}
pub(crate) use view_pymethods;

/// `json.loads(text)`: the dict of `to_dict()`, from the core's serializer.
pub(crate) fn loads(
    py: Python<'_>,
    text: serde_json::Result<String>,
) -> PyResult<Bound<'_, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOADS
        .import(py, "json", "loads")?
        .call1((core_json(py, text)?,))
}

/// The core's JSON text; failing to serialize is a bug (internal).
fn core_json(py: Python<'_>, text: serde_json::Result<String>) -> PyResult<String> {
    text.map_err(|e| crate::exceptions::internal(py, &format!("cannot serialize: {e}")))
}

/// Pickling and `copy`: `(firma_stack._native.<rebuild>, (json,))`, the
/// value rebuilt from the core's own JSON of it.
pub(crate) fn reduce<'py>(
    py: Python<'py>,
    rebuild: &str,
    text: serde_json::Result<String>,
) -> PyResult<Bound<'py, PyTuple>> {
    let text = core_json(py, text)?;
    let f = py.import("firma_stack._native")?.getattr(rebuild)?;
    let args = PyTuple::new(py, [text])?;
    PyTuple::new(py, [f, args.into_any()])
}

/// `repr()` of a string, as Python writes it.
pub(crate) fn repr_str(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(PyString::new(py, s).repr()?.to_cow()?.into_owned())
}
