//! Starting User Mode Linux the way a user types it: `./linux` in a
//! directory, the spec's arguments, its console on our pipes.

use std::path::{Path, PathBuf};
use std::process::Command;

use fs_err as fs;

/// UML's memory lives in a file in TMPDIR, which must allow exec: /dev/shm
/// when it does, else the run directory.
pub fn tmpdir(run: &Path) -> PathBuf {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let shm_ok = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == "/dev/shm" && !f[3].split(',').any(|o| o == "noexec")
    });
    if shm_ok {
        PathBuf::from("/dev/shm")
    } else {
        run.to_path_buf()
    }
}

/// `./linux <args>` in `cwd`: the console is stdin/stdout (`con0=fd:0,fd:1`,
/// every other channel null), guest memory in a TMPDIR that allows exec
/// (`run` unless /dev/shm does), UML's own files (pid, mconsole socket) in
/// this process's short socket directory (a socket path may not exceed 107
/// bytes, whatever `run`'s depth), and for a check (`interactive` false)
/// `noreboot`, so that a reboot ends it.
pub fn command<S: AsRef<std::ffi::OsStr>>(
    cwd: &Path,
    run: &Path,
    args: &[S],
    interactive: bool,
) -> anyhow::Result<Command> {
    let mut c = Command::new("./linux");
    c.current_dir(cwd)
        .args(args)
        .args(["con=null", "con0=fd:0,fd:1", "ssl=null"]);
    if !interactive {
        c.arg("noreboot");
    }
    let uml_dir = crate::support::fsutil::uml_socket_dir()?;
    c.arg(format!("uml_dir={}", uml_dir.display()))
        .env("TMPDIR", tmpdir(run));
    Ok(c)
}
