//! Stage `rootfs`: the live system's root filesystem tree.
//!
//! Two steps, cached apart so that the expensive one does not depend on the
//! kernels: `rootfs-base-<profile>` (busybox, or a Debian tree made by
//! mmdebstrap from the profile's package list) and `rootfs-<profile>`, which
//! adds the live system's own parts (live/overlay/, the `finnix` tool, the
//! UML kernel and initrd under /usr/share/finnix-uml/) and normalises the
//! tree for reproducibility.

use fs_err as fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::stages::StageId;

use crate::stages::initrd::Initrd;
use crate::stages::kernel::metal::MetalKernel;
use crate::stages::kernel::Kernel;
use crate::support::cache::{cached_stage, Key, KeyBuilder};
use crate::support::config::{Base, Profile};
use crate::support::context::{package_version, tool_version, Ctx};
use crate::support::ui::{self, Stage};

const BASE_RECIPE: u32 = 4;
const RECIPE: u32 = 1;
const BUSYBOX: &str = "/bin/busybox";

/// dpkg path filters: no translations, documentation or translated manual
/// pages (the copyright files and the English manual pages stay: `man` is
/// part of the rescue toolset).
const DPKG_PATH_FILTERS: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-include=/usr/share/man/man[1-9]/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
];

/// A root filesystem tree in the cache: `<entry>/tree`, and the installed
/// packages with exact versions in `<entry>/packages.txt`.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub profile: String,
    pub entry: PathBuf,
    pub key: Key,
}

impl Rootfs {
    pub fn tree(&self) -> PathBuf {
        self.entry.join("tree")
    }

    pub fn packages(&self) -> PathBuf {
        self.entry.join("packages.txt")
    }
}

pub fn build(
    ctx: &Ctx,
    profile_name: &str,
    um: &Kernel,
    initrd: &Initrd,
    metal: &MetalKernel,
) -> Result<Rootfs> {
    let profile = Profile::load(&ctx.root, profile_name)?;
    let base = base(ctx, profile_name, &profile)?;
    build_on(ctx, profile_name, &profile, &base, um, initrd, metal)
}

/// The live root filesystem on a base tree already built by [`base`] from
/// the same `profile`.
pub fn build_on(
    ctx: &Ctx,
    profile_name: &str,
    profile: &Profile,
    base: &Rootfs,
    um: &Kernel,
    initrd: &Initrd,
    metal: &MetalKernel,
) -> Result<Rootfs> {
    let stage = StageId::Rootfs.dir(profile_name);
    ui::stage(
        &ctx.logs(),
        &stage,
        format!("assemble the {profile_name} live root filesystem"),
        |s| {
            let finnix = crate::support::rustbin::build(ctx, s, "finnix", "finnix")?;
            let mut k = KeyBuilder::new(StageId::Rootfs.key_label(), RECIPE);
            k.key("base", &base.key)
                .key("kernel-um", &um.key)
                .key("initrd", &initrd.key)
                .text("metal modules", profile.metal_modules.to_string())
                .file("finnix", &finnix)?
                .file(
                    "profile",
                    &ctx.root
                        .join(format!("configs/profiles/{profile_name}.toml")),
                )?;
            for overlay in &profile.overlays {
                k.tree(
                    &format!("overlay {overlay}"),
                    &ctx.root.join("live/overlay").join(overlay),
                )?;
            }
            if profile.metal_modules {
                // The module tree's own inputs: Debian's package and the
                // depmod that indexed it (not the initramfs's selection,
                // which the metal stage's key also covers).
                k.text("metal kernel", metal.package.spec())
                    .text("metal kernel sha256", &metal.package.sha256)
                    .text("kmod", package_version("kmod"));
            }
            let d = &ctx.config.distribution;
            k.text(
                "distribution",
                format!("{} {} {}", d.name, d.version, d.hostname),
            )
            .text("epoch", ctx.epoch.global.to_string());
            let key = k.finish();
            cached_stage(
                &ctx.cache,
                s,
                &stage,
                key,
                |entry, key| {
                    Ok(Rootfs {
                        profile: profile_name.into(),
                        entry,
                        key,
                    })
                },
                |_| String::new(),
                |s, tmp| {
                    let stats = assemble(
                        ctx,
                        s,
                        profile,
                        profile_name,
                        base,
                        &finnix,
                        um,
                        initrd,
                        metal,
                        tmp,
                    )?;
                    let count = fs::read_to_string(tmp.join("packages.txt"))?
                        .lines()
                        .count();
                    Ok(format!("{} entries, {count} packages", stats.entries))
                },
            )
        },
    )
}

