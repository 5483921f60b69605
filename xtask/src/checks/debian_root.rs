//! The plain Debian roots the checks run in or boot (not Finnix): the
//! pristine machine of check-fresh, the preparation root of check-rescue,
//! the Xen host of the xen-xl target. Each is `mmdebstrap --variant=minbase`
//! of Debian bookworm with a few packages, apt's signature checks on, cached
//! as its own stage; a stage may add its own files to the entry afterwards.

use std::path::{Path, PathBuf};

use anyhow::Result;
use fs_err as fs;

use crate::stages::StageId;
use crate::support::cache::{cached_stage, Key, KeyBuilder};
use crate::support::context::{tool_version, Ctx};
use crate::support::ui::{self, Stage};

pub const SUITE: &str = crate::support::config::DEBIAN_SUITE;
pub const MIRROR: &str = crate::support::config::DEBIAN_MIRROR;
pub const SECURITY_MIRROR: &str = "http://security.debian.org/debian-security";
pub const KEYRING: &str = crate::support::config::DEBIAN_KEYRING;

/// What a root is made of.
pub struct Recipe<'a> {
    pub stage: StageId,
    /// Its progress line.
    pub what: String,
    /// Bumped when what is done to the tree changes.
    pub version: u32,
    pub packages: Vec<String>,
    /// Whether apt installs recommended packages, in mmdebstrap and later
    /// in the root itself (a fresh machine does; tool roots do not).
    pub recommends: bool,
    /// Files of this repository that the stage puts into the entry.
    pub files: Vec<&'a Path>,
}

/// The package names of a list file: one per line, `#` comments.
pub fn read_packages(ctx: &Ctx, rel: &str) -> Result<Vec<String>> {
    let text = fs::read_to_string(ctx.root.join(rel))?;
    let packages = crate::stages::rootfs::parse_packages(&text, rel).map_err(anyhow::Error::msg)?;
    Ok(packages.into_iter().map(|(n, _)| n).collect())
}

/// The root's cache entry (its tree is `tree/`), built when missing:
/// mmdebstrap, then `finish` with the stage, the entry and the tree.
pub fn build(
    ctx: &Ctx,
    r: &Recipe,
    finish: impl FnOnce(&mut Stage, &Path, &Path) -> Result<String>,
) -> Result<(PathBuf, Key)> {
    let mut key = KeyBuilder::new(r.stage.key_label(), r.version);
    key.text("suite", SUITE)
        .text("mirror", MIRROR)
        .text("security mirror", SECURITY_MIRROR)
        .text("packages", r.packages.join(","))
        .text("recommends", r.recommends.to_string())
        .text("mmdebstrap", tool_version("mmdebstrap"))
        .file("archive keyring", Path::new(KEYRING))?;
    for f in &r.files {
        key.file(&f.display().to_string(), &ctx.root.join(f))?;
    }
    let key = key.finish();
    ui::stage(&ctx.logs(), r.stage.name(), r.what.clone(), |s| {
        cached_stage(
            &ctx.cache,
            s,
            r.stage.name(),
            key,
            |entry, key| Ok((entry, key)),
            |_| String::new(),
            |s, tmp| {
                let tree = tmp.join("tree");
                let mut cmd = crate::cmd!(
                    "mmdebstrap",
                    "--variant=minbase",
                    "--mode=root",
                    "--format=directory"
                );
                if !r.recommends {
                    cmd = cmd.arg("--aptopt=Apt::Install-Recommends \"false\"");
                }
                s.run(
                    cmd.args([
                        // apt's download sandbox user cannot reach every
                        // build path; root downloads, the outcome is the same.
                        "--aptopt=APT::Sandbox::User \"root\"".to_string(),
                        format!("--keyring={KEYRING}"),
                        format!("--include={}", r.packages.join(",")),
                        SUITE.to_string(),
                        tree.display().to_string(),
                        format!("deb {MIRROR} {SUITE} main"),
                        format!("deb {MIRROR} {SUITE}-updates main"),
                        format!("deb {SECURITY_MIRROR} {SUITE}-security main"),
                    ])
                    .env("LC_ALL", "C.UTF-8")
                    .stdin_null(),
                )?;
                let more = finish(s, tmp, &tree)?;
                Ok(if more.is_empty() {
                    format!("{} package(s) asked", r.packages.len())
                } else {
                    format!("{} package(s) asked; {more}", r.packages.len())
                })
            },
        )
    })
}
