//! `tatzelwurm`: the coordinator; everything is in the library's `main` (see `entry.rs`).

fn main() -> std::process::ExitCode {
    let status = tatzelwurm::main(std::env::args().collect());
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