/// The live root filesystem in `tmp/tree`: the base tree, the overlays, the
/// `finnix` program, the UML kernel and initrd, the release files, the
/// services; then normalised.
#[allow(clippy::too_many_arguments)]
fn assemble(
    ctx: &Ctx,
    s: &mut Stage,
    profile: &Profile,
    profile_name: &str,
    base: &Rootfs,
    finnix: &Path,
    um: &Kernel,
    initrd: &Initrd,
    metal: &MetalKernel,
    tmp: &Path,
) -> Result<crate::support::fsutil::NormaliseStats> {
    let d = &ctx.config.distribution;
    let tree = tmp.join("tree");
    s.note(format!("copying the base tree {}", base.tree().display()));
    crate::support::fsutil::copy_tree(&base.tree(), &tree)?;
    for overlay in &profile.overlays {
        copy_overlay(&ctx.root.join("live/overlay").join(overlay), &tree)?;
    }
    install(finnix, &tree.join("usr/bin/finnix"), 0o755)?;
    let uml_dir = tree.join("usr/share/finnix-uml");
    install(
        &um.image(),
        &uml_dir.join(um.image().file_name().expect("kernel file name")),
        0o755,
    )?;
    install(&initrd.image(), &uml_dir.join("initrd.img"), 0o644)?;
    if profile.metal_modules {
        // Debian's kernel boots the ISO on hardware: all its modules, for
        // udev and modprobe (the firmware comes from the package list).
        let modules = tree.join("usr/lib/modules");
        fs::create_dir_all(&modules)?;
        let dest = modules.join(&metal.release);
        s.note(format!(
            "copying {} to {}",
            metal.modules().display(),
            dest.display()
        ));
        crate::support::fsutil::copy_tree(&metal.modules(), &dest)?;
    }
    fs::write(tree.join("etc/hostname"), format!("{}\n", d.hostname))?;
    fs::write(
        tree.join("etc/finnix-release"),
        format!(
            "NAME=\"{}\"\nVERSION=\"{}\"\nPROFILE=\"{profile_name}\"\nKERNEL=\"{}\"\n",
            d.name, d.version, um.info.version
        ),
    )?;
    for dir in ["FINNIX", "dev", "proc", "sys", "run", "tmp", "mnt", "root"] {
        fs::create_dir_all(tree.join(dir))?;
    }
    fs::set_permissions(tree.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    if profile.base == Base::Debian {
        services(s, &tree, profile)?;
        fs::create_dir_all(tree.join("etc/inittab.d"))?;
        if fs::symlink_metadata(tree.join("etc/mtab")).is_err() {
            std::os::unix::fs::symlink("../proc/self/mounts", tree.join("etc/mtab"))?;
        }
    }
    fs::set_permissions(tree.join("root"), std::fs::Permissions::from_mode(0o700))?;
    fs::copy(base.packages(), tmp.join("packages.txt"))?;
    let stats = crate::support::fsutil::normalise(&tree, ctx.epoch.global)?;
    s.note(format!(
        "normalised: {} entries, {} mtimes clamped, {} owners reset to root",
        stats.entries, stats.clamped, stats.chowned
    ));
    Ok(stats)
}

/// The cache key of a profile's base tree (also printed by `cargo xtask plan`).
pub fn base_key(ctx: &Ctx, name: &str, profile: &Profile) -> Result<Key> {
    let mut k = KeyBuilder::new(StageId::RootfsBase.key_label(), BASE_RECIPE);
    k.text("profile", name)
        .text("epoch", ctx.epoch.global.to_string());
    match profile.base {
        Base::Busybox => {
            k.file("busybox", Path::new(BUSYBOX))?
                .text("busybox-static", package_version("busybox-static"));
        }
        Base::Debian => {
            let list = ctx
                .root
                .join("configs/profiles")
                .join(profile.packages.as_deref().expect("checked on load"));
            k.file("package list", &list)?
                .text("suite", profile.suite.as_deref().unwrap_or_default())
                .text("mirror", profile.mirror.as_deref().unwrap_or_default())
                .text("security mirror", &profile.security_mirror)
                .text("components", profile.components.join(" "))
                .text("snapshot", profile.snapshot.clone().unwrap_or_default())
                .text("snapshot url", &profile.snapshot_url)
                .text("mmdebstrap", tool_version("mmdebstrap"))
                .file("archive keyring", Path::new(&profile.keyring))?;
        }
    }
    Ok(k.finish())
}

/// The base tree of a profile: the part of the root filesystem that does not
/// depend on the kernels (a release pipeline builds it in its own job).
pub fn base(ctx: &Ctx, name: &str, profile: &Profile) -> Result<Rootfs> {
    let stage = StageId::RootfsBase.dir(name);
    let what = match profile.base {
        Base::Busybox => "Debian's static busybox tree".to_string(),
        Base::Debian => format!(
            "Debian {} tree with mmdebstrap",
            profile.suite.as_deref().unwrap_or("?")
        ),
    };
    ui::stage(&ctx.logs(), &stage, what, |s| {
        let key = base_key(ctx, name, profile)?;
        let built = cached_stage(
            &ctx.cache,
            s,
            &stage,
            key,
            |entry, key| {
                Ok(Rootfs {
                    profile: name.into(),
                    entry,
                    key,
                })
            },
            |_| String::new(),
            |s, tmp| {
                let tree = tmp.join("tree");
                let packages = match profile.base {
                    Base::Busybox => busybox_tree(s, &tree)?,
                    Base::Debian => debian_tree(ctx, s, profile, &tree)?,
                };
                fs::write(tmp.join("packages.txt"), &packages)?;
                Ok(format!("{} package(s)", packages.lines().count()))
            },
        )?;
        if profile.base == Base::Debian {
            let list = fs::read_to_string(built.0.packages())?;
            check_locked_packages(ctx, s, name, profile, &list)?;
        }
        Ok(built)
    })
}

/// The mini base: busybox, its applet links, a root account, and a dpkg
/// status that tells the truth (one package: busybox-static).
fn busybox_tree(s: &Stage, tree: &Path) -> Result<String> {
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "var/lib/dpkg",
        "var/log",
        "home",
    ] {
        fs::create_dir_all(tree.join(dir))?;
    }
    install(Path::new(BUSYBOX), &tree.join("bin/busybox"), 0o755)?;
    let applets = s.read(crate::cmd!(BUSYBOX, "--list-full"))?;
    for path in applets
        .lines()
        .map(str::trim)
        .filter(|p| p.contains('/') && *p != "bin/busybox")
    {
        let link = tree.join(path);
        fs::create_dir_all(link.parent().expect("applet dir"))?;
        std::os::unix::fs::symlink("/bin/busybox", &link)
            .with_context(|| format!("applet link {path}"))?;
    }
    fs::write(tree.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(tree.join("etc/group"), "root:x:0:\ntty:x:5:\n")?;
    fs::write(tree.join("etc/shadow"), "root:*:0:0:99999:7:::\n")?;
    fs::set_permissions(
        tree.join("etc/shadow"),
        std::fs::Permissions::from_mode(0o640),
    )?;
    let status = s.read(crate::cmd!("dpkg-query", "--status", "busybox-static"))?;
    fs::write(
        tree.join("var/lib/dpkg/status"),
        format!("{}\n", status.trim_end()),
    )?;
    Ok(format!(
        "busybox-static {}\n",
        package_version("busybox-static")
    ))
}

/// A package list: one name per line, `#` comments. Errors name the line.
pub fn parse_packages(text: &str, file: &str) -> Result<Vec<(String, usize)>, String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let valid = line.len() >= 2
            && line
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && line
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        if !valid {
            return Err(format!(
                "{file}:{}: {line:?} is not a Debian package name (one name per line)",
                i + 1
            ));
        }
        if let Some((_, first)) = out.iter().find(|(n, _)| n == line) {
            return Err(format!(
                "{file}:{}: {line} is already listed on line {first}",
                i + 1
            ));
        }
        out.push((line.to_string(), i + 1));
    }
    if out.is_empty() {
        return Err(format!("{file}: no packages listed"));
    }
    Ok(out)
}

