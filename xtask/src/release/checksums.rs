//! Stage `checksums`: `SHA256SUMS` (as `sha256sum -c` reads it) and the
//! release manifest (pure: the caller gathers the facts).

use serde::{Deserialize, Serialize};

/// A file in the release, or an input to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hashed {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// Everything a release is made from: written by `dist`, read back by the
/// same type (verify-release, verify-repro --against); an unknown or
/// missing field is an error naming the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub profile: String,
    pub source_date_epoch: i64,
    pub kernel_source_date_epoch: i64,
    pub git_commit: String,
    pub artifacts: Vec<Hashed>,
    pub kernel_source: crate::support::lock::LockedSource,
    /// The Debian archive snapshot the root filesystem came from ("": the
    /// live archive); a rebuild must use the same.
    pub archive_snapshot: String,
    /// Debian packages taken as they are (the ISO's signed kernel, shim,
    /// GRUB), by role, as pinned in finnix.lock.
    pub debian_packages: std::collections::BTreeMap<String, crate::support::lock::LockedDeb>,
    pub kernel_release: KernelReleases,
    pub patches: Vec<Hashed>,
    pub config_fragments: Vec<Hashed>,
    pub configs: Vec<Hashed>,
    pub packages: Vec<Package>,
    pub tools: Vec<(String, String)>,
    pub stage_keys: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelReleases {
    pub uml: String,
    pub xen: String,
    /// Debian's kernel, which boots the ISO.
    pub metal: String,
}

/// `SHA256SUMS`: `<hash>  <name>` lines, sorted by name.
pub fn sha256sums(files: &[Hashed]) -> String {
    let mut sorted: Vec<&Hashed> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.name))
        .collect()
}

/// Parse `SHA256SUMS` text into (name, hash) pairs.
pub fn parse_sha256sums(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let (hash, name) = l
                .split_once("  ")
                .ok_or_else(|| format!("line {}: expected `<sha256>  <name>`", i + 1))?;
            if !crate::support::config::is_sha256(hash) {
                return Err(format!("line {}: {hash:?} is not a sha256", i + 1));
            }
            let name = name.trim_start_matches('*');
            if !plain_file_name(name) {
                return Err(format!(
                    "line {}: {name:?} is not a plain file name of the release directory (a path, `..` or a hidden name is refused)",
                    i + 1
                ));
            }
            Ok((name.to_string(), hash.to_string()))
        })
        .collect()
}

/// `dpkg-query` lines `name version arch` into packages.
pub fn parse_packages(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(Package {
                name: w.next()?.into(),
                version: w.next()?.into(),
                architecture: w.next().unwrap_or("").into(),
            })
        })
        .collect()
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }

    /// A manifest as `dist` wrote it; every artifact must have its size.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(a) = m.artifacts.iter().find(|a| a.size.is_none()) {
            return Err(format!("artifact {} has no size", a.name));
        }
        Ok(m)
    }

    pub fn read(path: &std::path::Path) -> anyhow::Result<Manifest> {
        let text = fs_err::read_to_string(path)?;
        Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// A name SHA256SUMS may list: a plain file name in the release directory
/// (no directory part, no `..`, not absolute, not empty, not hidden).
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && !name.starts_with('.')
        && !name.contains('\0')
}

