//! Stage `tarballs`: the Xen and the UML tarballs, deterministic: entries
//! sorted, uid and gid 0, every mtime SOURCE_DATE_EPOCH, gzip header with
//! mtime 0. Their guest configuration and READMEs are data:
//! `configs/xen/`, `configs/uml/`.

use fs_err as fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stages::StageId;
use crate::support::cache::{cached_stage, Key, KeyBuilder};
use crate::support::context::Ctx;
use crate::support::ui;

/// One tarball entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    File { mode: u32, data: Vec<u8> },
    Symlink(String),
    Dir,
}

/// A gzipped tar of `items` (path → item), sorted by path.
pub fn tar_gz(items: &[(String, Item)], epoch: i64) -> Result<Vec<u8>> {
    let mut sorted: Vec<&(String, Item)> = items.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    for (path, item) in sorted {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        h.set_mtime(epoch as u64);
        match item {
            Item::File { mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, path, data.as_slice())?;
            }
            Item::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, path, target)?;
            }
            Item::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            }
        }
    }
    let gz = tar.into_inner()?;
    let mut bytes = gz.finish()?;
    bytes.flush()?;
    Ok(bytes)
}

pub struct Names {
    pub iso: String,
    pub xen: String,
    pub uml: String,
    pub manifest: String,
    /// The SPDX 2.3 SBOM.
    pub sbom: String,
    /// The corresponding source (`cargo xtask source`).
    pub source: String,
    /// The same when some Debian source files could not be fetched
    /// (`--allow-incomplete`; it holds a MISSING list).
    pub source_incomplete: String,
    /// The network boot's files (`stages::netboot`): kernel, initramfs,
    /// squashfs and the iPXE script that boots them.
    pub netboot_kernel: String,
    pub netboot_initrd: String,
    pub netboot_squashfs: String,
    pub netboot_ipxe: String,
}

/// The release files' names, `finnix-<version>-amd64.iso` and so on. A
/// profile other than the default carries its name
/// (`finnix-<version>-mini-amd64.iso`), so that a test build is never taken
/// for the release.
pub fn release_names(name: &str, version: &str, profile: &str, default_profile: &str) -> Names {
    let base = if profile == default_profile {
        format!("{name}-{version}")
    } else {
        format!("{name}-{version}-{profile}")
    };
    Names {
        iso: format!("{base}-amd64.iso"),
        xen: format!("{base}-xen.tar.gz"),
        uml: format!("{base}-uml.tar.gz"),
        manifest: format!("{base}.manifest.json"),
        sbom: format!("{base}.spdx.json"),
        source: format!("{base}-source.tar"),
        source_incomplete: format!("{base}-source-incomplete.tar"),
        netboot_kernel: format!("{base}-netboot-amd64.vmlinuz"),
        netboot_initrd: format!("{base}-netboot-amd64.initrd.img"),
        netboot_squashfs: format!("{base}-netboot-amd64.squashfs"),
        netboot_ipxe: format!("{base}-netboot-amd64.ipxe"),
    }
}

/// `cargo xtask source`'s archive: listed in SHA256SUMS after `dist`, but not
/// in the manifest, and not something `dist` rebuilds.
pub fn is_source_archive(name: &str) -> bool {
    name.ends_with("-source.tar") || name.ends_with("-source-incomplete.tar")
}

pub fn names(ctx: &Ctx, profile: &str) -> Names {
    let d = &ctx.config.distribution;
    release_names(
        &d.name.to_lowercase(),
        &d.version,
        profile,
        &ctx.config.rootfs.default_profile,
    )
}

fn fill(template: &str, ctx: &Ctx, profile: &str, kernel: &str, tarball: &str) -> String {
    let d = &ctx.config.distribution;
    template
        .replace("@NAME@", &d.name)
        .replace("@VERSION@", &d.version)
        .replace("@KERNEL@", kernel)
        .replace("@TARBALL@", tarball)
        .replace("@ISO@", &names(ctx, profile).iso)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned()
}

/// `finnix-<version>-xen.tar.gz`: finnix-conf, the domU kernel, the
/// initrd and a README, at the top level (the spec unpacks it into /root).
pub fn xen(ctx: &Ctx, profile: &str, bzimage: &Path, initrd: &Path) -> Result<(String, Vec<u8>)> {
    let n = names(ctx, profile);
    let kernel = file_name(bzimage);
    let conf = fs::read_to_string(ctx.root.join("configs/xen/finnix-conf"))
        .context("configs/xen/finnix-conf")?;
    let readme =
        fs::read_to_string(ctx.root.join("configs/xen/README")).context("configs/xen/README")?;
    let items = vec![
        (
            "finnix-conf".to_string(),
            Item::File {
                mode: 0o644,
                data: fill(&conf, ctx, profile, &kernel, &n.xen).into_bytes(),
            },
        ),
        (
            "README.xen".to_string(),
            Item::File {
                mode: 0o644,
                data: fill(&readme, ctx, profile, &kernel, &n.xen).into_bytes(),
            },
        ),
        (
            kernel.clone(),
            Item::File {
                mode: 0o644,
                data: fs::read(bzimage)?,
            },
        ),
        (
            "initrd.img".to_string(),
            Item::File {
                mode: 0o644,
                data: fs::read(initrd)?,
            },
        ),
    ];
    Ok((n.xen, tar_gz(&items, ctx.epoch.global)?))
}