/// The package apt could not find, from mmdebstrap's output.
pub fn unknown_package(log: &str) -> Option<String> {
    for line in log.lines() {
        for marker in ["Unable to locate package ", "E: Package '"] {
            if let Some(rest) = line.split(marker).nth(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '\'')
                    .collect();
                if !name.is_empty() {
                    return Some(name);
                }
            }
        }
    }
    None
}

/// Where a profile's packages come from: mmdebstrap's source lines and the
/// apt options they need. With a snapshot, both archives are the snapshot
/// archive's at that time (whose Release files are past their Valid-Until).
pub fn archive_sources(profile: &Profile) -> (Vec<String>, Vec<String>) {
    use crate::support::apt::{archive_lines, snapshot_url};
    let suite = profile
        .suite
        .as_deref()
        .unwrap_or(crate::support::config::DEBIAN_SUITE);
    match &profile.snapshot {
        Some(ts) => (
            archive_lines(
                "deb",
                &snapshot_url(&profile.snapshot_url, "debian", ts),
                &snapshot_url(&profile.snapshot_url, "debian-security", ts),
                suite,
                &profile.components,
            ),
            vec!["Acquire::Check-Valid-Until \"false\"".to_string()],
        ),
        None => (
            archive_lines(
                "deb",
                profile.mirror.as_deref().unwrap_or_default(),
                &profile.security_mirror,
                suite,
                &profile.components,
            ),
            vec![],
        ),
    }
}

