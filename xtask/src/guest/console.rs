//! Driving a guest through its console: start it (UML or qemu) with its
//! console on pipes, wait for lines, type commands, read their output, and
//! stop it. Everything the guest prints is also written to a console log.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Console lines that mean a boot went wrong, whatever the target: the boot
/// checks fail at once on them instead of at their timeout.
pub const BOOT_FAILURES: &[&str] = &[
    "Emergency shell (busybox)",
    "Kernel panic",
    "end Kernel panic",
    // Xen killing a guest whose exception could not be delivered (xen-xl).
    "Triple fault - invoking HVM shutdown action",
];

/// Kernel trouble, looked for in everything a guest prints for the whole
/// session (the boot, the checks' commands, the shutdown): any of these
/// fails the check that drove the console, shown with its context. The
/// kernel's own wording: an oops, `BUG()`, `WARN()` ("WARNING: CPU: n PID:
/// m at ..."), a stack dump, a fault, a process killed by a signal the
/// kernel reports (`segfault at`, "traps:"), a panic, the OOM killer, a
/// hung task.
pub const KERNEL_TROUBLE: &[&str] = &[
    "Oops:",
    "BUG:",
    "kernel BUG at",
    "WARNING: CPU:",
    "WARNING: at ",
    "Call Trace:",
    "general protection fault",
    "Unable to handle kernel",
    "invalid opcode:",
    "segfault at ",
    "traps: ",
    "Kernel panic",
    "Out of memory: Killed process",
    "blocked for more than",
];

/// Words that read as an error, looked for in a boot's text up to the root
/// shell's prompt: a clean boot says none of them. (After the prompt the
/// checks' own commands print errors on purpose: a write to a read-only
/// disk, a wrong passphrase.)
pub const BOOT_ERRORS: &[&str] = &[
    "error",
    "Error",
    "ERROR",
    "failed",
    "Failed",
    "FAILED",
    "[FAIL]",
    "cannot",
    "Cannot",
    "No such device",
    "not found",
];

/// Lines that match the lists above and are understood: (text of the line,
/// why it is not trouble). Only what was seen, explained, and not fixable
/// here belongs in this list.
pub const ALLOWED: &[(&str, &str)] = &[
    (
        "(XEN) Std. Loglevel: Errors and warnings",
        "Xen's boot banner naming its log levels",
    ),
    (
        "(XEN) Guest Loglevel: Nothing (Rate-limited: Errors and warnings)",
        "Xen's boot banner naming its log levels",
    ),
    (
        "PM-Timer failed consistency check",
        "a Xen dom0 under qemu reads the ACPI PM timer as 0xffffff (Xen keeps the port); the kernel declines that clock source and uses Xen's",
    ),
    (
        "tsc: Fast TSC calibration failed",
        "under qemu without KVM the PIT-based fast calibration can miss its window on a busy host (it comes and goes with load); the kernel then calibrates the TSC the slow way",
    ),
    (
        "..... failed.",
        "the x86 kernel's check_timer (io_apic.c): one way of routing the timer's IRQ 0 did not tick 4 times within a wait the TSC times; under qemu without KVM on a busy host the vCPU misses ticks (it comes and goes with load), and the kernel tries the next way. Only the last way's failure ends in \"..... failed :(.\" and a panic (\"Kernel panic\"), which is trouble",
    ),
];

