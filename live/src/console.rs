//! `finnix console <tty>`: a root shell with no login on a console, if that
//! console is one this mode uses (tty0 under UML, hvc0 under Xen, tty1 and
//! ttyS0 on hardware). Otherwise it waits forever, so that init's `respawn`
//! does not spin on a console that does not exist here.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::boot::mode;

fn idle() -> ! {
    loop {
        unsafe { libc::pause() };
    }
}

pub fn run(tty: &str) -> i32 {
    let mode = mode();
    if !crate::sysinfo::consoles(mode).contains(&tty) {
        idle();
    }
    let path = format!("/dev/{tty}");
    let cpath = CString::new(path.clone()).expect("tty path");
    unsafe {
        libc::setsid();
        let fd = libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        if fd < 0 {
            // The console this mode should have is missing: say so once, then idle.
            eprintln!(
                "finnix console: cannot open {path}: {}",
                std::io::Error::last_os_error()
            );
            idle();
        }
        libc::ioctl(fd, libc::TIOCSCTTY, 1);
        for target in 0..3 {
            libc::dup2(fd, target);
        }
        if fd > 2 {
            libc::close(fd);
        }
    }
    let shell = if std::path::Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let err = Command::new(shell)
        .arg0(format!("-{}", shell.rsplit('/').next().unwrap_or("sh")))
        .env_clear()
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("SHELL", shell)
        .env(
            "TERM",
            if tty.starts_with("tty") && !tty.starts_with("ttyS") {
                "linux"
            } else {
                "vt100"
            },
        )
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("PS1", format!("\\u@{tty}:\\w\\$ "))
        .env("FINNIX_CONSOLE", tty)
        .current_dir("/root")
        .exec();
    eprintln!("finnix console: cannot start {shell}: {err}");
    idle();
}
