//! Stage `kernel-metal`: Debian's signed kernel for the ISO (bare metal),
//! taken as Debian ships it. Not compiled here: `linux-image-amd64` names
//! the exact package, pinned in `finnix.lock` (`[debian-package.metal-kernel]`).
//!
//! The entry holds the signed `vmlinuz-<release>`, its `config`, the whole
//! module tree (`modules/lib/modules/<release>/`, indexed by `depmod`) for
//! the root filesystem, and `initrd-modules.img`: a second initramfs
//! archive with what finds the medium (`configs/metal/initramfs.modules`),
//! their dependencies, trimmed `modules.dep` and `modules.alias`, and the
//! list `/init` loads at once (`finnix.load`). The ISO's initrd is the
//! common one followed by this archive (the kernel unpacks both).

use fs_err as fs;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::stages::debs;
use crate::stages::StageId;
use crate::support::cache::{cached_stage, Key, KeyBuilder};
use crate::support::context::{package_version, Ctx};
use crate::support::cpio::{Archive, Kind};
use crate::support::ui;

const RECIPE: u32 = 2;
/// The modules' initramfs (81 MiB of cpio) at zstd level 12: 4 s on this
/// machine, where level 19 took 53 s for 1.7 MiB less (15.6 against 17.3
/// MiB). Levels 13 to 18 save little more than 12 does.
const MODULES_ZSTD_LEVEL: i32 = 12;
pub const ROLE: &str = "metal-kernel";
pub const RULES: &str = "configs/metal/initramfs.modules";
/// What `/init` loads at once, beside modules.dep in the initramfs.
pub const LOAD_LIST: &str = "finnix.load";
/// NTFS for `findiso=`: Debian 12's kernel has no NTFS driver, so the
/// ISO's initramfs carries ntfs-3g (FUSE) and what it links, taken from
/// Debian's packages as they are (role, package), pinned in finnix.lock.
pub const NTFS_DEBS: [(&str, &str); 3] = [
    ("initramfs-ntfs-3g", "ntfs-3g"),
    ("initramfs-libntfs-3g", "libntfs-3g89"),
    ("initramfs-libc6", "libc6"),
];
/// The files of those packages the initramfs takes: (path in the package,
/// path in the initramfs). The loader and libraries where ld.so looks.
const NTFS_FILES: [(&str, &str); 4] = [
    ("bin/ntfs-3g", "bin/ntfs-3g"),
    (
        "lib/x86_64-linux-gnu/libntfs-3g.so.89",
        "lib/x86_64-linux-gnu/libntfs-3g.so.89",
    ),
    (
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libc.so.6",
    ),
    (
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib64/ld-linux-x86-64.so.2",
    ),
];

/// The kernel entry in the cache.
#[derive(Debug, Clone)]
pub struct MetalKernel {
    pub entry: PathBuf,
    pub key: Key,
    /// `uname -r`: `6.1.0-56-amd64`.
    pub release: String,
    pub package: crate::support::lock::LockedDeb,
}

impl MetalKernel {
    pub fn image(&self) -> PathBuf {
        self.entry.join(format!("vmlinuz-{}", self.release))
    }
    /// `lib/modules/<release>` as the root filesystem gets it.
    pub fn modules(&self) -> PathBuf {
        self.entry.join("modules/lib/modules").join(&self.release)
    }
    /// The initramfs archive appended to the ISO's initrd.
    pub fn initrd_modules(&self) -> PathBuf {
        self.entry.join("initrd-modules.img")
    }
}

/// `configs/metal/initramfs.modules`, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub load: Vec<String>,
    /// (pattern, line number)
    pub include: Vec<(String, usize)>,
    /// (pattern, line number): taken out of what the includes match.
    pub exclude: Vec<(String, usize)>,
}

