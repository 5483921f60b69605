//! Commands, one way: a [`Cmd`] holds its argv, environment, directory and
//! standard input as data, so that what a log or an error shows is the
//! command itself (`Cmd::line`, shell-quoted from the argv), and runs
//! through duct (`Cmd::expr`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    Inherit,
    Null,
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    argv: Vec<OsString>,
    /// Set (`Some`) or removed (`None`), in order.
    env: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
    input: Input,
    /// Its standard error joins its standard output.
    merge_stderr: bool,
    /// Starts from an empty environment but for these host variables
    /// (`None`: inherits the host's environment).
    keep_only: Option<Vec<&'static str>>,
}

/// What a command that writes into a release may take from the host's
/// environment: where programs are, a home, a temporary directory and the
/// proxies (none of them changes what is written). Everything else (a
/// PYTHONDONTWRITEBYTECODE, a KCFLAGS, a DEBIAN_FRONTEND) would reach
/// package maintainer scripts or the kernel's make: see [`Cmd::clean_env`].
pub const HOST_ENV_KEPT: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// `cmd!("prog", arg, arg, ...)`: a [`Cmd`], as `duct::cmd!` reads.
#[macro_export]
macro_rules! cmd {
    ($program:expr $(, $arg:expr)* $(,)?) => {
        $crate::support::cmd::Cmd::new($program)$(.arg($arg))*
    };
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            argv: vec![program.as_ref().to_os_string()],
            env: Vec::new(),
            dir: None,
            input: Input::Inherit,
            merge_stderr: false,
            keep_only: None,
        }
    }

    /// Run it with only [`HOST_ENV_KEPT`] of the host's environment (and
    /// what `env` sets): the host's variables must not reach an output.
    pub fn clean_env(mut self) -> Cmd {
        self.keep_only = Some(HOST_ENV_KEPT.to_vec());
        self
    }

    /// A program and its arguments from one list.
    pub fn argv<I, S>(program: impl AsRef<OsStr>, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Cmd::new(program).args(args)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.argv.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env.push((
            key.as_ref().to_os_string(),
            Some(value.as_ref().to_os_string()),
        ));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.env.push((key.as_ref().to_os_string(), None));
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn stdin_null(mut self) -> Cmd {
        self.input = Input::Null;
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.input = Input::Bytes(bytes.into());
        self
    }

    pub fn stderr_to_stdout(mut self) -> Cmd {
        self.merge_stderr = true;
        self
    }

    /// The command as a shell line that runs it: `cd DIR && env -i K=V
    /// -u K2 prog 'arg with space'` (`env` only when the environment is
    /// changed), quoted by shlex.
    pub fn line(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if let Some(d) = &self.dir {
            words.push(format!("cd {} &&", shell_quote(&d.to_string_lossy())));
        }
        let mut env: Vec<String> = Vec::new();
        if let Some(keep) = &self.keep_only {
            env.push("-i".into());
            for k in keep {
                if let Some(v) = std::env::var_os(k) {
                    env.push(format!("{k}={}", shell_quote(&v.to_string_lossy())));
                }
            }
        }
        for (k, v) in &self.env {
            let k = k.to_string_lossy();
            match v {
                Some(v) => env.push(format!("{k}={}", shell_quote(&v.to_string_lossy()))),
                None if self.keep_only.is_none() => env.push(format!("-u {k}")),
                None => {}
            }
        }
        if !env.is_empty() {
            words.push("env".into());
            // env takes its -u options before the assignments.
            env.sort_by_key(|w| !w.starts_with('-'));
            words.extend(env);
        }
        words.extend(self.argv.iter().map(|a| shell_quote(&a.to_string_lossy())));
        if self.input == Input::Null {
            words.push("</dev/null".into());
        }
        if self.merge_stderr {
            words.push("2>&1".into());
        }
        words.join(" ")
    }

    /// Run it to the end, standard error joined to its output: the output,
    /// or an error naming the command, its status and what it printed.
    pub fn output(&self) -> anyhow::Result<String> {
        use anyhow::Context;
        let out = self
            .expr()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .with_context(|| format!("cannot run {}", self.line()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "command failed ({}): {}\n{}",
            out.status,
            self.line(),
            text.trim_end()
        );
        Ok(text)
    }

    /// The duct expression that runs it.
    pub fn expr(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.argv[0], &self.argv[1..]);
        if let Some(keep) = &self.keep_only {
            // The whole environment as one map (duct applies an outer
            // `env` before an inner `full_env`, which would drop it).
            let mut all: std::collections::BTreeMap<OsString, OsString> = keep
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
                .collect();
            for (k, v) in &self.env {
                match v {
                    Some(v) => all.insert(k.clone(), v.clone()),
                    None => all.remove(k),
                };
            }
            e = e.full_env(all);
        } else {
            for (k, v) in &self.env {
                e = match v {
                    Some(v) => e.env(k, v),
                    None => e.env_remove(k),
                };
            }
        }
        if let Some(d) = &self.dir {
            e = e.dir(d);
        }
        if self.merge_stderr {
            e = e.stderr_to_stdout();
        }
        match &self.input {
            Input::Inherit => e,
            Input::Null => e.stdin_null(),
            Input::Bytes(b) => e.stdin_bytes(b.clone()),
        }
    }
}

/// A word quoted for a POSIX shell (shlex); a word holding a NUL byte,
/// which no shell word can, is shown with it replaced.
pub fn shell_quote(w: &str) -> String {
    shlex::try_quote(w)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| shell_quote(&w.replace('\0', "\\0")))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_command_line_is_its_argv_quoted_for_a_shell() {
        let c = crate::cmd!("make", "-C", "/src dir", "defconfig")
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env_remove("MAKEFLAGS")
            .dir("/tmp");
        assert_eq!(
            c.line(),
            "cd /tmp && env -u MAKEFLAGS LC_ALL=C TZ=UTC make -C '/src dir' defconfig"
        );
        // The line runs: a shell given it does what the command does.
        let c = crate::cmd!(
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$A\" \"${MAKEFLAGS-unset}\" \"$PWD\""
        )
        .env("A", "it's a \"b\" $c")
        .env_remove("MAKEFLAGS")
        .dir("/tmp");
        let direct = c.output().unwrap();
        let via_shell = crate::cmd!("sh", "-c", c.line())
            .env("MAKEFLAGS", "-j9")
            .output()
            .unwrap();
        assert_eq!(direct, "it's a \"b\" $c|unset|/tmp");
        assert_eq!(via_shell, direct);
    }

    #[test]
    fn a_clean_environment_keeps_only_the_listed_host_variables() {
        // No other test reads this variable.
        std::env::set_var("FINNIX_TEST_LEAK", "1");
        let out = crate::cmd!("env")
            .clean_env()
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(!out.contains("FINNIX_TEST_LEAK"), "{out}");
        assert!(out.contains("LC_ALL=C"), "{out}");
        assert!(out.contains("PATH="), "{out}");
        let leaked = crate::cmd!("env").output().unwrap();
        assert!(leaked.contains("FINNIX_TEST_LEAK=1"), "{leaked}");
    }

    #[test]
    fn it_runs_what_it_says() {
        let out = crate::cmd!("sh", "-c", "printf %s \"$X\"; cat")
            .env("X", "a b")
            .stdin_bytes(&b"-in"[..])
            .expr()
            .read()
            .unwrap();
        assert_eq!(out, "a b-in");
    }
}
