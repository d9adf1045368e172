//! The reference TSN metadata proxy, a chained CNI plugin (see the `tsn_proxy` crate).

fn main() -> std::process::ExitCode {
    tsn_proxy::main()
}
