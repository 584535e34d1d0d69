//! `outboard-volume`: the Outboard volume plugin binary. All wiring lives in `common`.

fn main() -> std::process::ExitCode {
    common::main::<volume_driver::Plugin>()
}
