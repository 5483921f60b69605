//! Progress lines and per-stage logs.
//!
//! Every stage prints one line: what it does, the path of its log, then
//! `built` or `cached` and the elapsed time. The full output of every tool the
//! stage runs goes to its log; on failure the log's tail is printed.

use fs_err::{self as fs, File, OpenOptions};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Lines of a failed stage's log shown on the terminal.
const TAIL_LINES: usize = 40;

/// Stages running side by side (the suite's parallel parts): each prints
/// its whole line when it finishes, in the order they finish, instead of a
/// head when it starts and a tail when it ends (which would interleave).
static DEFERRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Print stage lines whole at their end (`on`) or as head and tail.
pub fn set_deferred(on: bool) {
    DEFERRED.store(on, std::sync::atomic::Ordering::SeqCst);
}

fn deferred() -> bool {
    DEFERRED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Deferred stage lines while it lives (stages side by side in the
/// pipeline); then as before, so a suite that is deferred stays so.
pub struct Deferred {
    before: bool,
}

impl Deferred {
    pub fn on() -> Deferred {
        let before = DEFERRED.swap(true, std::sync::atomic::Ordering::SeqCst);
        Deferred { before }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        DEFERRED.store(self.before, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One lock for whole lines on stderr (parts finishing together).
static OUTPUT: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Stage {
    name: String,
    what: String,
    log: PathBuf,
    start: Instant,
    bar: Option<ProgressBar>,
    warnings: Vec<String>,
    finished: bool,
}

pub enum Outcome {
    Built,
    Cached,
    /// A check that ran (no output stored).
    Passed,
    /// A check that ran to its end and found failures (reported after it).
    Failed,
}

impl Stage {
    /// Start a stage: truncates `<logs>/<name>.log` and shows the stage line.
    pub fn start(logs: &Path, name: &str, what: impl Into<String>) -> Result<Stage> {
        fs::create_dir_all(logs).with_context(|| format!("cannot create {}", logs.display()))?;
        let log = logs.join(format!("{name}.log"));
        File::create(&log).with_context(|| format!("cannot create log {}", log.display()))?;
        let what = what.into();
        let head = format!("==> {name}: {what} [log: {}]", display_path(&log));
        let bar = if deferred() {
            None
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{msg} {spinner} {elapsed}").expect("valid template"),
            );
            bar.set_message(head);
            bar.enable_steady_tick(Duration::from_millis(250));
            Some(bar)
        } else {
            eprint!("{head} ... ");
            None
        };
        Ok(Stage {
            name: name.into(),
            what,
            log,
            start: Instant::now(),
            bar,
            warnings: vec![],
            finished: false,
        })
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Append a line to the log.
    pub fn note(&self, line: impl AsRef<str>) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(f, "{}", line.as_ref());
        }
    }

    /// A warning: logged now, printed after the stage line.
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.note(format!("warning: {message}"));
        self.warnings.push(message);
    }

    fn log_file(&self) -> Result<File> {
        OpenOptions::new()
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open log {}", self.log.display()))
    }

    /// Run a command; stdout and stderr go to the log. A failure names the
    /// command and shows the log's tail.
    pub fn run(&self, cmd: crate::support::cmd::Cmd) -> Result<()> {
        let line = cmd.line();
        let expr = cmd.expr();
        self.note(format!("$ {line}"));
        let out = self.log_file()?;
        let err = out.try_clone()?;
        let status = expr.stdout_file(out).stderr_file(err).unchecked().run();
        match status {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => bail!("command failed ({}): {line}", o.status),
            Err(e) => Err(e).with_context(|| format!("cannot run {line}")),
        }
    }

    /// Run a command and return its stdout; stderr goes to the log.
    pub fn read(&self, cmd: crate::support::cmd::Cmd) -> Result<String> {
        let line = cmd.line();
        let expr = cmd.expr();
        self.note(format!("$ {line}"));
        let err = self.log_file()?;
        let out = expr.stderr_file(err).stdout_capture().unchecked().run();
        match out {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => {
                self.note(String::from_utf8_lossy(&o.stdout));
                bail!("command failed ({}): {line}", o.status)
            }
            Err(e) => Err(e).with_context(|| format!("cannot run {line}")),
        }
    }

    /// Run a command that may fail: whether it succeeded, and its stdout and
    /// stderr together (also logged).
    pub fn output(&self, cmd: crate::support::cmd::Cmd) -> Result<(bool, String)> {
        let line = cmd.line();
        self.note(format!("$ {line}"));
        let out = cmd
            .expr()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .with_context(|| format!("cannot run {line}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        self.note(&text);
        Ok((out.status.success(), text))
    }

    /// Run a command and return its stdout as bytes; stderr goes to the log.
    pub fn read_bytes(&self, cmd: crate::support::cmd::Cmd) -> Result<Vec<u8>> {
        let line = cmd.line();
        self.note(format!("$ {line}"));
        let err = self.log_file()?;
        match cmd
            .expr()
            .stderr_file(err)
            .stdout_capture()
            .unchecked()
            .run()
        {
            Ok(o) if o.status.success() => Ok(o.stdout),
            Ok(o) => bail!("command failed ({}): {line}", o.status),
            Err(e) => Err(e).with_context(|| format!("cannot run {line}")),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Finish the stage line with the outcome and elapsed time.
    pub fn finish(mut self, outcome: Outcome, detail: impl AsRef<str>) {
        let word = match outcome {
            Outcome::Built => "built",
            Outcome::Cached => "cached",
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
        };
        let detail = detail.as_ref();
        let tail = format!(
            "{word} in {}{}{detail}",
            fmt_duration(self.elapsed()),
            if detail.is_empty() { "" } else { ": " }
        );
        self.note(format!("== {}: {tail}", self.name));
        self.end_line(&tail);
        self.finished = true;
    }

    /// Finish the stage as failed: prints the error and the log's tail.
    pub fn fail(mut self, error: &anyhow::Error) {
        self.note(format!("error: {error:#}"));
        self.end_line(&format!("FAILED after {}", fmt_duration(self.elapsed())));
        self.finished = true;
        let tail = tail(&self.log, TAIL_LINES);
        if !tail.trim().is_empty() {
            let _guard = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "--- last lines of {} ---\n{tail}--- end of log ---",
                display_path(&self.log)
            );
        }
    }

    fn end_line(&mut self, tail: &str) {
        let _guard = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
        match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!(
                    "==> {}: {} [log: {}] ... {tail}",
                    self.name,
                    self.what,
                    display_path(&self.log)
                );
            }
            None if deferred() => eprintln!(
                "==> {}: {} [log: {}] ... {tail}",
                self.name,
                self.what,
                display_path(&self.log)
            ),
            None => eprintln!("{tail}"),
        }
        for w in self.warnings.drain(..) {
            eprintln!("    warning: {w}");
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.finished {
            self.end_line("stopped");
        }
    }
}

/// Run `f` as a stage: the line is finished as built/cached on success, or
/// failed with the log's tail.
pub fn stage<T>(
    logs: &Path,
    name: &str,
    what: impl Into<String>,
    f: impl FnOnce(&mut Stage) -> Result<(T, Outcome, String)>,
) -> Result<T> {
    let mut s = Stage::start(logs, name, what)?;
    match f(&mut s) {
        Ok((value, outcome, detail)) => {
            s.finish(outcome, detail);
            Ok(value)
        }
        Err(e) => {
            let log = s.log_path().to_path_buf();
            s.fail(&e);
            Err(e.context(format!(
                "stage {name} failed (full log: {})",
                display_path(&log)
            )))
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for line in &lines[lines.len().saturating_sub(n)..] {
        let _ = writeln!(out, "{line}");
    }
    out
}

pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

pub fn fmt_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A path relative to the current directory when it is below it.
pub fn display_path(p: &Path) -> String {
    match std::env::current_dir() {
        Ok(cwd) => p.strip_prefix(&cwd).unwrap_or(p).display().to_string(),
        Err(_) => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(225)), "3m45s");
        assert_eq!(fmt_size(512), "512 B");
        assert_eq!(fmt_size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let scratch = tempfile::tempdir().unwrap();
        let p = scratch.path().join("finnix-tail");
        fs::write(&p, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&p, 2), "3\n4\n");
        fs::remove_file(&p).unwrap();
    }
}
