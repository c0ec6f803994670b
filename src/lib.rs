//! firma-stack: tells a host's supervisors which agent-sandbox sidecars are
//! alive, whether they serve, and cleans up after runs that died.
//!
//! The core is [`sidecar_markers`]; the C ABI lives in [`ffi`] and the
//! `firma` command line in [`cli`].

pub mod cli;
pub mod cli_gen;
pub mod cli_stop;
pub mod cli_watch;
pub mod example_sidecar;
#[allow(non_camel_case_types)]
pub mod ffi;
pub mod metrics;
pub mod sidecar_markers;
mod signals;
