//! The egress relay as its own small executable, for the runtime's tests:
//! see `deskhand_runtime::egress::relay`.

fn main() {
    std::process::exit(deskhand_runtime::egress::relay::main(std::env::args_os().skip(1)));
}
