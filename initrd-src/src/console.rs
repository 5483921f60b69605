//! Where `/init` speaks: /dev/console (its stdout) and every other console
//! of the boot (`finnix_contract::consoles`), so that the medium search, a
//! failure report and the emergency shell reach a serial-only machine with
//! the default boot entry (`console=ttyS0,115200 console=tty0`) as well as
//! its screen.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The other consoles' device paths (none before /proc is mounted).
fn mirrors() -> Vec<String> {
    let text = fs::read_to_string(finnix_contract::consoles::PROC).unwrap_or_default();
    finnix_contract::consoles::mirrors(&text)
}

/// Write `text` to /dev/console and to every other console (a tty's
/// default output mode turns each newline into CR LF).
pub fn write(text: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    for dev in mirrors() {
        if let Ok(mut f) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&dev)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// `say!("...")`: a line on every console.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::write(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// A busybox shell on every console; returns when one of them exits (the
/// others are then ended).
pub fn shells(prompt: &str) {
    let mut children: Vec<Child> = Vec::new();
    // /dev/console: cttyhack finds the real terminal behind it.
    if let Ok(c) = shell(
        Command::new("/bin/busybox").args(["setsid", "cttyhack", "/bin/sh"]),
        prompt,
    ) {
        children.push(c);
    }
    for dev in mirrors() {
        let Ok(tty) = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&dev)
        else {
            continue;
        };
        let (Ok(a), Ok(b)) = (tty.try_clone(), tty.try_clone()) else {
            continue;
        };
        let mut cmd = Command::new("/bin/busybox");
        cmd.args(["setsid", "-c", "/bin/sh"])
            .stdin(Stdio::from(tty))
            .stdout(Stdio::from(a))
            .stderr(Stdio::from(b));
        if let Ok(c) = shell(&mut cmd, prompt) {
            children.push(c);
        }
    }
    if children.is_empty() {
        // No shell at all: do not spin.
        std::thread::sleep(Duration::from_secs(5));
        return;
    }
    'wait: loop {
        for c in children.iter_mut() {
            if !matches!(c.try_wait(), Ok(None)) {
                break 'wait;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for c in children.iter_mut() {
        // setsid made each shell its own session and process group.
        unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn shell(cmd: &mut Command, prompt: &str) -> std::io::Result<Child> {
    cmd.env("PS1", prompt).env("HOME", "/").spawn()
}
