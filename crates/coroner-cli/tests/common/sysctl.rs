//! For the tests that set the host's `kernel.core_pattern` for real
//! (`kernel_e2e`, `socket_e2e`, each alone in its test binary): a guard that
//! saves `core_pattern` and `core_pipe_limit` and puts them back on every
//! exit path, and a runner that fails with the command's output.

use std::path::Path;
use std::process::{Command, Output};

pub const PATTERN: &str = "/proc/sys/kernel/core_pattern";
pub const PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";

pub fn trim_nl(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\n").unwrap_or(b)
}

/// Puts the sysctls back as they were, whatever happens (its `Drop` also
/// runs when an assertion fails).
pub struct Restore {
    pub pattern: Vec<u8>,
    pub limit: Vec<u8>,
}

impl Restore {
    pub fn save() -> Restore {
        Restore {
            pattern: std::fs::read(PATTERN).unwrap(),
            limit: std::fs::read(PIPE_LIMIT).unwrap(),
        }
    }

    /// `coroner uninstall --system --config CONFIG` must put both sysctls
    /// back byte for byte as saved (before this guard's own restore).
    pub fn check_uninstall_restores(&self, coroner: &Path, config: &Path) {
        let out = run(Command::new(coroner)
            .args(["uninstall", "--system", "--config"])
            .arg(config));
        assert_eq!(
            std::fs::read(PATTERN).unwrap(),
            self.pattern,
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(std::fs::read(PIPE_LIMIT).unwrap(), self.limit);
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if std::fs::read(PATTERN).ok().as_ref() != Some(&self.pattern) {
            let _ = std::fs::write(PATTERN, trim_nl(&self.pattern));
        }
        if std::fs::read(PIPE_LIMIT).ok().as_ref() != Some(&self.limit) {
            let _ = std::fs::write(PIPE_LIMIT, trim_nl(&self.limit));
        }
    }
}

/// Run `cmd`; fail the test with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
