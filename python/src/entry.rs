//! `SidecarEntry`: an immutable view of one core `SidecarEntry`.

use firma_stack::sidecar_markers as sm;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::view::{repr_str, view_pymethods};

impl From<sm::SidecarEntry> for SidecarEntry {
    fn from(inner: sm::SidecarEntry) -> Self {
        SidecarEntry { inner }
    }
}

/// `firma_stack._state.<class>(<code>)`: the member of that enum whose
/// value is `code`, from a table of its members made once (`members`), so
/// a getter costs a dict lookup rather than a call of the enum class.
pub(crate) fn py_code<'py>(
    py: Python<'py>,
    members: &'static PyOnceLock<Py<PyDict>>,
    name: &str,
    code: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let class = || py.import("firma_stack._state")?.getattr(name);
    let table = members.get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        let table = PyDict::new(py);
        for member in class()?.try_iter()? {
            let member = member?;
            table.set_item(member.getattr("value")?, member)?;
        }
        Ok(table.unbind())
    })?;
    match table.bind(py).get_item(code)? {
        Some(member) => Ok(member),
        // Not a member: the class says so in its own words.
        None => class()?.call1((code,)),
    }
}

/// `firma_stack._state.State(<lowercase name>)`.
pub(crate) fn py_state(py: Python<'_>, state: sm::State) -> PyResult<Bound<'_, PyAny>> {
    static STATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    py_code(py, &STATE, "State", state.as_str())
}

/// The core's own (serde) reading of a state name, so the names live in one
/// place.
fn parse_state(name: &str) -> PyResult<sm::State> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "{name:?} is not a state (running, unhealthy, stopped, unknown)"
        ))
    })
}

view_pymethods! {
    /// One sidecar as reported by `list`, `get` and `probe_entry`.
    class SidecarEntry(sm::SidecarEntry), hashable {
        sandbox_id -> &str = |e| &e.sandbox_id;
        agent_id -> &str = |e| &e.agent_id;
        session_id -> &str = |e| &e.session_id;
        authority_url -> &str = |e| &e.authority_url;
        policy_bundle_version -> &str = |e| &e.policy_bundle_version;
        pid -> u32 = |e| e.pid;
        started_at -> &str = |e| &e.started_at;
        listen -> &str = |e| &e.listen;
        uptime_secs -> Option<u64> = |e| e.uptime_secs;
    }
    /// The JSON object of the C ABI and `firma ... --json`, as a dict: the
    /// same serializer, so the same keys, order and values.
    to_dict;
    methods {
        /// Builds an entry by hand (for tests and fakes); `state` is a `State`
        /// or its lowercase name.
        #[new]
        #[pyo3(signature = (
            sandbox_id, agent_id, session_id, authority_url, policy_bundle_version,
            pid, started_at, state, listen, uptime_secs=None,
        ))]
        #[allow(clippy::too_many_arguments)]
        fn new(
            sandbox_id: String,
            agent_id: String,
            session_id: String,
            authority_url: String,
            policy_bundle_version: String,
            pid: u32,
            started_at: String,
            state: &Bound<'_, PyString>,
            listen: String,
            uptime_secs: Option<u64>,
        ) -> PyResult<Self> {
            let state = parse_state(&state.to_cow()?)?;
            Ok(sm::SidecarEntry {
                sandbox_id,
                agent_id,
                session_id,
                authority_url,
                policy_bundle_version,
                pid,
                started_at,
                state,
                listen,
                uptime_secs,
            }
            .into())
        }

        #[getter]
        fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            py_state(py, self.inner.state)
        }

        fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
            let py = slf.py();
            let e = &slf.get().inner;
            let s = |v: &str| repr_str(py, v);
            Ok(format!(
                "SidecarEntry(sandbox_id={}, agent_id={}, session_id={}, authority_url={}, \
                 policy_bundle_version={}, pid={}, started_at={}, state=State.{}, listen={}, \
                 uptime_secs={})",
                s(&e.sandbox_id)?,
                s(&e.agent_id)?,
                s(&e.session_id)?,
                s(&e.authority_url)?,
                s(&e.policy_bundle_version)?,
                e.pid,
                s(&e.started_at)?,
                e.state.as_str().to_uppercase(),
                s(&e.listen)?,
                e.uptime_secs
                    .map_or_else(|| "None".to_owned(), |u| u.to_string()),
            ))
        }

        /// Pickling and `copy`: rebuild from the constructor's arguments.
        fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
            let py = slf.py();
            let e = &slf.get().inner;
            let args = (
                e.sandbox_id.as_str(),
                e.agent_id.as_str(),
                e.session_id.as_str(),
                e.authority_url.as_str(),
                e.policy_bundle_version.as_str(),
                e.pid,
                e.started_at.as_str(),
                e.state.as_str(),
                e.listen.as_str(),
                e.uptime_secs,
            )
                .into_pyobject(py)?;
            PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
        }
    }
}