/// `finnix-<version>-uml.tar.gz`: in `finnix-<version>-uml/`, the UML
/// kernel, `linux` linking to it, the initrd, the live system's static
/// `finnix` program (`finnix create` on any Linux host) and a README.
pub fn uml(
    ctx: &Ctx,
    profile: &str,
    kernel_path: &Path,
    initrd: &Path,
    finnix: &Path,
) -> Result<(String, Vec<u8>)> {
    let n = names(ctx, profile);
    let kernel = file_name(kernel_path);
    let dir = n.uml.trim_end_matches(".tar.gz").to_string();
    let readme =
        fs::read_to_string(ctx.root.join("configs/uml/README")).context("configs/uml/README")?;
    let items = vec![
        (dir.clone(), Item::Dir),
        (
            format!("{dir}/README"),
            Item::File {
                mode: 0o644,
                data: fill(&readme, ctx, profile, &kernel, &n.uml).into_bytes(),
            },
        ),
        (
            format!("{dir}/{kernel}"),
            Item::File {
                mode: 0o755,
                data: fs::read(kernel_path)?,
            },
        ),
        (format!("{dir}/linux"), Item::Symlink(kernel.clone())),
        (
            format!("{dir}/initrd.img"),
            Item::File {
                mode: 0o644,
                data: fs::read(initrd)?,
            },
        ),
        (
            format!("{dir}/finnix"),
            Item::File {
                mode: 0o755,
                data: fs::read(finnix)?,
            },
        ),
    ];
    Ok((n.uml, tar_gz(&items, ctx.epoch.global)?))
}

const RECIPE: u32 = 1;

/// A tarball as a cached stage of its own; returns its name and path.
pub fn stage(
    ctx: &Ctx,
    id: StageId,
    profile: &str,
    inputs: &[&Key],
    make: impl FnOnce(&Ctx) -> Result<(String, Vec<u8>)>,
) -> Result<(String, PathBuf)> {
    let what = format!(
        "write the {} tarball",
        id.name().trim_start_matches("tarball-")
    );
    let dir = id.dir(profile);
    ui::stage(&ctx.logs(), &dir, what, |s| {
        let mut k = KeyBuilder::new(id.key_label(), RECIPE);
        for (i, key) in inputs.iter().enumerate() {
            k.key(&format!("input {i}"), key);
        }
        let d = &ctx.config.distribution;
        k.text("distribution", format!("{} {}", d.name, d.version))
            .text("names", names(ctx, profile).iso)
            .text("epoch", ctx.epoch.global.to_string());
        for f in [
            "configs/xen/finnix-conf",
            "configs/xen/README",
            "configs/uml/README",
            "Cargo.lock",
        ] {
            k.file(f, &ctx.root.join(f))?;
        }
        cached_stage(
            &ctx.cache,
            s,
            &dir,
            k.finish(),
            |entry, _| {
                let name = fs::read_to_string(entry.join("name"))
                    .with_context(|| format!("corrupt cache entry {}", entry.display()))?;
                let path = entry.join(&name);
                Ok((name, path))
            },
            |(_, path)| ui::display_path(path),
            |_, tmp| {
                let (name, bytes) = make(ctx)?;
                fs::write(tmp.join(&name), &bytes)?;
                fs::write(tmp.join("name"), &name)?;
                Ok(ui::fmt_size(bytes.len() as u64))
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_profile_gets_the_release_names() {
        let n = release_names("finnix", "127", "standard", "standard");
        assert_eq!(
            [n.iso, n.xen, n.uml, n.manifest],
            [
                "finnix-127-amd64.iso",
                "finnix-127-xen.tar.gz",
                "finnix-127-uml.tar.gz",
                "finnix-127.manifest.json"
            ]
        );
        let n = release_names("finnix", "127", "mini", "standard");
        assert_eq!(
            [n.iso, n.xen, n.uml, n.manifest],
            [
                "finnix-127-mini-amd64.iso",
                "finnix-127-mini-xen.tar.gz",
                "finnix-127-mini-uml.tar.gz",
                "finnix-127-mini.manifest.json"
            ]
        );
    }

    #[test]
    fn tarballs_are_deterministic_and_gnu_tar_reads_them() {
        let items = vec![
            (
                "b/x".to_string(),
                Item::File {
                    mode: 0o755,
                    data: b"exe".to_vec(),
                },
            ),
            ("b".to_string(), Item::Dir),
            (
                "a".to_string(),
                Item::File {
                    mode: 0o644,
                    data: b"hello\n".to_vec(),
                },
            ),
            ("b/link".to_string(), Item::Symlink("x".into())),
        ];
        let one = tar_gz(&items, 1_700_000_000).unwrap();
        let mut reversed = items.clone();
        reversed.reverse();
        assert_eq!(
            one,
            tar_gz(&reversed, 1_700_000_000).unwrap(),
            "input order does not matter"
        );
        assert_eq!(&one[..2], &[0x1f, 0x8b]);
        assert_eq!(&one[4..8], &[0, 0, 0, 0], "gzip mtime is 0");

        crate::support::prereq::need_for_test("tar");
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("finnix-tar.tar.gz");
        fs::write(&path, &one).unwrap();
        let listing = crate::cmd!(
            "tar",
            "--list",
            "--verbose",
            "--numeric-owner",
            "--full-time",
            "-zf",
            &path
        )
        .env("TZ", "UTC")
        .expr()
        .read()
        .unwrap();
        fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with("-rw-r--r-- 0/0") && lines[0].ends_with("2023-11-14 22:13:20 a"),
            "{listing}"
        );
        assert!(
            lines[1].starts_with("drwxr-xr-x 0/0") && lines[1].ends_with(" b/"),
            "{listing}"
        );
        assert!(
            lines[2].starts_with("lrwxrwxrwx 0/0") && lines[2].ends_with("b/link -> x"),
            "{listing}"
        );
        assert!(
            lines[3].starts_with("-rwxr-xr-x 0/0") && lines[3].ends_with(" b/x"),
            "{listing}"
        );
    }
}
