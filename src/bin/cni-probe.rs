//! The probe binary: an agnhost-like echo server and client (see the `cni-probe` crate).
fn main() -> std::process::ExitCode {
    cni_probe::main()
}
