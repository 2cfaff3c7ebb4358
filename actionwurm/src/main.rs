//! The `actionwurm` binary: everything lives in the library's `main` (see its Layout), which
//! the Python package's `actionwurm` command runs too.

fn main() {
    let argv = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    std::process::exit(actionwurm::main(argv));
}
