//! Selecting: the keyword arguments `state`, `agent`, `session`,
//! `sandbox_id` (and `reason`, for `inspect`) become the core's `Filter`,
//! read by its own `Filter::from_json` (docs/design.md, "Selecting"): the
//! core decides what matches, the binding only passes the values on.

use firma_stack::sidecar_markers as sm;
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::{Map, Value};

use crate::exceptions;

/// One name or several: a `str` (a `State` or `Reason` member is one) is
/// one name, any other iterable gives one name per item.
pub(crate) struct Names(pub(crate) Vec<String>);

impl<'a, 'py> FromPyObject<'a, 'py> for Names {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Names(vec![s.to_cow()?.into_owned()]));
        }
        let mut names = Vec::new();
        for item in obj.try_iter()? {
            names.push(item?.cast::<PyString>()?.to_cow()?.into_owned());
        }
        Ok(Names(names))
    }
}

/// The selection arguments of one call; `reason` is `inspect`'s only.
pub(crate) struct Select {
    pub(crate) state: Option<Names>,
    pub(crate) agent: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) sandbox_id: Option<Names>,
    pub(crate) reason: Option<Names>,
}

impl Select {
    /// The selection of entries (`list`, `watch`): no `reason`, which
    /// no entry has.
    pub(crate) fn entries(
        state: Option<Names>,
        agent: Option<String>,
        session: Option<String>,
        sandbox_id: Option<Names>,
    ) -> Select {
        Select {
            state,
            agent,
            session,
            sandbox_id,
            reason: None,
        }
    }

    /// The core's `Filter` of the arguments given; `None` when none was
    /// (everything matches, and nothing is filtered). A state or reason
    /// that does not exist is the core's `InvalidArgumentError` naming
    /// `filter`.
    pub(crate) fn filter(self, py: Python<'_>) -> PyResult<Option<sm::Filter>> {
        let mut json = Map::new();
        let names = |n: Names| Value::from(n.0);
        let parts = [
            ("states", self.state.map(names)),
            ("agent", self.agent.map(Value::from)),
            ("session", self.session.map(Value::from)),
            ("sandbox_ids", self.sandbox_id.map(names)),
            ("reasons", self.reason.map(names)),
        ];
        for (key, value) in parts {
            if let Some(value) = value {
                json.insert(key.to_owned(), value);
            }
        }
        if json.is_empty() {
            return Ok(None);
        }
        sm::Filter::from_json(&Value::Object(json).to_string())
            .map(Some)
            .map_err(|e| exceptions::from_stack_error(py, e))
    }
}
