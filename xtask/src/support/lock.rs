//! `finnix.lock`: the exact inputs fetched from outside the repository (the
//! kernel source, Debian's signed kernel, shim and GRUB, each profile's
//! package versions and archive snapshot), so that a release can insist on
//! them (`--locked`).

use fs_err as fs;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::support::config::parse_toml;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Lock {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_source: Option<LockedSource>,
    /// Debian binary packages taken as they are, by role (`metal-kernel`,
    /// `shim`, ...): `[debian-package.<role>]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub debian_package: BTreeMap<String, LockedDeb>,
    /// Each Debian-based profile's installed packages (and the archive
    /// snapshot they came from): `[rootfs-packages.<profile>]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rootfs_packages: BTreeMap<String, LockedPackages>,
}

/// Roles of `[debian-package.<role>]` fetched for a check alone (the Wi-Fi
/// check's access point, `check-hostapd`): pinned like the others, never
/// in a release, its manifest, SBOM or source archive.
pub const CHECK_ROLE_PREFIX: &str = "check-";

impl Lock {
    /// The packages taken as Debian ships them that a release carries:
    /// every `[debian-package.<role>]` but the checks' own.
    pub fn shipped_debs(&self) -> BTreeMap<String, LockedDeb> {
        self.debian_package
            .iter()
            .filter(|(role, _)| !role.starts_with(CHECK_ROLE_PREFIX))
            .map(|(r, d)| (r.clone(), d.clone()))
            .collect()
    }
}

/// A root filesystem's package versions, as built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockedPackages {
    /// The profile's `snapshot` time stamp ("" for the live archive).
    #[serde(default)]
    pub snapshot: String,
    pub versions: BTreeMap<String, String>,
}

/// One .deb: the exact package (a metapackage resolved), version and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockedDeb {
    pub package: String,
    pub version: String,
    /// sha256 of the .deb file.
    pub sha256: String,
}

impl LockedDeb {
    pub fn spec(&self) -> String {
        format!("{}={}", self.package, self.version)
    }
}

/// A fetched .deb against its pin: the message names the role and both.
pub fn compare_deb(role: &str, locked: Option<&LockedDeb>, fetched: &LockedDeb) -> Verdict {
    match locked {
        None => Verdict::New,
        Some(l) if l == fetched => Verdict::Same,
        Some(l) => Verdict::Moved(format!(
            "Debian package {role} differs from finnix.lock:\n  locked:  {} {} sha256 {}\n  fetched: {} {} sha256 {}",
            l.package, l.version, l.sha256, fetched.package, fetched.version, fetched.sha256
        )),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockedSource {
    /// `debian` or `kernel.org`
    pub source: String,
    /// The Debian package and its exact version, or the kernel.org url.
    pub origin: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub package_version: String,
    /// Upstream kernel version (Makefile VERSION.PATCHLEVEL.SUBLEVEL).
    pub version: String,
    /// sha256 of the source tarball.
    pub sha256: String,
    /// The archive snapshot it was fetched from ("": the live archive).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot: String,
}

const HEADER: &str =
    "# Written by `cargo xtask`: the exact kernel source and Debian packages the build used.\n\
# `cargo xtask --locked ...` (releases) fails if what it fetches differs;\n\
# without --locked a moved pin is reported and this file updated.\n";

impl Lock {
    pub fn read(path: &Path) -> Result<Lock> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(parse_toml(&text, path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn render(&self) -> String {
        format!(
            "{HEADER}\n{}",
            toml::to_string(self).expect("lock serializes")
        )
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        crate::support::fsutil::write_atomic(path, self.render().as_bytes())
    }

    /// Read, change and write the lock file as one step: stages that run
    /// side by side (the network stages beside the kernel compiles) each
    /// record their pins, and none may lose another's.
    pub fn update<T>(path: &Path, change: impl FnOnce(&mut Lock) -> Result<T>) -> Result<T> {
        static UPDATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = UPDATING.lock().unwrap_or_else(|e| e.into_inner());
        let mut lock = Lock::read(path)?;
        let before = lock.render();
        let value = change(&mut lock)?;
        if lock.render() != before {
            lock.write(path)?;
        }
        Ok(value)
    }
}

/// What `--locked` and the default mode do when a fetched source differs
/// from the lock.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Same,
    /// No lock yet: record it.
    New,
    /// Differs: the message names both hashes.
    Moved(String),
}

pub fn compare(locked: Option<&LockedSource>, fetched: &LockedSource) -> Verdict {
    match locked {
        None => Verdict::New,
        Some(l) if l == fetched => Verdict::Same,
        Some(l) => Verdict::Moved(format!(
            "kernel source differs from finnix.lock:\n  locked:  {} {} {} sha256 {}\n  fetched: {} {} {} sha256 {}",
            l.origin, l.package_version, l.version, l.sha256, fetched.origin, fetched.package_version, fetched.version, fetched.sha256
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(sha: &str) -> LockedSource {
        LockedSource {
            source: "debian".into(),
            origin: "linux-source-6.1".into(),
            package_version: "6.1.192-2".into(),
            version: "6.1.192".into(),
            sha256: sha.into(),
            snapshot: String::new(),
        }
    }

    #[test]
    fn round_trips() {
        let mut lock = Lock {
            kernel_source: Some(src(&"a".repeat(64))),
            ..Lock::default()
        };
        lock.debian_package.insert(
            "metal-kernel".into(),
            LockedDeb {
                package: "linux-image-6.1.0-56-amd64".into(),
                version: "6.1.192-2".into(),
                sha256: "c".repeat(64),
            },
        );
        let text = lock.render();
        assert!(
            text.contains("[kernel-source]")
                && text.contains("package-version = \"6.1.192-2\"")
                && text.contains("[debian-package.metal-kernel]"),
            "{text}"
        );
        let back: Lock = parse_toml(&text, Path::new("finnix.lock")).unwrap();
        assert_eq!(back, lock);
    }

    #[test]
    fn a_moved_package_names_its_role_and_both_versions() {
        let deb = |v: &str| LockedDeb {
            package: "shim-signed".into(),
            version: v.into(),
            sha256: v.repeat(8),
        };
        assert_eq!(compare_deb("shim", None, &deb("1")), Verdict::New);
        match compare_deb("shim", Some(&deb("1")), &deb("2")) {
            Verdict::Moved(m) => {
                assert!(
                    m.contains("shim differs")
                        && m.contains("shim-signed 1")
                        && m.contains("shim-signed 2"),
                    "{m}"
                )
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_moved_source_names_both_hashes() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        assert_eq!(compare(None, &src(&a)), Verdict::New);
        assert_eq!(compare(Some(&src(&a)), &src(&a)), Verdict::Same);
        match compare(Some(&src(&a)), &src(&b)) {
            Verdict::Moved(m) => assert!(m.contains(&a) && m.contains(&b), "{m}"),
            v => panic!("{v:?}"),
        }
    }
}
