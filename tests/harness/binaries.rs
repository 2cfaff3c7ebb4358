//! Where the three programs under test are.
//!
//! Cargo builds only a package's own binaries for its tests, and this package has none, so the
//! workspace's binaries must be built first; this module finds them and, when they are missing,
//! says which command builds them instead of failing somewhere later with "No such file".

use std::env;
use std::path::{Path, PathBuf};

/// Which build of the programs to run: the tests use the debug build, the benchmark the release
/// build (a debug build would measure the compiler's lack of optimisation, not the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug`, built by `cargo build --workspace --bins`.
    Debug,
    /// `target/release`, built by `cargo build --release --workspace --bins`.
    Release,
}

impl Profile {
    /// The directory under the target directory that holds this profile's binaries.
    fn dir_name(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }

    /// The command that builds this profile's binaries, for the message when they are missing.
    pub fn build_command(self) -> &'static str {
        match self {
            Profile::Debug => "cargo build --workspace --bins",
            Profile::Release => "cargo build --release --workspace --bins",
        }
    }
}

/// The paths of the three programs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The coordinator.
    pub tatzelwurm: PathBuf,
    /// The worker.
    pub workwurm: PathBuf,
    /// The command line.
    pub actionwurm: PathBuf,
}

impl Binaries {
    /// Finds the programs of `profile`, or panics with the command that builds them.
    pub fn locate(profile: Profile) -> Binaries {
        Binaries::try_locate(profile).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Finds the programs of `profile`; the error is a sentence naming the missing program and
    /// the command that builds it.
    pub fn try_locate(profile: Profile) -> Result<Binaries, String> {
        let dir = bin_dir(profile);
        let found = Binaries {
            tatzelwurm: dir.join("tatzelwurm"),
            workwurm: dir.join("workwurm"),
            actionwurm: dir.join("actionwurm"),
        };
        for path in [&found.tatzelwurm, &found.workwurm, &found.actionwurm] {
            if !path.is_file() {
                return Err(format!(
                    "build the binaries first: {} ({} is missing)",
                    profile.build_command(),
                    path.display()
                ));
            }
        }
        Ok(found)
    }
}

/// `$TATZELWURM_BIN_DIR` when set; else `<target>/<profile>`, where `<target>` is
/// `$CARGO_TARGET_DIR` (relative to the workspace when relative) or the workspace's `target/`.
fn bin_dir(profile: Profile) -> PathBuf {
    if let Some(dir) = env::var_os("TATZELWURM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = crate::workspace_root();
    let target = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => absolute_in(&root, Path::new(&dir)),
        None => root.join("target"),
    };
    target.join(profile.dir_name())
}

/// `path` itself when absolute, else `path` taken relative to `base`.
fn absolute_in(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
