//! `SidecarEntry`: an immutable view of one core `SidecarEntry`.

use std::hash::{Hash, Hasher};

use firma_stack::sidecar_markers as sm;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple, PyType};

/// One sidecar as reported by `list`, `get` and `probe_entry`.
#[pyclass(frozen, eq, hash, module = "firma_stack", name = "SidecarEntry")]
#[derive(PartialEq)]
pub(crate) struct SidecarEntry {
    inner: sm::SidecarEntry,
}

impl From<sm::SidecarEntry> for SidecarEntry {
    fn from(inner: sm::SidecarEntry) -> Self {
        SidecarEntry { inner }
    }
}

impl Hash for SidecarEntry {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let e = &self.inner;
        e.sandbox_id.hash(h);
        e.agent_id.hash(h);
        e.session_id.hash(h);
        e.authority_url.hash(h);
        e.policy_bundle_version.hash(h);
        e.pid.hash(h);
        e.started_at.hash(h);
        e.state.hash(h);
        e.listen.hash(h);
        e.uptime_secs.hash(h);
    }
}

/// `firma_stack._state.State(<lowercase name>)`.
pub(crate) fn py_state<'py>(py: Python<'py>, state: sm::State) -> PyResult<Bound<'py, PyAny>> {
    static STATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    STATE
        .import(py, "firma_stack._state", "State")?
        .call1((state.as_str(),))
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

#[pymethods]
impl SidecarEntry {
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
    fn sandbox_id(&self) -> &str {
        &self.inner.sandbox_id
    }

    #[getter]
    fn agent_id(&self) -> &str {
        &self.inner.agent_id
    }

    #[getter]
    fn session_id(&self) -> &str {
        &self.inner.session_id
    }

    #[getter]
    fn authority_url(&self) -> &str {
        &self.inner.authority_url
    }

    #[getter]
    fn policy_bundle_version(&self) -> &str {
        &self.inner.policy_bundle_version
    }

    #[getter]
    fn pid(&self) -> u32 {
        self.inner.pid
    }

    #[getter]
    fn started_at(&self) -> &str {
        &self.inner.started_at
    }

    #[getter]
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py_state(py, self.inner.state)
    }

    #[getter]
    fn listen(&self) -> &str {
        &self.inner.listen
    }

    #[getter]
    fn uptime_secs(&self) -> Option<u64> {
        self.inner.uptime_secs
    }

    /// The JSON object of the C ABI and `firma ... --json`, as a dict: the
    /// same serializer, so the same keys, order and values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let json = serde_json::to_string(&self.inner).map_err(|e| {
            crate::exceptions::internal(py, &format!("cannot serialize entry: {e}"))
        })?;
        LOADS.import(py, "json", "loads")?.call1((json,))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let e = &slf.get().inner;
        let r = |v: Bound<'_, PyAny>| -> PyResult<String> { Ok(v.repr()?.to_cow()?.into_owned()) };
        let s = |v: &str| r(PyString::new(py, v).into_any());
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