pub fn parse_rules(text: &str, file: &str) -> Result<Rules, String> {
    let mut rules = Rules::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("load"), Some(name), None) => rules.load.push(module_name(name)),
            (Some("include"), Some(path), None) => rules.include.push((path.into(), n + 1)),
            (Some("exclude"), Some(path), None) => rules.exclude.push((path.into(), n + 1)),
            _ => {
                return Err(format!(
                "{file}:{}: expected `load NAME`, `include PATH` or `exclude PATH`, found {line:?}",
                n + 1
            ))
            }
        }
    }
    Ok(rules)
}

/// A module's name as the kernel and modules.alias know it: the file name
/// without `.ko`, dashes as underscores.
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    base.strip_suffix(".ko").unwrap_or(base).replace('-', "_")
}

/// Does a rule match a module path (relative to lib/modules/<release>)?
pub fn rule_matches(rule: &str, path: &str) -> bool {
    if let Some(dir) = rule.strip_suffix('/') {
        return path.starts_with(&format!("{dir}/"));
    }
    let (rp, pp): (Vec<&str>, Vec<&str>) = (rule.split('/').collect(), path.split('/').collect());
    rp.len() == pp.len() && rp.iter().zip(&pp).all(|(r, p)| glob_component(r, p))
}

/// `*` within one path component (no other wildcards in rules).
fn glob_component(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len()).any(|i| {
                    s.is_char_boundary(head.len() + i) && glob_component(rest, &s[head.len() + i..])
                })
        }
    }
}

/// modules.dep: module path → its dependencies' paths (in modprobe's
/// order: the last is loaded first).
pub fn parse_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| {
            let (m, deps) = l.split_once(':')?;
            Some((
                m.trim().to_string(),
                deps.split_whitespace().map(String::from).collect(),
            ))
        })
        .collect()
}

/// The modules the initramfs carries: every module a rule matches, and their
/// dependencies. A rule that matches nothing is an error naming its line.
pub fn select(
    rules: &Rules,
    dep: &BTreeMap<String, Vec<String>>,
    file: &str,
) -> Result<BTreeSet<String>, String> {
    let mut chosen = BTreeSet::new();
    for (rule, line) in &rules.include {
        let mut matched = false;
        for m in dep.keys().filter(|m| rule_matches(rule, m)) {
            matched = true;
            chosen.insert(m.clone());
        }
        if !matched {
            return Err(format!(
                "{file}:{line}: `include {rule}` matches no module of this kernel"
            ));
        }
    }
    for (rule, line) in &rules.exclude {
        let before = chosen.len();
        chosen.retain(|m| !rule_matches(rule, m));
        if chosen.len() == before {
            return Err(format!(
                "{file}:{line}: `exclude {rule}` takes out nothing an include takes"
            ));
        }
    }
    let names: BTreeSet<String> = chosen.iter().map(|m| module_name(m)).collect();
    for name in &rules.load {
        if !names.contains(name) {
            return Err(format!(
                "{file}: `load {name}` names a module no `include` line ships"
            ));
        }
    }
    let mut all = chosen.clone();
    for m in &chosen {
        all.extend(dep.get(m).into_iter().flatten().cloned());
    }
    Ok(all)
}

/// modules.dep restricted to the shipped modules (every dependency of a
/// shipped module is shipped: [`select`] takes them along).
pub fn filter_dep(text: &str, shipped: &BTreeSet<String>) -> String {
    text.lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(m, _)| shipped.contains(m.trim()))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// modules.alias restricted to the shipped modules.