/// The lines of `text` that are trouble: every line holding a
/// [`KERNEL_TROUBLE`] pattern, and up to `boot_end` (a byte offset: the
/// prompt) every line holding a [`BOOT_ERRORS`] word; minus [`ALLOWED`].
/// Each with the two lines before and after it.
pub fn trouble(text: &str, boot_end: usize) -> Vec<String> {
    let lines: Vec<(usize, &str)> = {
        let mut at = 0;
        text.split('\n')
            .map(|l| {
                let start = at;
                at += l.len() + 1;
                (start, l.trim_end_matches('\r'))
            })
            .collect()
    };
    let mut found = Vec::new();
    for (i, (start, line)) in lines.iter().enumerate() {
        let kernel = KERNEL_TROUBLE.iter().any(|p| line.contains(p));
        // A line of the boot ends before the prompt does (the prompt's own
        // line carries the first command typed).
        let boot = *start + line.len() <= boot_end && BOOT_ERRORS.iter().any(|w| line.contains(w));
        if !(kernel || boot) || ALLOWED.iter().any(|(a, _)| line.contains(a)) {
            continue;
        }
        let from = i.saturating_sub(2);
        let to = (i + 3).min(lines.len());
        let context: Vec<String> = lines[from..to]
            .iter()
            .enumerate()
            .map(|(k, (_, l))| format!("{} {l}", if from + k == i { ">" } else { " " }))
            .collect();
        found.push(context.join("\n"));
    }
    found
}

fn fail_on_trouble(found: Vec<String>) -> Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    bail!(
        "the console shows {} line(s) of trouble (guest/console.rs: KERNEL_TROUBLE, BOOT_ERRORS; ALLOWED explains the exceptions):\n{}",
        found.len(),
        found.join("\n--\n")
    )
}

/// A console log written by someone else (a screen session's): kernel
/// trouble anywhere, error words up to the first `prompt`.
pub fn check_log_trouble(text: &str, prompt: &str) -> Result<()> {
    let boot_end = text.find(prompt).unwrap_or(0);
    fail_on_trouble(trouble(text, boot_end))
}

struct Shared {
    output: Vec<u8>,
    closed: bool,
}

/// Where typed text goes: the guest process's stdin, or whatever else
/// reaches its console (a screen session's `stuff` command).
pub type Input = Box<dyn FnMut(&str) -> Result<()> + Send>;

/// `text` cut into pieces of at most `max` bytes (at least one character
/// each), on character boundaries.
fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max.max(1));
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (head, tail) = rest.split_at(end);
        out.push(head);
        rest = tail;
    }
    out
}

/// Start `cmd` (its console in `log`), drive it with `drive`, then kill
/// it; a failure names the log and quotes the console's last lines.
pub fn session<T>(
    cmd: Command,
    log: &Path,
    drive: impl FnOnce(&mut Guest) -> Result<T>,
) -> Result<T> {
    let mut g = Guest::start(cmd, log)?;
    let r = drive(&mut g);
    g.kill();
    r.map_err(|e| {
        anyhow::anyhow!(
            "{e:#}\n{}: last console lines:\n{}",
            log.display(),
            g.tail(15)
        )
    })
}

pub struct Guest {
    /// The guest process, when this driver started it.
    child: Option<Child>,
    input: Option<Input>,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    /// Set on drop: stops a log-following reader.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// How far `expect` has consumed the output.
    cursor: usize,
    /// Where the boot ended (the root shell's prompt), for [`trouble`].
    boot_end: usize,
}