/// Installed packages against the versions finnix.lock records for the
/// profile: one line per difference, naming the package.
pub fn package_drift(
    locked: &std::collections::BTreeMap<String, String>,
    built: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in locked {
        match built.get(name) {
            None => out.push(format!("{name}: locked {want}, not installed")),
            Some(got) if got != want => out.push(format!("{name}: locked {want}, installed {got}")),
            Some(_) => {}
        }
    }
    for (name, got) in built {
        if !locked.contains_key(name) {
            out.push(format!("{name}: installed {got}, not in the lock"));
        }
    }
    out
}

/// `name version arch` lines as name → version.
pub fn package_versions(list: &str) -> std::collections::BTreeMap<String, String> {
    list.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// What `--locked` says when a profile's packages differ from the lock:
/// every difference, each naming its package.
pub fn locked_refusal(
    profile_name: &str,
    drift: &[String],
    snapshot: Option<(String, String)>,
) -> String {
    format!(
        "the {profile_name} root filesystem's packages differ from finnix.lock{}:\n  {}\n--locked: refusing them (drop --locked to accept them and update the lock)",
        match snapshot {
            Some((was, now)) => format!(" (archive snapshot {was:?} in the lock, {now:?} now)"),
            None => String::new(),
        },
        drift.join("\n  ")
    )
}

/// Check a profile's packages against finnix.lock: `--locked` refuses a
/// difference (naming each package); otherwise it is reported and the lock
/// updated.
pub fn check_locked_packages(
    ctx: &Ctx,
    s: &mut Stage,
    profile_name: &str,
    profile: &Profile,
    list: &str,
) -> Result<()> {
    use crate::support::lock::Lock;
    let built = package_versions(list);
    Lock::update(&ctx.lock_path(), |lock| {
        let snapshot = profile.snapshot.clone().unwrap_or_default();
        let locked = lock.rootfs_packages.get(profile_name);
        let drift = locked.map(|l| package_drift(&l.versions, &built));
        let same_snapshot = locked.is_some_and(|l| l.snapshot == snapshot);
        match drift {
            Some(d) if d.is_empty() && same_snapshot => return Ok(()),
            Some(d) if ctx.locked => {
                let moved = (!same_snapshot).then(|| {
                    (
                        locked.map(|l| l.snapshot.clone()).unwrap_or_default(),
                        snapshot.clone(),
                    )
                });
                bail!("{}", locked_refusal(profile_name, &d, moved));
            }
            Some(d) => s.warn(format!(
                "the {profile_name} packages moved since finnix.lock ({} difference(s)), updating it:\n  {}",
                d.len(),
                d.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ")
            )),
            None if ctx.locked => bail!("--locked: finnix.lock records no packages for the {profile_name} profile (build once without --locked to record them)"),
            None => s.warn(format!("recording the {profile_name} packages ({}) in finnix.lock", built.len())),
        }
        lock.rootfs_packages.insert(
            profile_name.to_string(),
            crate::support::lock::LockedPackages {
                snapshot,
                versions: built,
            },
        );
        Ok(())
    })
}

/// A Debian tree: mmdebstrap (minbase, the profile's packages, apt's
/// signature checks on), then what is generated per machine is removed.
fn debian_tree(ctx: &Ctx, s: &Stage, profile: &Profile, tree: &Path) -> Result<String> {
    let rel = format!(
        "configs/profiles/{}",
        profile.packages.as_deref().expect("checked on load")
    );
    let text =
        fs::read_to_string(ctx.root.join(&rel)).with_context(|| format!("cannot read {rel}"))?;
    let packages = parse_packages(&text, &rel).map_err(anyhow::Error::msg)?;
    let suite = profile.suite.as_deref().expect("checked on load");
    let names: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
    let mut args: Vec<String> = vec![
        "--variant=minbase".into(),
        "--mode=root".into(),
        "--format=directory".into(),
        "--aptopt=Apt::Install-Recommends \"false\"".into(),
        // apt drops to the host's `_apt` user to download, but only when that
        // user can reach the target directory; the partial/ directories it
        // leaves are then owned by the host's _apt uid, else by root. So the
        // permissions of the build path, and the host's uid for _apt, would
        // reach the tree. No sandbox user: the outcome is the same everywhere
        // (the ownership is then set from the tree's own passwd, see
        // clean_debian_tree).
        "--aptopt=APT::Sandbox::User \"root\"".into(),
        format!("--keyring={}", profile.keyring),
        format!("--include={}", names.join(",")),
    ];
    args.extend(DPKG_PATH_FILTERS.iter().map(|f| format!("--dpkgopt={f}")));
    let (sources, aptopts) = archive_sources(profile);
    args.extend(aptopts.iter().map(|o| format!("--aptopt={o}")));
    args.push(suite.into());
    args.push(tree.display().to_string());
    args.extend(sources);
    let run = s.run(
        // The host's environment would reach the packages' maintainer
        // scripts: a PYTHONDONTWRITEBYTECODE in it decides whether Python's
        // imports write timestamp .pyc files before py3compile writes
        // hash-based ones (a release built in a clean root differed from
        // one built on a workstation by five .pyc files). Nothing of it
        // passes but the paths and proxies; PYTHONDONTWRITEBYTECODE is set,
        // so every .pyc is py3compile's, hash-based under SOURCE_DATE_EPOCH.
        crate::support::cmd::Cmd::argv("mmdebstrap", &args)
            .clean_env()
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("SOURCE_DATE_EPOCH", ctx.epoch.global.to_string())
            .env("LC_ALL", "C.UTF-8")
            .env("TZ", "UTC")
            .stdin_null(),
    );
    if let Err(e) = run {
        let log = fs::read_to_string(s.log_path()).unwrap_or_default();
        if let Some(name) = unknown_package(&log) {
            let line = packages
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, l)| *l)
                .unwrap_or(0);
            bail!("package {name} ({rel}:{line}) is not in Debian {suite} (misspelt, or not in the components {:?}): fix the package list", profile.components);
        }
        return Err(e);
    }
    clean_debian_tree(tree)?;
    let list = s.read(crate::cmd!(
        "dpkg-query",
        format!("--admindir={}", tree.join("var/lib/dpkg").display()),
        "-W",
        "-f",
        "${Package} ${Version} ${Architecture}\n"
    ))?;
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort();
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// Remove what a Debian tree holds that belongs to the machine that built it
/// or to one boot: ssh host keys (made when sshd first starts), logs, caches,
/// the build host's name and resolver.
fn clean_debian_tree(tree: &Path) -> Result<()> {
    // (A profile without openssh has no /etc/ssh.)
    let ssh = tree.join("etc/ssh");
    let ssh_entries: Vec<_> = if ssh.is_dir() {
        fs::read_dir(&ssh)?.collect()
    } else {
        Vec::new()
    };
    for entry in ssh_entries {
        let p = entry?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ssh_host_"))
        {
            fs::remove_file(&p)?;
        }
    }
    for rel in [
        // Identities packages generate at install time: each booted system
        // makes its own (finnix boot start), none is shipped.
        "etc/nvme/hostid",
        "etc/nvme/hostnqn",
        "var/lib/dbus/machine-id",
        "var/cache/ldconfig/aux-cache",
        "var/lib/urandom/random-seed",
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/diversions-old",
        "var/lib/dpkg/statoverride-old",
    ] {
        let p = tree.join(rel);
        if p.exists() {
            fs::remove_file(&p)?;
        }
    }
    // Logs: empty files only (the directories packages made stay).
    let logs = tree.join("var/log");
    for entry in walkdir::WalkDir::new(&logs)
        .min_depth(1)
        .into_iter()
        .filter(|_| logs.is_dir())
    {
        let entry = entry?;
        if entry.file_type().is_file() {
            fs::write(entry.path(), b"")?;
        }
    }
    // man-db's index (rebuilt by `mandb` on demand) is a gdbm file whose
    // layout depends on the build; the pages themselves are what matters.
    for dir in ["var/cache/apt", "var/lib/apt/lists", "var/cache/man"] {
        if !tree.join(dir).is_dir() {
            continue; // (no man-db in a small profile)
        }
        for entry in walkdir::WalkDir::new(tree.join(dir))
            .min_depth(1)
            .contents_first(true)
        {
            let entry = entry?;
            if entry.file_type().is_file() && entry.file_name() != "lock" {
                fs::remove_file(entry.path())?;
            }
        }
    }
    // apt's download directories belong to the tree's own _apt user, as a
    // Debian system's do (mode 0700), whatever happened on the build host.
    let apt_uid = fs::read_to_string(tree.join("etc/passwd"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"_apt")).then(|| f.get(2)?.parse::<u32>().ok())?
        });
    for dir in [
        "var/cache/apt/archives/partial",
        "var/lib/apt/lists/partial",
    ] {
        let p = tree.join(dir);
        if p.is_dir() {
            std::os::unix::fs::lchown(&p, Some(apt_uid.unwrap_or(0)), Some(0))
                .with_context(|| format!("cannot chown {}", p.display()))?;
            fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    fs::write(tree.join("etc/resolv.conf"), b"")?;
    fs::write(tree.join("etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\tfinnix\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n")?;
    if tree.join("etc/machine-id").exists() {
        fs::write(tree.join("etc/machine-id"), b"")?;
    }
    Ok(())
}

/// sysvinit services of a Debian tree, as the profile says (run in a chroot
/// with Debian's own update-rc.d).
fn services(s: &Stage, tree: &Path, profile: &Profile) -> Result<()> {
    let update_rc = |args: &[&str]| -> Result<()> {
        let mut all = vec![tree.to_str().expect("utf-8 path"), "/usr/sbin/update-rc.d"];
        all.extend(args);
        s.run(
            crate::support::cmd::Cmd::argv("chroot", &all)
                .clean_env()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("LC_ALL", "C"),
        )
    };
    for script in &profile.remove_init_scripts {
        update_rc(&["-f", script, "remove"])?;
        fs::remove_file(tree.join("etc/init.d").join(script))
            .with_context(|| format!("init script {script} to remove"))?;
    }
    for svc in &profile.disable_services {
        update_rc(&[svc, "disable"])?;
    }
    for svc in &profile.enable_services {
        update_rc(&[svc, "defaults"])?;
    }
    Ok(())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(to.parent().expect("has parent"))?;
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Copy an overlay folder over the tree: files keep their permission bits
/// (scripts are executable in git), owners become root.
fn copy_overlay(overlay: &Path, tree: &Path) -> Result<()> {
    if !overlay.is_dir() {
        bail!("overlay {} does not exist", overlay.display());
    }
    for entry in walkdir::WalkDir::new(overlay)
        .min_depth(1)
        .sort_by_file_name()
    {
        let entry = entry?;
        let rel = entry.path().strip_prefix(overlay).expect("below overlay");
        let dest = tree.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&dest)?;
        } else if ft.is_symlink() {
            let _ = fs::remove_file(&dest);
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &dest)?;
        } else {
            let _ = fs::remove_file(&dest);
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            install(
                entry.path(),
                &dest,
                if mode & 0o111 != 0 { 0o755 } else { 0o644 },
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_replaces_every_archive_and_drops_valid_until() {
        let mut p = Profile::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap(),
            "standard",
        )
        .unwrap();
        let (live, opts) = archive_sources(&p);
        assert!(
            live[0].starts_with("deb http://deb.debian.org/debian bookworm main")
                && opts.is_empty(),
            "{live:?}"
        );
        p.snapshot = Some("20261127T000000Z".into());
        let (snap, opts) = archive_sources(&p);
        assert_eq!(snap[0], "deb http://snapshot.debian.org/archive/debian/20261127T000000Z bookworm main non-free-firmware");
        assert_eq!(snap[2], "deb http://snapshot.debian.org/archive/debian-security/20261127T000000Z bookworm-security main non-free-firmware");
        assert_eq!(opts, ["Acquire::Check-Valid-Until \"false\""]);
    }

    #[test]
    fn package_drift_names_each_package() {
        let m = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let locked = m(&[("bash", "5.2.15-2+b7"), ("gone", "1")]);
        let built = m(&[("bash", "5.2.15-2+b8"), ("new", "2")]);
        let d = package_drift(&locked, &built);
        assert_eq!(
            d,
            [
                "bash: locked 5.2.15-2+b7, installed 5.2.15-2+b8",
                "gone: locked 1, not installed",
                "new: installed 2, not in the lock"
            ]
        );
        assert!(package_drift(&locked, &locked).is_empty());
        let msg = locked_refusal("standard", &d, None);
        assert!(
            msg.contains("bash: locked 5.2.15-2+b7") && msg.contains("--locked"),
            "{msg}"
        );
        assert_eq!(
            package_versions("bash 5.2 amd64\nzlib1g 1:1.2 amd64\n")["zlib1g"],
            "1:1.2"
        );
    }

    #[test]
    fn package_lists_parse_and_errors_name_the_line() {
        let list = parse_packages("# disks\nparted\ngdisk # GPT\n\nlibstdc++6\n", "p").unwrap();
        assert_eq!(
            list,
            [
                ("parted".to_string(), 2),
                ("gdisk".to_string(), 3),
                ("libstdc++6".to_string(), 5)
            ]
        );
        assert_eq!(
            parse_packages("parted\nParted\n", "p").unwrap_err(),
            "p:2: \"Parted\" is not a Debian package name (one name per line)"
        );
        assert_eq!(
            parse_packages("a1\nparted gdisk\n", "p").unwrap_err(),
            "p:2: \"parted gdisk\" is not a Debian package name (one name per line)"
        );
        assert_eq!(
            parse_packages("parted\nparted\n", "p").unwrap_err(),
            "p:2: parted is already listed on line 1"
        );
        assert!(parse_packages("# nothing\n", "p").is_err());
    }

    #[test]
    fn the_shipped_lists_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = fs::read_to_string(root.join("configs/profiles/standard.packages")).unwrap();
        let list = parse_packages(&text, "standard.packages").unwrap();
        for want in [
            "sysvinit-core",
            "parted",
            "gdisk",
            "fdisk",
            "e2fsprogs",
            "xfsprogs",
            "btrfs-progs",
            "dosfstools",
            "ntfs-3g",
            "lvm2",
            "mdadm",
            "gddrescue",
            "testdisk",
            "smartmontools",
            "nvme-cli",
            "hdparm",
            "iproute2",
            "openssh-server",
            "rsync",
            "curl",
            "wget",
            "tcpdump",
            "mtr-tiny",
            "nmap",
            "screen",
            "tmux",
            "uml-utilities",
            "dnsmasq-base",
            "iptables",
        ] {
            assert!(list.iter().any(|(n, _)| n == want), "standard lacks {want}");
        }
    }

    #[test]
    fn finds_the_unknown_package_in_apt_output() {
        assert_eq!(
            unknown_package("W: x\nE: Unable to locate package partedd\n").as_deref(),
            Some("partedd")
        );
        assert_eq!(
            unknown_package("E: Package 'foo' has no installation candidate\n").as_deref(),
            Some("foo")
        );
        assert_eq!(unknown_package("I: success\n"), None);
    }
}