/// SHA256SUMS with `entry` (name, sha256) listed, and without `drop`
/// (other names the same file had, or one no longer there): for the source
/// archive, added to a release's SHA256SUMS after `dist` wrote it.
pub fn with_entry(
    text: &str,
    entry: Option<(&str, &str)>,
    drop: &[&str],
) -> Result<String, String> {
    let files: Vec<Hashed> = parse_sha256sums(text)?
        .into_iter()
        .filter(|(n, _)| entry.is_none_or(|(name, _)| n != name) && !drop.contains(&n.as_str()))
        .map(|(name, sha256)| Hashed {
            name,
            size: None,
            sha256,
        })
        .chain(entry.map(|(name, sha256)| Hashed {
            name: name.to_string(),
            size: None,
            sha256: sha256.to_string(),
        }))
        .collect();
    Ok(sha256sums(&files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, c: char) -> Hashed {
        Hashed {
            name: name.into(),
            size: Some(1),
            sha256: c.to_string().repeat(64),
        }
    }

    #[test]
    fn sums_are_sorted_and_parse_back() {
        let text = sha256sums(&[h("finnix-1-xen.tar.gz", 'b'), h("finnix-1-amd64.iso", 'a')]);
        assert_eq!(
            text,
            format!(
                "{}  finnix-1-amd64.iso\n{}  finnix-1-xen.tar.gz\n",
                "a".repeat(64),
                "b".repeat(64)
            )
        );
        let parsed = parse_sha256sums(&text).unwrap();
        assert_eq!(
            parsed[1],
            ("finnix-1-xen.tar.gz".to_string(), "b".repeat(64))
        );
        assert!(parse_sha256sums("nonsense\n").is_err());
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "sub/file.iso",
            ".hidden",
            "..",
        ] {
            let e = parse_sha256sums(&format!("{}  {bad}\n", "a".repeat(64))).unwrap_err();
            assert!(e.contains("plain file name"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written_and_needs_its_sizes() {
        let m = Manifest {
            name: "Finnix".into(),
            version: "1".into(),
            profile: "mini".into(),
            source_date_epoch: 1,
            kernel_source_date_epoch: 2,
            git_commit: "abc".into(),
            artifacts: vec![h("finnix-1-amd64.iso", 'a')],
            kernel_source: Default::default(),
            archive_snapshot: String::new(),
            debian_packages: Default::default(),
            kernel_release: KernelReleases {
                uml: "u".into(),
                xen: "x".into(),
                metal: "m".into(),
            },
            patches: vec![Hashed {
                name: "p".into(),
                size: None,
                sha256: "b".repeat(64),
            }],
            config_fragments: vec![],
            configs: vec![],
            packages: vec![],
            tools: vec![("gcc".into(), "12".into())],
            stage_keys: vec![],
        };
        let json = m.to_json();
        let back = Manifest::parse(&json).unwrap();
        assert_eq!(back.to_json(), json);
        let no_size = json.replacen("\"size\": 1,", "", 1);
        assert!(Manifest::parse(&no_size).unwrap_err().contains("no size"));
        let renamed = json.replace("source_date_epoch", "epoch");
        assert!(Manifest::parse(&renamed).is_err());
    }

    #[test]
    fn package_lines() {
        let p = parse_packages("bash 5.2.15-2+b7 amd64\nbusybox-static 1:1.35.0-4+deb12u1+b1\n");
        assert_eq!(
            p[0],
            Package {
                name: "bash".into(),
                version: "5.2.15-2+b7".into(),
                architecture: "amd64".into()
            }
        );
        assert_eq!(p[1].architecture, "");
    }

    #[test]
    fn an_entry_is_added_in_order_and_its_other_name_dropped() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text =
            format!("{a}  f-amd64.iso\n{a}  f-source-incomplete.tar\n{a}  f.manifest.json\n");
        let got = with_entry(
            &text,
            Some(("f-source.tar", &b)),
            &["f-source-incomplete.tar"],
        )
        .unwrap();
        assert_eq!(
            got,
            format!("{a}  f-amd64.iso\n{b}  f-source.tar\n{a}  f.manifest.json\n")
        );
        // Again: replaced, not doubled.
        assert_eq!(
            with_entry(&got, Some(("f-source.tar", &b)), &[]).unwrap(),
            got
        );
        // Dropped only.
        assert_eq!(
            with_entry(&got, None, &["f-source.tar"]).unwrap(),
            format!("{a}  f-amd64.iso\n{a}  f.manifest.json\n")
        );
    }
}
