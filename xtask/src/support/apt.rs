//! apt with its own sources, lists and cache in a directory of ours (the
//! host's configuration untouched): for a snapshot archive, deb-src lines,
//! or a test mirror.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::support::cmd::Cmd;

/// A snapshot archive's URL: `{archive}` and `{timestamp}` filled in.
pub fn snapshot_url(template: &str, archive: &str, timestamp: &str) -> String {
    template
        .replace("{archive}", archive)
        .replace("{timestamp}", timestamp)
        .trim_end_matches('/')
        .to_string()
}

/// The three suites of a Debian release (`bookworm`, `-updates` from the
/// mirror, `-security` from the security archive), as source lines.
pub fn archive_lines(
    kind: &str,
    mirror: &str,
    security: &str,
    suite: &str,
    components: &[String],
) -> Vec<String> {
    let c = components.join(" ");
    let (mirror, security) = (mirror.trim_end_matches('/'), security.trim_end_matches('/'));
    vec![
        format!("{kind} {mirror} {suite} {c}"),
        format!("{kind} {mirror} {suite}-updates {c}"),
        format!("{kind} {security} {suite}-security {c}"),
    ]
}

pub struct PrivateApt {
    dir: PathBuf,
    trusted: Option<PathBuf>,
}

impl PrivateApt {
    /// `sources`: sources.list lines. `trusted`: a keyring that replaces
    /// the host's trusted keys (a test mirror's key), or None.
    pub fn new(dir: &Path, sources: &[String], trusted: Option<&Path>) -> Result<PrivateApt> {
        for d in [
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "trusted.gpg.d",
        ] {
            fs::create_dir_all(dir.join(d))?;
        }
        fs::write(dir.join("sources.list"), sources.join("\n") + "\n")?;
        if let Some(k) = trusted {
            fs::copy(k, dir.join("trusted.gpg.d/mirror.gpg"))?;
        }
        Ok(PrivateApt {
            dir: dir.to_path_buf(),
            trusted: trusted.map(Path::to_path_buf),
        })
    }

    /// The options that point apt at this directory.
    pub fn options(&self) -> Vec<String> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        let mut o = vec![
            format!("Dir::Etc::SourceList={}", d("sources.list")),
            format!("Dir::Etc::SourceParts={}", d("sources.list.d")),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::Cache={}", d("cache")),
            "APT::Sandbox::User=root".to_string(),
            // Snapshots' Release files are past their Valid-Until.
            "Acquire::Check-Valid-Until=false".to_string(),
        ];
        if self.trusted.is_some() {
            o.push(format!("Dir::Etc::TrustedParts={}", d("trusted.gpg.d")));
            o.push(format!("Dir::Etc::Trusted={}", d("trusted.gpg.d/none.gpg")));
        }
        o
    }

    /// `apt-get <args>` with those options.
    pub fn apt_get<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Cmd::argv("apt-get", ["-q"]);
        for o in self.options() {
            c = c.arg("-o").arg(o);
        }
        c.args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_urls_and_lines() {
        let u = snapshot_url(
            "http://snapshot.debian.org/archive/{archive}/{timestamp}/",
            "debian-security",
            "20261127T000000Z",
        );
        assert_eq!(
            u,
            "http://snapshot.debian.org/archive/debian-security/20261127T000000Z"
        );
        let l = archive_lines(
            "deb",
            "http://m/debian/",
            "http://s",
            "bookworm",
            &["main".into()],
        );
        assert_eq!(
            l,
            [
                "deb http://m/debian bookworm main",
                "deb http://m/debian bookworm-updates main",
                "deb http://s bookworm-security main"
            ]
        );
    }
}
