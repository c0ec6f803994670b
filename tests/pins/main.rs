//! Tests that would notice: behaviours mutation testing showed no test
//! pinned, each now pinned by a named test against real fixtures (seccomp
//! filters installed by `firma-testkit seccomp`, descriptor limits, time
//! and mount namespaces, `hidepid`, loop-mounted ext4 images). One module
//! per section of docs/design.md. Every test that needs the kernel's help
//! fails loudly when it is refused; none passes without its fixture.

#[path = "../common/mod.rs"]
mod common;
mod kit;

mod collection;
mod entries;
mod liveness;
mod stop;