impl Guest {
    /// Start `cmd` in its own session (a guest panic signals its whole
    /// process group, which must not be ours), console on pipes.
    pub fn start(mut cmd: Command, log: &Path) -> Result<Guest> {
        let mut log_file =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        writeln!(log_file, "$ {cmd:?}")?;
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // ETXTBSY: a program just written (the unpacked UML kernel) is still
        // open for writing in a child another thread forked before its exec
        // (guests start side by side): that child lets go at its exec.
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => {
                    break other.with_context(|| format!("cannot start {:?}", cmd.get_program()))?
                }
            }
        };
        let shared = Arc::new((
            Mutex::new(Shared {
                output: Vec::new(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let log_file = Arc::new(Mutex::new(log_file));
        let mut open_streams = 0;
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        let remaining = Arc::new(Mutex::new(streams.len()));
        for mut stream in streams {
            open_streams += 1;
            let shared = shared.clone();
            let log_file = log_file.clone();
            let remaining = remaining.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let _ = log_file.lock().map(|mut f| f.write_all(&buf[..n]));
                            let (lock, cv) = &*shared;
                            lock.lock()
                                .expect("guest output lock")
                                .output
                                .extend_from_slice(&buf[..n]);
                            cv.notify_all();
                        }
                    }
                }
                let mut left = remaining.lock().expect("stream count");
                *left -= 1;
                if *left == 0 {
                    let (lock, cv) = &*shared;
                    lock.lock().expect("guest output lock").closed = true;
                    cv.notify_all();
                }
            });
        }
        debug_assert_eq!(open_streams, 2);
        let mut stdin: ChildStdin = child.stdin.take().expect("piped stdin");
        let input: Input = Box::new(move |text: &str| {
            stdin.write_all(text.as_bytes())?;
            stdin.flush()?;
            Ok(())
        });
        Ok(Guest {
            child: Some(child),
            input: Some(input),
            shared,
            stop: Default::default(),
            cursor: 0,
            boot_end: 0,
        })
    }

    /// Drive a console that someone else runs: its output is what is
    /// appended to `log` from now on (a screen session's log), its input
    /// goes through `input`.
    pub fn follow(log: &Path, input: Input) -> Result<Guest> {
        let start = fs_err::metadata(log).map(|m| m.len()).unwrap_or(0);
        let shared = Arc::new((
            Mutex::new(Shared {
                output: Vec::new(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let stop: Arc<std::sync::atomic::AtomicBool> = Default::default();
        let (log, sh, st) = (log.to_path_buf(), shared.clone(), stop.clone());
        std::thread::spawn(move || {
            // Read only what was appended since the last look.
            let mut file = None;
            let mut buf = Vec::new();
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                if file.is_none() {
                    file = std::fs::File::open(&log).ok().and_then(|mut f| {
                        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start)).ok()?;
                        Some(f)
                    });
                }
                buf.clear();
                if let Some(f) = file.as_mut() {
                    if f.read_to_end(&mut buf).is_ok() && !buf.is_empty() {
                        let (lock, cv) = &*sh;
                        lock.lock()
                            .expect("guest output lock")
                            .output
                            .extend_from_slice(&buf);
                        cv.notify_all();
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(Guest {
            child: None,
            input: Some(input),
            shared,
            stop,
            cursor: 0,
            boot_end: 0,
        })
    }

    /// Wait until `pattern` appears after the cursor; the cursor moves past
    /// it. Returns the text from the old cursor to the end of the match.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        self.expect_any(&[pattern], timeout).map(|(_, text)| text)
    }

    /// Like [`Guest::expect`] for several patterns: the first to appear wins.
    pub fn expect_any(&mut self, patterns: &[&str], timeout: Duration) -> Result<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.shared;
        let mut shared = lock.lock().expect("guest output lock");
        loop {
            let hay = &shared.output[self.cursor..];
            let hit = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| find(hay, p.as_bytes()).map(|pos| (pos, i, p.len())))
                .min();
            if let Some((pos, i, len)) = hit {
                let text = String::from_utf8_lossy(&hay[..pos + len]).into_owned();
                self.cursor += pos + len;
                return Ok((i, text));
            }
            if shared.closed {
                bail!("the guest exited before printing {:?}", patterns);
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "timed out after {} s waiting for {:?}",
                    timeout.as_secs(),
                    patterns
                );
            }
            shared = cv
                .wait_timeout(shared, deadline - now)
                .expect("guest output lock")
                .0;
        }
    }

    /// Wait for Finnix's ready banner (or a boot failure, which fails at
    /// once) and then the root shell's prompt on `console`. Returns the
    /// seconds to the banner and to the prompt, from `start`, and the boot's
    /// console text up to the prompt.
    pub fn boot_to_shell(
        &mut self,
        version: &str,
        console: &str,
        start: Instant,
        timeout: Duration,
    ) -> Result<(f64, f64, String)> {
        self.boot_to_shell_unless(version, console, start, timeout, &[])
    }

    /// [`Guest::boot_to_shell`], failing at once also when one of `stop`
    /// appears before the banner (e.g. the prompt of the shell that started
    /// the guest: the start failed); the error quotes the lines before it.
    pub fn boot_to_shell_unless(
        &mut self,
        version: &str,
        console: &str,
        start: Instant,
        timeout: Duration,
        stop: &[&str],
    ) -> Result<(f64, f64, String)> {
        let banner = format!("Finnix version {version} ready;");
        let mut watch = vec![banner.as_str()];
        watch.extend(BOOT_FAILURES);
        watch.extend(stop);
        let (hit, mut text) = self.expect_any(&watch, timeout.saturating_sub(start.elapsed()))?;
        if hit > BOOT_FAILURES.len() {
            let lines: Vec<&str> = text.lines().collect();
            bail!(
                "{:?} before the ready banner, after:\n{}",
                watch[hit],
                lines[lines.len().saturating_sub(12)..].join("\n")
            );
        }
        if hit != 0 {
            std::thread::sleep(Duration::from_millis(500));
            bail!("the boot failed: {:?} on the console", watch[hit]);
        }
        let banner_secs = start.elapsed().as_secs_f64();
        text.push_str(&self.expect("packages available", Duration::from_secs(120))?);
        text.push_str(
            &self
                .expect(&format!("root@{console}:"), Duration::from_secs(120))
                .context("no root shell prompt after the banner")?,
        );
        let shell_secs = start.elapsed().as_secs_f64();
        self.boot_end = self.cursor;
        // Let the console quiet down (late kernel or service messages).
        std::thread::sleep(Duration::from_millis(300));
        Ok((banner_secs, shell_secs, text))
    }

    /// Fail on kernel trouble anywhere in the session so far, and on an
    /// error-looking line of the boot ([`trouble`]).
    pub fn check_trouble(&self) -> Result<()> {
        fail_on_trouble(trouble(&self.output(), self.boot_end))
    }

    /// [`Guest::check_trouble`], also allowing `allowed` lines: what one
    /// machine's emulation is known to print (each with its reason, kept
    /// with the machine's data).
    pub fn check_trouble_allowing(&self, allowed: &[String]) -> Result<()> {
        let found = trouble(&self.output(), self.boot_end)
            .into_iter()
            .filter(|context| {
                let line = context.lines().find(|l| l.starts_with('>')).unwrap_or("");
                !allowed.iter().any(|a| line.contains(a.as_str()))
            })
            .collect();
        fail_on_trouble(found)
    }

    /// The kernel's own log (`dmesg`, run in the guest's shell), scanned for
    /// kernel trouble: a running Finnix shows only errors on its console
    /// (printk 4), so a warning or a segfault report is found only there.
    pub fn check_dmesg(&mut self) -> Result<()> {
        let log = self.run("dmesg", Duration::from_secs(120))?;
        fail_on_trouble(trouble(&log, 0)).context("the guest's dmesg")
    }

    /// Kernel trouble only (a console that carries more than one system's
    /// boot, like Xen's dom0 with its guests: their error words are not a
    /// boot of ours).
    pub fn check_kernel_trouble(&self) -> Result<()> {
        fail_on_trouble(trouble(&self.output(), 0))
    }

    /// Everything the guest printed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.shared.0.lock().expect("guest output lock").output)
            .into_owned()
    }

    /// The last `n` lines printed.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Type slowly from now on: at most `chunk` bytes at a time, `gap`
    /// apart. Xen hands what its serial line receives to dom0 through a
    /// 128-byte ring (`serial_rx_ring`, xen/drivers/char/console.c) and
    /// drops what does not fit; a dom0 slowed by a busy host lost 30
    /// characters of a 200-character line that way.
    pub fn pace_input(&mut self, chunk: usize, gap: Duration) {
        let Some(mut inner) = self.input.take() else {
            return;
        };
        self.input = Some(Box::new(move |text: &str| {
            for (i, part) in chunks(text, chunk).into_iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(gap);
                }
                inner(part)?;
            }
            Ok(())
        }));
    }

    pub fn send(&mut self, text: &str) -> Result<()> {
        let input = self
            .input
            .as_mut()
            .context("the guest's console input is closed")?;
        input(text)
    }

    /// Run a shell command in the guest and return its output: the command
    /// is wrapped in markers the shell computes, so the echo of the typed
    /// line never matches.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<String> {
        self.send(&format!(
            "echo \"<<$((6*7))\"; {command}; echo \"$((6*7))>>\"\n"
        ))?;
        self.expect("<<42", timeout)?;
        let text = self.expect("42>>", timeout)?;
        let body = text.strip_suffix("42>>").unwrap_or(&text);
        Ok(body.replace('\r', "").trim_matches('\n').to_string())
    }

    /// Run a shell command in the guest; its output and whether it exited 0.
    /// The status travels inside the closing marker, which the shell
    /// computes, so nothing typed can fake it.
    pub fn run_status(&mut self, command: &str, timeout: Duration) -> Result<(bool, String)> {
        let (code, text) = self.run_code(command, timeout)?;
        Ok((code == 0, text))
    }

    /// Run a shell command in the guest; its output and exit status.
    pub fn run_code(&mut self, command: &str, timeout: Duration) -> Result<(i32, String)> {
        self.send(&format!(
            "echo \"<<$((6*7))\"; {command}; echo \"$((6*7))>>$?\"\n"
        ))?;
        self.expect("<<42", timeout)?;
        let text = self.expect("42>>", timeout)?;
        let status = self.expect("\n", timeout)?;
        let body = text.strip_suffix("42>>").unwrap_or(&text);
        let code = status
            .trim()
            .parse()
            .with_context(|| format!("no exit status after the command: {status:?}"))?;
        Ok((code, body.replace('\r', "").trim_matches('\n').to_string()))
    }

    /// Wait for the guest process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self
            .child
            .as_mut()
            .context("this console's guest was not started here")?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("the guest did not exit within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the kernel says of the guest's processes (its whole process
    /// group: UML's I/O thread and process stubs are processes of their
    /// own): each one's state and where it waits, for an error about a
    /// guest that went quiet. A guest waiting on the host's disk shows up
    /// here (state D, a wchan in the page cache or the block layer).
    pub fn process_state(&self) -> String {
        let Some(pid) = self.child.as_ref().map(|c| c.id()) else {
            return "not started here".into();
        };
        let fields = |p: &Path| -> Option<(String, String, u32)> {
            // "pid (comm) state ppid pgrp ...": comm may hold spaces.
            let st = std::fs::read_to_string(p.join("stat")).ok()?;
            let (head, tail) = st.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let mut f = tail.split_whitespace();
            let state = f.next()?.to_string();
            let pgrp = f.nth(1)?.parse().ok()?;
            Some((comm, state, pgrp))
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(other) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let Some((comm, state, pgrp)) = fields(&path) else {
                continue;
            };
            if pgrp != pid {
                continue;
            }
            let tasks: Vec<String> = std::fs::read_dir(path.join("task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|t| {
                    let (_, state, _) = fields(&t.path())?;
                    let w = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                    Some(format!("{state}:{w}"))
                })
                .collect();
            out.push(format!("{other} {comm} {state} [{}]", tasks.join(" ")));
        }
        out.sort();
        if out.is_empty() {
            format!("process group {pid}: gone")
        } else {
            format!("process group {pid}: {}", out.join("; "))
        }
    }

    /// The guest process's id, when this driver started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kill the guest's whole process group.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let pgid = child.id() as i32;
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(Ok(None)) = self.child.as_mut().map(|c| c.try_wait()) {
            self.kill();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_a_shell_like_a_console() {
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("finnix-guest.log");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo booting; echo 'ready banner'; exec sh");
        let mut g = Guest::start(cmd, &log).unwrap();
        g.expect("ready banner", Duration::from_secs(5)).unwrap();
        assert_eq!(
            g.run("echo hello; echo world", Duration::from_secs(5))
                .unwrap(),
            "hello\nworld"
        );
        assert!(g
            .expect("never printed", Duration::from_millis(200))
            .unwrap_err()
            .to_string()
            .contains("timed out"));
        g.send("exit 3\n").unwrap();
        assert_eq!(g.wait(Duration::from_secs(5)).unwrap().code(), Some(3));
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("ready banner"));
        std::fs::remove_file(&log).unwrap();
    }

    #[test]
    fn paced_input_arrives_whole_in_pieces() {
        assert_eq!(chunks("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(chunks("a\u{e9}", 2), ["a\u{e9}"]);
        assert!(chunks("", 4).is_empty());
        let scratch = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo 'ready banner'; exec sh");
        let mut g = Guest::start(cmd, &scratch.path().join("paced.log")).unwrap();
        g.expect("ready banner", Duration::from_secs(5)).unwrap();
        g.pace_input(8, Duration::from_millis(20));
        let t = Instant::now();
        let long = "x".repeat(100);
        let said = g
            .run(&format!("echo {long}"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(said, long);
        // The typed line (about 140 bytes) went in 8-byte pieces, 20 ms apart.
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        g.send("exit 0\n").unwrap();
        g.wait(Duration::from_secs(5)).unwrap();
    }
}

#[cfg(test)]
mod trouble_tests {
    use super::trouble;

    #[test]
    fn an_oops_anywhere_and_an_error_in_the_boot_are_trouble() {
        let boot = "Linux version 6.1\n[    1.0] loop: module loaded\nFinnix version 1 ready; 3 packages available\nroot@ttyS0:~# ";
        assert!(trouble(boot, boot.len()).is_empty());
        // A planted oops after the prompt: kernel trouble is looked for
        // in the whole session.
        let oops = format!("{boot}dd if=/dev/zero of=/dev/sda\n[   9.1] BUG: kernel NULL pointer dereference, address: 0\n[   9.1] Oops: 0000 [#1] SMP\nmore\n");
        let t = trouble(&oops, boot.len());
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            t[0].contains("> [   9.1] BUG: kernel NULL") && t[0].contains("# dd if=/dev/zero"),
            "{}",
            t[0]
        );
        // An error word counts in the boot, not in a command's output.
        let failed = "Starting foo... failed!\nroot@tty0:~# ";
        assert_eq!(trouble(failed, failed.len()).len(), 1);
        let later = "root@tty0:~# dd: Read-only file system error\n";
        assert!(trouble(later, 13).is_empty());
        // An allowed line is not trouble.
        let tsc = "[ 0.0] tsc: Fast TSC calibration failed\nroot@ttyS0:~# ";
        assert!(trouble(tsc, tsc.len()).is_empty());
        // The timer's fallbacks as a busy host made them (console-hw-net1.log).
        let timer = "[    0.912057] ..MP-BIOS bug: 8254 timer not connected to IO-APIC\n[    0.912320] ...trying to set up timer (IRQ0) through the 8259A ...\n[    0.912406] ..... (found apic 0 pin 2) ...\n[    1.140435] ....... failed.\n[    1.140664] ...trying to set up timer as Virtual Wire IRQ...\n[    1.168572] ..... works.\nroot@ttyS0:~# ";
        assert!(trouble(timer, timer.len()).is_empty());
        // Every way failed: trouble.
        let dead = "[    1.2] ...trying to set up timer as ExtINT IRQ...\n[    1.3] ..... failed :(.\n[    1.3] Kernel panic - not syncing: IO-APIC + timer doesn't work!\n";
        let t = trouble(dead, dead.len());
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(
            trouble(
                "modules that failed to load: efivarfs: No such device\n",
                100
            )
            .len(),
            1
        );
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn run_status_reports_the_exit_status() {
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("finnix-guest-st.log");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("exec sh");
        let mut g = Guest::start(cmd, &log).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            g.run_status("echo yes; true", t).unwrap(),
            (true, "yes".to_string())
        );
        assert_eq!(
            g.run_status("echo no; false", t).unwrap(),
            (false, "no".to_string())
        );
        assert_eq!(
            g.run_code("echo out; (exit 32)", t).unwrap(),
            (32, "out".to_string())
        );
        g.send("exit 0\n").unwrap();
        g.wait(t).unwrap();
        std::fs::remove_file(&log).unwrap();
    }
}
