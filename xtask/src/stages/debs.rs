//! Debian binary packages taken as they are (the signed kernel, shim, GRUB):
//! fetched with `apt-get download`, pinned by role in `finnix.lock`
//! (`[debian-package.<role>]`: exact package, version, sha256) and kept in
//! the cache under their sha256. A metapackage (`linux-image-amd64`) is
//! resolved to the package it depends on, which is what is pinned.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::stages::kernel::source::apt_download;
use crate::support::cache::{sha256_file, KeyBuilder};
use crate::support::context::Ctx;
use crate::support::lock::{compare_deb, Lock, LockedDeb, Verdict};
use crate::support::ui::Stage;

const RECIPE: u32 = 1;
/// The cache directory of a role's fetched packages (one entry per sha256;
/// the cache keeps the newest two per directory).
fn dir(role: &str) -> String {
    format!("debs-{role}")
}

/// A fetched, verified .deb.
#[derive(Debug, Clone)]
pub struct Deb {
    pub id: LockedDeb,
    pub path: PathBuf,
}

fn key(sha256: &str) -> crate::support::cache::Key {
    KeyBuilder::new("debs", RECIPE)
        .text("sha256", sha256)
        .finish()
}

/// The pin of `role`, if any.
pub fn locked(ctx: &Ctx, role: &str) -> Result<Option<LockedDeb>> {
    Ok(Lock::read(&ctx.lock_path())?.debian_package.remove(role))
}

/// The package named by a metapackage's `Depends:` (its first alternative
/// of the first dependency), or None for a package that is not one.
pub fn metapackage_target(depends: &str) -> Option<String> {
    let first = depends.split(',').next()?.split('|').next()?.trim();
    let name = first.split_whitespace().next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The pinned .deb of `role`, if the cache holds it.
pub fn cached(ctx: &Ctx, role: &str, pin: &LockedDeb) -> Option<Deb> {
    let entry = ctx.cache.lookup(&dir(role), &key(&pin.sha256))?;
    Some(Deb {
        id: pin.clone(),
        path: entry.join(format!("{}.deb", pin.package)),
    })
}

/// The .deb for `role` (config name `wanted`): the pinned one from the
/// cache, else fetched (the pinned version, or without a pin the newest,
/// `follow` resolving a metapackage), checked against the pin and recorded.
pub fn fetch(
    ctx: &Ctx,
    stage: &mut Stage,
    role: &str,
    wanted: &str,
    follow: impl Fn(&Path) -> Result<Option<String>>,
) -> Result<Deb> {
    let previous = locked(ctx, role)?;
    if let Some(deb) = previous.as_ref().and_then(|pin| cached(ctx, role, pin)) {
        return Ok(deb);
    }
    let work = ctx.cache.temp_dir(&dir(role))?;
    let mut deb = None;
    if let Some(pin) = &previous {
        match apt_download(stage, &pin.spec(), work.path()) {
            Ok(path) => deb = Some(path),
            Err(e) if ctx.locked => {
                return Err(e).with_context(|| {
                    format!("--locked: {role}'s pinned package {} is not available from the archive (drop --locked to move the pin to the newest {wanted})", pin.spec())
                })
            }
            Err(_) => stage.warn(format!(
                "{} (finnix.lock, {role}) is no longer in the archive; taking the newest {wanted}",
                pin.spec()
            )),
        }
    }
    let deb = match deb {
        Some(d) => d,
        None => {
            let first = apt_download(stage, wanted, work.path())?;
            match follow(&first)? {
                Some(target) => {
                    stage.note(format!("{wanted} is a metapackage for {target}"));
                    fs::remove_file(&first)?;
                    apt_download(stage, &target, work.path())?
                }
                None => first,
            }
        }
    };
    let field = |f: &str| -> Result<String> {
        Ok(stage
            .read(crate::cmd!("dpkg-deb", "-f", &deb, f))?
            .trim()
            .to_string())
    };
    let fetched = LockedDeb {
        package: field("Package")?,
        version: field("Version")?,
        sha256: sha256_file(&deb)?,
    };
    stage.note(format!(
        "fetched {} sha256 {}",
        fetched.spec(),
        fetched.sha256
    ));
    match compare_deb(role, previous.as_ref(), &fetched) {
        Verdict::Same => {}
        Verdict::New => stage.warn(format!(
            "recording {role} in finnix.lock: {} sha256 {}",
            fetched.spec(),
            fetched.sha256
        )),
        Verdict::Moved(message) if ctx.locked => {
            bail!("{message}\n--locked: refusing a package that differs from finnix.lock (drop --locked to accept it and update the lock)")
        }
        Verdict::Moved(message) => stage.warn(format!(
            "{message}\nupdating finnix.lock (use --locked to refuse this)"
        )),
    }
    if previous.as_ref() != Some(&fetched) {
        Lock::update(&ctx.lock_path(), |lock| {
            lock.debian_package.insert(role.into(), fetched.clone());
            Ok(())
        })?;
    }
    let name = format!("{}.deb", fetched.package);
    fs::rename(&deb, work.path().join(&name))?;
    let entry = ctx.cache.commit(&dir(role), &key(&fetched.sha256), work)?;
    Ok(Deb {
        id: fetched,
        path: entry.join(name),
    })
}

/// Unpack a .deb's files into `dest` (dpkg-deb -x).
pub fn extract(stage: &Stage, deb: &Deb, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    stage.run(crate::cmd!("dpkg-deb", "-x", &deb.path, dest))
}

/// The metapackage rule for packages that are never one (shim, GRUB).
pub fn no_metapackage(_: &Path) -> Result<Option<String>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metapackage_names_its_first_dependency() {
        assert_eq!(
            metapackage_target("linux-image-6.1.0-56-amd64 (= 6.1.192-2)").as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(metapackage_target("a (>= 1) | b, c").as_deref(), Some("a"));
        assert_eq!(metapackage_target(""), None);
    }
}
