//! firma-stack: tells a host's supervisors which agent-sandbox sidecars are
//! alive, whether they serve, and cleans up after runs that died.
//!
//! The core is [`sidecar_markers`]; the C ABI lives in [`ffi`]. The `firma`
//! command line is a binary of this package (`src/bin/firma/`), not part of
//! the library.

// Shared by the firma-example-sidecar binary and the Python package; not API.
#[cfg(feature = "example-sidecar")]
#[doc(hidden)]
pub mod example_sidecar;
#[allow(non_camel_case_types)]
pub mod ffi;
pub mod sidecar_markers;