pub fn filter_alias(text: &str, shipped: &BTreeSet<String>) -> String {
    let names: BTreeSet<String> = shipped.iter().map(|m| module_name(m)).collect();
    text.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("alias") && w.nth(1).is_some_and(|m| names.contains(&module_name(m)))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn read_rules(ctx: &Ctx) -> Result<Rules> {
    let text = fs::read_to_string(ctx.root.join(RULES))?;
    parse_rules(&text, RULES).map_err(anyhow::Error::msg)
}

/// Fetch (or take from the cache) Debian's signed kernel and prepare it.
pub fn build(ctx: &Ctx) -> Result<MetalKernel> {
    let stage = StageId::KernelMetal;
    ui::stage(
        &ctx.logs(),
        stage.name(),
        format!(
            "Debian's signed kernel ({}) and its modules",
            ctx.config.metal.kernel
        ),
        |s| {
            let deb = debs::fetch(ctx, s, ROLE, &ctx.config.metal.kernel, |deb| {
                let list = crate::cmd!("dpkg-deb", "--contents", deb).output()?;
                if list.contains("./boot/vmlinuz-") {
                    return Ok(None);
                }
                let depends = crate::cmd!("dpkg-deb", "-f", deb, "Depends").output()?;
                debs::metapackage_target(&depends)
                    .map(Some)
                    .with_context(|| {
                        format!("{} holds no kernel and depends on nothing", deb.display())
                    })
            })?;
            let mut ntfs = Vec::new();
            for (role, package) in NTFS_DEBS {
                ntfs.push(debs::fetch(ctx, s, role, package, debs::no_metapackage)?);
            }
            let mut key = KeyBuilder::new(stage.key_label(), RECIPE);
            for d in &ntfs {
                key.text(&format!("deb {}", d.id.spec()), &d.id.sha256);
            }
            let key = key
                .text("package", deb.id.spec())
                .text("sha256", &deb.id.sha256)
                .file(RULES, &ctx.root.join(RULES))?
                .text("kmod", package_version("kmod"))
                .text("compression", format!("zstd-{MODULES_ZSTD_LEVEL}"))
                .text("epoch", ctx.epoch.global.to_string())
                .finish();
            let package = deb.id.clone();
            cached_stage(
                &ctx.cache,
                s,
                stage.name(),
                key,
                |entry, key| {
                    let release = fs::read_to_string(entry.join("release"))?
                        .trim()
                        .to_string();
                    Ok(MetalKernel {
                        entry,
                        key,
                        release,
                        package: package.clone(),
                    })
                },
                |k| format!("{} {}", k.package.spec(), ui::display_path(&k.image())),
                |s, out| prepare(ctx, s, &deb, &ntfs, out),
            )
        },
    )
}

fn prepare(
    ctx: &Ctx,
    s: &mut ui::Stage,
    deb: &debs::Deb,
    ntfs: &[debs::Deb],
    out: &Path,
) -> Result<String> {
    let work = ctx.cache.temp_dir("kernel-metal-unpack")?;
    debs::extract(s, deb, work.path())?;
    let modules_root = work.path().join("lib/modules");
    let mut releases: Vec<String> = fs::read_dir(&modules_root)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    releases.sort();
    let [release] = releases.as_slice() else {
        bail!(
            "{} holds {} kernel releases under lib/modules ({releases:?}); expected one",
            deb.path.display(),
            releases.len()
        );
    };
    let boot = work.path().join("boot");
    fs::copy(
        boot.join(format!("vmlinuz-{release}")),
        out.join(format!("vmlinuz-{release}")),
    )
    .with_context(|| format!("{} has no boot/vmlinuz-{release}", deb.path.display()))?;
    fs::copy(boot.join(format!("config-{release}")), out.join("config"))?;
    fs::write(out.join("release"), format!("{release}\n"))?;

    // The whole tree, indexed as the package's postinst would (depmod).
    let tree = out.join("modules/lib/modules");
    fs::create_dir_all(&tree)?;
    fs::rename(modules_root.join(release), tree.join(release))?;
    s.run(crate::cmd!(
        "depmod",
        "-b",
        out.join("modules"),
        "-F",
        boot.join(format!("System.map-{release}")),
        release
    ))?;
    let dir = tree.join(release);
    let dep_text = fs::read_to_string(dir.join("modules.dep"))?;
    let alias_text = fs::read_to_string(dir.join("modules.alias"))?;
    let rules = read_rules(ctx)?;
    let shipped = select(&rules, &parse_dep(&dep_text), RULES).map_err(anyhow::Error::msg)?;

    let mut a = Archive::new();
    let base = format!("lib/modules/{release}");
    for m in &shipped {
        let data = fs::read(dir.join(m))?;
        a.add(&format!("{base}/{m}"), 0o644, Kind::File(data));
    }
    a.add(
        &format!("{base}/modules.dep"),
        0o644,
        Kind::File(filter_dep(&dep_text, &shipped).into_bytes()),
    );
    a.add(
        &format!("{base}/modules.alias"),
        0o644,
        Kind::File(filter_alias(&alias_text, &shipped).into_bytes()),
    );
    let load: String = rules.load.iter().map(|n| format!("{n}\n")).collect();
    a.add(
        &format!("{base}/{LOAD_LIST}"),
        0o644,
        Kind::File(load.into_bytes()),
    );
    add_ntfs_3g(ctx, s, ntfs, &mut a)?;
    let image =
        crate::stages::initrd::compress_at(&a.write(ctx.epoch.global as u32), MODULES_ZSTD_LEVEL)?;
    fs::write(out.join("initrd-modules.img"), &image)?;
    crate::support::fsutil::normalise(&out.join("modules"), ctx.epoch.global)?;
    Ok(format!(
        "{release}; initramfs: {} modules, {}",
        shipped.len(),
        ui::fmt_size(image.len() as u64)
    ))
}

/// ntfs-3g and what it links, from their packages, into the archive.
fn add_ntfs_3g(ctx: &Ctx, s: &ui::Stage, debs: &[debs::Deb], a: &mut Archive) -> Result<()> {
    let work = ctx.cache.temp_dir("kernel-metal-ntfs")?;
    for d in debs {
        debs::extract(s, d, work.path())?;
    }
    for (from, to) in NTFS_FILES {
        // Follow the packages' own symlinks (libntfs-3g.so.89 -> .89.0.0).
        let path = work.path().join(from);
        let real = fs::canonicalize(&path)
            .with_context(|| format!("{from} is not in {:?}", NTFS_DEBS.map(|d| d.1)))?;
        ensure_within(&real, work.path())?;
        // The program and its loader are executed (the kernel opens the
        // ELF interpreter for execution too).
        let mode = if to.starts_with("bin/") || to.starts_with("lib64/") {
            0o755
        } else {
            0o644
        };
        a.add(to, mode, Kind::File(fs::read(&real)?));
    }
    Ok(())
}

fn ensure_within(path: &Path, root: &Path) -> Result<()> {
    let root = fs::canonicalize(root)?;
    if !path.starts_with(&root) {
        bail!("{} points outside the unpacked packages", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/scsi/scsi_mod.ko:\n\
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/cdrom/cdrom.ko:\n\
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:\n\
kernel/fs/isofs/isofs.ko:\n\
kernel/drivers/hid/hid-generic.ko: kernel/drivers/hid/hid.ko\n\
kernel/drivers/hid/hid.ko:\n";

    fn rules(text: &str) -> Rules {
        parse_rules(text, "r").unwrap()
    }

    #[test]
    fn names_and_rules_match_as_documented() {
        assert_eq!(
            module_name("kernel/drivers/hid/hid-generic.ko"),
            "hid_generic"
        );
        assert_eq!(module_name("nls_utf8"), "nls_utf8");
        assert!(rule_matches(
            "kernel/drivers/ata/",
            "kernel/drivers/ata/ahci.ko"
        ));
        assert!(!rule_matches(
            "kernel/drivers/ata/",
            "kernel/drivers/atari/x.ko"
        ));
        assert!(rule_matches(
            "kernel/drivers/scsi/*.ko",
            "kernel/drivers/scsi/sr_mod.ko"
        ));
        assert!(!rule_matches(
            "kernel/drivers/scsi/*.ko",
            "kernel/drivers/scsi/qla2xxx/qla2xxx.ko"
        ));
        assert!(rule_matches(
            "kernel/fs/isofs/isofs.ko",
            "kernel/fs/isofs/isofs.ko"
        ));
    }

    #[test]
    fn selection_takes_dependencies_and_leaves_the_rest() {
        let r = rules("load isofs\ninclude kernel/drivers/ata/ahci.ko\ninclude kernel/drivers/scsi/*.ko\ninclude kernel/fs/isofs/\ninclude kernel/drivers/hid/hid-generic.ko # keyboard\n");
        let shipped = select(&r, &parse_dep(DEP), "r").unwrap();
        // An exclude takes a module out; its dependency stays when another
        // chosen module needs it.
        let ex = rules("include kernel/drivers/ata/\ninclude kernel/drivers/scsi/\nexclude kernel/drivers/scsi/sr_mod.ko\n");
        let some = select(&ex, &parse_dep(DEP), "r").unwrap();
        assert!(!some.contains("kernel/drivers/scsi/sr_mod.ko"));
        assert!(some.contains("kernel/drivers/scsi/scsi_mod.ko"));
        let e = select(
            &rules("include kernel/drivers/ata/\nexclude kernel/fs/isofs/\n"),
            &parse_dep(DEP),
            "r",
        )
        .unwrap_err();
        assert!(e.contains("r:2") && e.contains("exclude"), "{e}");
        let want: BTreeSet<String> = [
            "kernel/drivers/ata/ahci.ko",
            "kernel/drivers/ata/libahci.ko",
            "kernel/drivers/ata/libata.ko",
            "kernel/drivers/scsi/scsi_mod.ko",
            "kernel/drivers/scsi/sr_mod.ko",
            "kernel/drivers/cdrom/cdrom.ko",
            "kernel/fs/isofs/isofs.ko",
            "kernel/drivers/hid/hid-generic.ko",
            "kernel/drivers/hid/hid.ko",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(shipped, want);
        let dep = filter_dep(DEP, &shipped);
        assert!(
            dep.contains("kernel/drivers/ata/ahci.ko: ") && !dep.contains("e1000e"),
            "{dep}"
        );
        let alias = filter_alias(
            "# Aliases extracted from modules themselves.\nalias pci:v*d*sv*sd*bc01sc06i01* ahci\nalias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\nalias hid:b*g0001v*p* hid_generic\n",
            &shipped,
        );
        assert_eq!(
            alias,
            "alias pci:v*d*sv*sd*bc01sc06i01* ahci\nalias hid:b*g0001v*p* hid_generic\n"
        );
    }

    #[test]
    fn bad_rules_name_their_line() {
        assert!(parse_rules("load\n", "f").unwrap_err().contains("f:1"));
        assert!(parse_rules("# c\nship x\n", "f")
            .unwrap_err()
            .contains("f:2"));
        let e = select(&rules("\ninclude kernel/fs/xfs/\n"), &parse_dep(DEP), "f").unwrap_err();
        assert!(e.contains("f:2") && e.contains("kernel/fs/xfs/"), "{e}");
        let e = select(
            &rules("load loop\ninclude kernel/fs/isofs/\n"),
            &parse_dep(DEP),
            "f",
        )
        .unwrap_err();
        assert!(e.contains("load loop"), "{e}");
    }

    #[test]
    fn the_shipped_rules_parse_and_load_the_medium_s_filesystems() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let r = parse_rules(&fs::read_to_string(root.join(RULES)).unwrap(), RULES).unwrap();
        for m in ["loop", "isofs", "squashfs", "overlay"] {
            assert!(r.load.iter().any(|l| l == m), "{m}");
        }
        // Whole subsystems, not hand-picked drivers (issue: sym53c8xx and
        // Fusion MPT were missing when only drivers/scsi/*.ko was taken).
        for dir in [
            "kernel/drivers/ata/",
            "kernel/drivers/scsi/",
            "kernel/drivers/message/fusion/",
            "kernel/drivers/hv/",
            "kernel/drivers/usb/host/",
            "kernel/drivers/usb/storage/",
            "kernel/drivers/mmc/",
            "kernel/drivers/nvme/",
            "kernel/drivers/firewire/",
        ] {
            assert!(r.include.iter().any(|(p, _)| p == dir), "{dir}");
        }
        // efivarfs is the live system's to mount (UEFI machines only): a
        // BIOS boot must not report it as a module that failed to load.
        assert!(!r.load.iter().any(|l| l == "efivarfs"));
    }
}
