//! The `workwurm` binary: `workwurm::main` with the python3 on PATH and the slot loop carried in
//! the binary (`Launch::default()`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let code = workwurm::main(argv, workwurm::Launch::default());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
