//! `firma-example-sidecar`: a real, minimal sidecar for demos and tests.
//! The implementation (modes, flags) is the library's
//! [`firma_stack::example_sidecar`], shared with the Python package.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(firma_stack::example_sidecar::main_with_args(
        std::env::args_os(),
    ))
}
