//! Stage `kernel`: patch, configure and build the UML and the domU kernel.
//!
//! The data lives in folders: `kernel-patches/{common,<flavor>}/series` and
//! `configs/kernel/{common,<flavor>}.config`. Per flavor:
//!
//! 1. the unpacked source (`source`), copied fresh;
//! 2. the common, then the flavor's patch series (`patches`);
//! 3. the base config (`make defconfig` / `x86_64_defconfig kvm_guest.config
//!    xen.config`), the fragments merged over it, `olddefconfig`, and every
//!    fragment line checked against the result (`kconfig`);
//! 4. `make` out of tree with reproducible settings.

pub mod kconfig;
pub mod metal;
pub mod patches;
pub mod source;

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::support::cache::{Key, KeyBuilder};
use crate::support::context::{tool_version, Ctx};
use crate::support::ui::{self, Outcome, Stage};

/// Bump when the way kernels are built changes.
/// 2: a kept workspace remakes what holds the build timestamp (recipe 1's
/// incremental builds could keep an older epoch's initramfs cpio).
const RECIPE: u32 = 2;
pub const BUILD_USER: &str = "finnix";
pub const BUILD_HOST: &str = "finnix";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// The User Mode Linux guest kernel.
    Um,
    /// The Xen domU kernel (PV and PVH guests; no bare-metal drivers).
    Xen,
}

/// What a kernel flavor is: one row of [`FLAVORS`]. Adding a flavor is a
/// row here, its fragment `configs/kernel/<name>.config`, its patch series
/// `kernel-patches/<name>/series` and its `StageId`.
pub struct FlavorSpec {
    pub flavor: Flavor,
    /// Names its fragment and patch series.
    pub name: &'static str,
    pub stage: crate::stages::StageId,
    pub describe: &'static str,
    /// `make ARCH=`.
    pub arch: &'static str,
    /// make targets that produce the base configuration.
    pub base_targets: &'static [&'static str],
    pub build_targets: &'static [&'static str],
    /// Between the version and `<localversion>` in the release.
    pub release_infix: &'static str,
    /// The files the build makes (relative to the build tree) and the names
    /// they get in the cache entry, with `@V` for the version and `@L` for
    /// the localversion. The first is the kernel image.
    pub outputs: &'static [(&'static str, &'static str)],
}

pub const FLAVORS: [FlavorSpec; 2] = [
    FlavorSpec {
        flavor: Flavor::Um,
        name: "um",
        stage: crate::stages::StageId::KernelUm,
        describe: "UML guest kernel",
        arch: "um",
        base_targets: &["defconfig"],
        build_targets: &["linux"],
        release_infix: "-um-",
        outputs: &[("linux", "linux-@V-um-@L")],
    },
    FlavorSpec {
        flavor: Flavor::Xen,
        name: "xen",
        stage: crate::stages::StageId::KernelXen,
        describe: "Xen domU kernel",
        arch: "x86_64",
        base_targets: &["x86_64_defconfig", "kvm_guest.config", "xen.config"],
        build_targets: &["bzImage", "vmlinux"],
        release_infix: "-",
        outputs: &[
            ("arch/x86/boot/bzImage", "vmlinuz-@V-@L"),
            ("vmlinux", "vmlinux-@V-@L"),
        ],
    },
];

impl Flavor {
    pub const ALL: [Flavor; 2] = [Flavor::Um, Flavor::Xen];

    pub fn spec(self) -> &'static FlavorSpec {
        FLAVORS
            .iter()
            .find(|f| f.flavor == self)
            .expect("every flavor has a row in FLAVORS")
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn stage(self) -> crate::stages::StageId {
        self.spec().stage
    }

    fn arch(self) -> &'static str {
        self.spec().arch
    }

    fn base_targets(self) -> &'static [&'static str] {
        self.spec().base_targets
    }

    fn build_targets(self) -> &'static [&'static str] {
        self.spec().build_targets
    }

    fn localversion(self, lv: &str) -> String {
        format!("{}{lv}", self.spec().release_infix)
    }

    fn describe(self) -> &'static str {
        self.spec().describe
    }
}

/// What a kernel entry records about itself (`kernel.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelInfo {
    /// Upstream version, `6.1.192`.
    pub version: String,
    /// `uname -r`, `6.1.192-um-finnix`.
    pub release: String,
    /// Output files, relative to the entry.
    pub files: Vec<String>,
}

/// A built kernel in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub entry: PathBuf,
    pub key: Key,
    pub info: KernelInfo,
}

impl Kernel {
    /// The UML binary `linux-<kver>-um-<lv>`, or the domU bzImage `vmlinuz-<kver>-<lv>`.
    pub fn image(&self) -> PathBuf {
        self.entry.join(&self.info.files[0])
    }

    /// The domU's uncompressed ELF (PVH direct boot).
    pub fn vmlinux(&self) -> Option<PathBuf> {
        self.info
            .files
            .iter()
            .find(|f| f.starts_with("vmlinux-"))
            .map(|f| self.entry.join(f))
    }
}

/// Output file names for a flavor.
pub fn output_names(flavor: Flavor, version: &str, lv: &str) -> Vec<String> {
    flavor
        .spec()
        .outputs
        .iter()
        .map(|(_, name)| name.replace("@V", version).replace("@L", lv))
        .collect()
}

/// The fragments that feed a flavor, in merge order.
fn fragment_files(root: &Path, flavor: Flavor) -> Vec<PathBuf> {
    ["common", flavor.name()]
        .iter()
        .map(|n| root.join("configs/kernel").join(format!("{n}.config")))
        .collect()
}

pub fn read_fragments(root: &Path, flavor: Flavor) -> Result<Vec<kconfig::Setting>> {
    let mut all = Vec::new();
    for path in fragment_files(root, flavor) {
        let text = fs::read_to_string(&path)
            .with_context(|| format!("cannot read config fragment {}", path.display()))?;
        let label = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        all.extend(kconfig::parse_fragment(&text, &label).map_err(anyhow::Error::msg)?);
    }
    Ok(all)
}

fn read_patches(root: &Path, flavor: Flavor) -> Result<Vec<patches::Patch>> {
    let dir = root.join("kernel-patches");
    let mut all = patches::read_series(&dir, "common")?;
    all.extend(patches::read_series(&dir, flavor.name())?);
    Ok(all)
}

/// The cache key of a flavor's build: everything that can change its bytes.
pub fn key(ctx: &Ctx, flavor: Flavor, source: &crate::support::lock::LockedSource) -> Result<Key> {
    let mut k = KeyBuilder::new(flavor.stage().key_label(), RECIPE);
    k.text("source sha256", &source.sha256)
        .text("source version", &source.version);
    for p in read_patches(&ctx.root, flavor)? {
        k.file(
            &format!("patch {}/{} -p{}", p.series, p.name, p.strip),
            &p.path,
        )?;
    }
    for f in fragment_files(&ctx.root, flavor) {
        let label = f
            .strip_prefix(&ctx.root)
            .unwrap_or(&f)
            .display()
            .to_string();
        k.file(&format!("fragment {label}"), &f)?;
    }
    k.text("base", flavor.base_targets().join(" "))
        .text(
            "localversion",
            flavor.localversion(&ctx.config.kernel.localversion),
        )
        .text(
            "timestamp",
            crate::support::date::kernel_timestamp(ctx.epoch.kernel),
        )
        .text("build user@host", format!("{BUILD_USER}@{BUILD_HOST}"));
    for tool in ["gcc", "ld", "make", "bison", "flex", "perl"] {
        k.text(&format!("tool {tool}"), tool_version(tool));
    }
    Ok(k.finish())
}

/// Build (or take from the cache) the kernel of `flavor`.
pub fn build(ctx: &Ctx, flavor: Flavor) -> Result<Kernel> {
    let lv = &ctx.config.kernel.localversion;
    let what = format!("patch, configure and build the {}", flavor.describe());
    ui::stage(&ctx.logs(), flavor.stage().name(), what, |stage| {
        // Cache hit without touching the network: the lock names the source.
        let locked_key = match source::locked(ctx)? {
            Some(id) => Some(key(ctx, flavor, &id)?),
            None => None,
        };
        if let Some(key) = &locked_key {
            if let Some(kernel) = load(ctx, flavor, key)? {
                let detail = ui::display_path(&kernel.image());
                return Ok((kernel, Outcome::Cached, detail));
            }
        }
        if ctx.env.require_cached_kernels {
            let inputs = match &locked_key {
                Some(k) => format!(
                    "key {}, inputs:\n{}",
                    k.hex,
                    k.inputs
                        .iter()
                        .map(|(l, v)| format!("  {l}\t{v}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                None => "finnix.lock names no kernel source".to_string(),
            };
            bail!(
                "the {} is not in the cache and FINNIX_REQUIRE_CACHED_KERNELS forbids compiling it ({inputs})",
                flavor.describe()
            );
        }
        let tree = source::fetch_and_unpack(ctx, stage)?;
        let key = key(ctx, flavor, &tree.id)?;
        if let Some(kernel) = load(ctx, flavor, &key)? {
            let detail = ui::display_path(&kernel.image());
            return Ok((kernel, Outcome::Cached, detail));
        }
        let kernel = compile(ctx, stage, flavor, &tree, &key, lv)?;
        let size = fs::metadata(kernel.image()).map(|m| m.len()).unwrap_or(0);
        let detail = format!(
            "{} ({})",
            ui::display_path(&kernel.image()),
            ui::fmt_size(size)
        );
        Ok((kernel, Outcome::Built, detail))
    })
}

fn load(ctx: &Ctx, flavor: Flavor, key: &Key) -> Result<Option<Kernel>> {
    let Some(entry) = ctx.cache.lookup(flavor.stage().name(), key) else {
        return Ok(None);
    };
    let text = fs::read_to_string(entry.join("kernel.toml"))?;
    let info: KernelInfo = toml::from_str(&text)
        .with_context(|| format!("corrupt cache entry {}", entry.display()))?;
    Ok(Some(Kernel {
        entry,
        key: key.clone(),
        info,
    }))
}

fn compile(
    ctx: &Ctx,
    stage: &mut Stage,
    flavor: Flavor,
    tree: &source::SourceTree,
    key: &Key,
    lv: &str,
) -> Result<Kernel> {
    let (out, info) = compile_into(
        ctx,
        stage,
        flavor,
        tree,
        lv,
        Workspace::Kept,
        &Tweaks::default(),
    )?;
    let entry = ctx.cache.commit(flavor.stage().name(), key, out)?;
    Ok(Kernel {
        entry,
        key: key.clone(),
        info,
    })
}

/// Where a flavour is patched and built: its kept workspace in the cache
/// (`kernel-work/<flavour>/`, reused by the next build, so that kbuild
/// recompiles only what a change touches: fixdep records which CONFIG_
/// symbols and headers each object depends on), or a throwaway one (the
/// cold build of `bench kernels`).
pub enum Workspace {
    Kept,
    Fresh,
}

/// What a build adds to the repository's inputs (`bench kernels`' "one
/// line changed": a fragment line, a patch).
#[derive(Default, Clone)]
pub struct Tweaks {
    pub fragment_lines: Vec<String>,
    pub patches: Vec<PathBuf>,
}

/// The kept workspace of a flavour, locked against a concurrent build. A
/// marker left by a build that did not finish (killed: an object file may
/// be half-written with a new mtime) makes the next build start over.
struct Kept {
    dir: PathBuf,
    _lock: fs::File,
}

const IN_PROGRESS: &str = "IN-PROGRESS";
/// Build outputs that hold KBUILD_BUILD_TIMESTAMP, which kbuild does not
/// track as their input (see `compile_into`).
const TIMESTAMPED: &[&str] = &["usr/initramfs_data.cpio", "kernel/kheaders_data.tar.xz"];
const PATCHED: &str = ".finnix-patched";

fn kept(ctx: &Ctx, stage: &Stage, flavor: Flavor) -> Result<Kept> {
    let dir = ctx.cache.root.join("kernel-work").join(flavor.name());
    fs::create_dir_all(&dir)?;
    let lock = fs::File::create(dir.join("lock"))?;
    use std::os::fd::AsRawFd;
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        stage.note("waiting for another build of this flavour to finish");
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("cannot lock {}", dir.join("lock").display());
        }
    }
    if dir.join(IN_PROGRESS).exists() {
        stage.note("the last build here did not finish: starting over");
        for d in ["src", "build"] {
            crate::support::fsutil::remove_all(&dir.join(d))?;
        }
        fs::remove_file(dir.join(IN_PROGRESS))?;
    }
    Ok(Kept { dir, _lock: lock })
}

/// The patches' identity: the source and every patch's bytes, in order.
fn patch_set_id(tree: &source::SourceTree, patches: &[PathBuf]) -> Result<String> {
    let mut text = format!("source {}\n", tree.id.sha256);
    for p in patches {
        text.push_str(&format!(
            "{} {}\n",
            p.display(),
            crate::support::cache::sha256_file(p)?
        ));
    }
    Ok(crate::support::cache::sha256_hex(text.as_bytes()))
}

/// `src` made the pristine tree with `patches` applied. In a kept
/// workspace already patched the same way, nothing is touched; otherwise
/// rsync brings back the pristine files by content (only files a patch had
/// changed are rewritten, with a new mtime, so kbuild rebuilds them), then
/// the patches are applied.
fn patched_source(
    stage: &mut Stage,
    tree: &source::SourceTree,
    patches: &[patches::Patch],
    extra: &[PathBuf],
    src: &Path,
) -> Result<()> {
    let mut all: Vec<PathBuf> = patches.iter().map(|p| p.path.clone()).collect();
    all.extend(extra.iter().cloned());
    let id = patch_set_id(tree, &all)?;
    let marker = src.join(PATCHED);
    if fs::read_to_string(&marker).ok().as_deref() == Some(id.as_str()) {
        stage.note(format!("{} is patched as wanted", src.display()));
        return Ok(());
    }
    if src.is_dir() {
        stage.run(crate::cmd!(
            "rsync",
            "--recursive",
            "--links",
            "--checksum",
            "--delete",
            format!("{}/", tree.tree().display()),
            format!("{}/", src.display())
        ))?;
    } else {
        stage.note(format!(
            "copying {} to {}",
            tree.tree().display(),
            src.display()
        ));
        crate::support::fsutil::copy_tree(&tree.tree(), src)?;
    }
    let mut list: Vec<patches::Patch> = patches.to_vec();
    for (i, p) in extra.iter().enumerate() {
        list.push(patches::Patch {
            path: p.clone(),
            name: p.display().to_string(),
            strip: 1,
            series: "(bench)".into(),
            line: i + 1,
        });
    }
    patches::apply(src, &list, |cmd| {
        stage.note(format!("$ {}", cmd.line()));
        let o = cmd
            .expr()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        stage.note(&text);
        Ok((o.status.success(), text))
    })?;
    stage.note(format!("applied {} patch(es)", list.len()));
    fs::write(&marker, &id)?;
    Ok(())
}

/// Patch, configure and build (in the flavour's kept workspace, or a fresh
/// one); the outputs in a new temporary directory (not yet a cache entry).
pub fn compile_into(
    ctx: &Ctx,
    stage: &mut Stage,
    flavor: Flavor,
    tree: &source::SourceTree,
    lv: &str,
    workspace: Workspace,
    tweaks: &Tweaks,
) -> Result<(crate::support::fsutil::TempDir, KernelInfo)> {
    crate::support::context::check_build_path(&ctx.cache.root)?;
    let fresh;
    let kept_ws;
    let dir = match workspace {
        Workspace::Fresh => {
            fresh = ctx.cache.temp_dir(flavor.stage().name())?;
            fresh.path().to_path_buf()
        }
        Workspace::Kept => {
            kept_ws = kept(ctx, stage, flavor)?;
            kept_ws.dir.clone()
        }
    };
    let src = dir.join("src");
    let build = dir.join("build");
    fs::write(dir.join(IN_PROGRESS), "")?;

    // 1. The pristine tree, patched.
    let patches = read_patches(&ctx.root, flavor)?;
    patched_source(stage, tree, &patches, &tweaks.patches, &src)?;

    // 2. Configure (the base, the fragments, olddefconfig; checked).
    let make = |args: &[&str]| make_cmd(ctx, &src, &build, flavor, lv, args);
    configure(ctx, stage, flavor, &make, &build, &tweaks.fragment_lines)?;

    // 3. Build. kbuild makes a few files from KBUILD_BUILD_TIMESTAMP
    // without tracking it (the built-in initramfs's cpio holds it as every
    // entry's mtime): a kept workspace built at another epoch would keep
    // the old one. They are made again on every build (seconds).
    for made in TIMESTAMPED {
        let path = build.join(made);
        if path.exists() {
            fs::remove_file(&path)?;
        }
    }
    let jobs = format!("-j{}", ctx.jobs);
    let mut args = vec![jobs.as_str()];
    args.extend(flavor.build_targets());
    stage.run(make(&args))?;
    let release = stage
        .read(make(&["-s", "kernelrelease"]))?
        .trim()
        .to_string();
    let version = tree.id.version.clone();

    // 4. Outputs into a new directory.
    let out = ctx
        .cache
        .temp_dir(&format!("{}-out", flavor.stage().name()))?;
    let names = output_names(flavor, &version, lv);
    let sources: Vec<PathBuf> = flavor
        .spec()
        .outputs
        .iter()
        .map(|(file, _)| build.join(file))
        .collect();
    for (from, name) in sources.iter().zip(&names) {
        fs::copy(from, out.path().join(name))
            .with_context(|| format!("build did not produce {}", from.display()))?;
    }
    fs::copy(build.join(".config"), out.path().join("config"))?;
    let info = KernelInfo {
        version,
        release,
        files: names,
    };
    fs::write(out.path().join("kernel.toml"), toml::to_string(&info)?)?;
    fs::remove_file(dir.join(IN_PROGRESS))?;
    Ok((out, info))
}

/// What `bench kernels` measures of a flavour: a cold build in a fresh
/// workspace, then in a kept one after one fragment line changed and after
/// a small patch, and the check that the fast way gives the clean build's
/// bytes.
pub struct BenchFigures {
    pub cold: std::time::Duration,
    pub fragment_line: std::time::Duration,
    pub patch: std::time::Duration,
}

/// `cargo xtask bench kernels` for one flavour: (1) a cold build in a fresh
/// workspace, timed; (2) the flavour's kept workspace brought to the
/// repository's state (a build, not timed); (3) one fragment line changed,
/// rebuilt there, timed; (4) a one-line patch instead, rebuilt, timed; (5)
/// both undone and rebuilt: the outputs must equal the cold build's, byte
/// for byte. The cache entries are left alone.
pub fn bench(ctx: &Ctx, flavor: Flavor, line: &str, patch: &Path) -> Result<BenchFigures> {
    let lv = ctx.config.kernel.localversion.clone();
    ui::stage(
        &ctx.logs(),
        &format!("bench-{}", flavor.stage().name()),
        format!(
            "{}: cold, one fragment line, one patch (bench)",
            flavor.describe()
        ),
        |stage| {
            let tree = source::fetch_and_unpack(ctx, stage)?;
            let none = Tweaks::default();
            let t = std::time::Instant::now();
            let (cold, _) = compile_into(ctx, stage, flavor, &tree, &lv, Workspace::Fresh, &none)?;
            let cold_secs = t.elapsed();
            compile_into(ctx, stage, flavor, &tree, &lv, Workspace::Kept, &none)?;
            let line_tweak = Tweaks {
                fragment_lines: vec![line.to_string()],
                patches: vec![],
            };
            let t = std::time::Instant::now();
            compile_into(ctx, stage, flavor, &tree, &lv, Workspace::Kept, &line_tweak)?;
            let line_secs = t.elapsed();
            let patch_tweak = Tweaks {
                fragment_lines: vec![],
                patches: vec![patch.to_path_buf()],
            };
            let t = std::time::Instant::now();
            compile_into(
                ctx,
                stage,
                flavor,
                &tree,
                &lv,
                Workspace::Kept,
                &patch_tweak,
            )?;
            let patch_secs = t.elapsed();
            let (back, info) =
                compile_into(ctx, stage, flavor, &tree, &lv, Workspace::Kept, &none)?;
            for f in info.files.iter().map(String::as_str).chain(["config"]) {
                let (a, b) = (
                    crate::support::cache::sha256_file(&cold.path().join(f))?,
                    crate::support::cache::sha256_file(&back.path().join(f))?,
                );
                if a != b {
                    // Both kept for diffoscope.
                    let keep = ctx
                        .cache
                        .root
                        .join(format!("bench-{}-differs", flavor.name()));
                    crate::support::fsutil::remove_all(&keep)?;
                    fs::create_dir_all(&keep)?;
                    crate::support::fsutil::copy_tree(cold.path(), &keep.join("clean"))?;
                    crate::support::fsutil::copy_tree(back.path(), &keep.join("kept"))?;
                    bail!(
                        "{f}: the kept workspace's build differs from a clean build ({b} vs {a}); both are in {}",
                        keep.display()
                    );
                }
            }
            let figures = BenchFigures {
                cold: cold_secs,
                fragment_line: line_secs,
                patch: patch_secs,
            };
            let detail = format!(
                "cold {}, one fragment line {}, one patch {}; the kept workspace's build equals the clean one",
                ui::fmt_duration(figures.cold),
                ui::fmt_duration(figures.fragment_line),
                ui::fmt_duration(figures.patch)
            );
            Ok((figures, Outcome::Built, detail))
        },
    )
}

/// `make` in the kernel tree, out of tree, with every reproducibility
/// setting (time stamp, user, host, version counter, locale, time zone).
fn make_cmd(
    ctx: &Ctx,
    src: &Path,
    build: &Path,
    flavor: Flavor,
    lv: &str,
    args: &[&str],
) -> crate::support::cmd::Cmd {
    let mut all: Vec<String> = vec![
        format!("-C{}", src.display()),
        format!("O={}", build.display()),
        format!("ARCH={}", flavor.arch()),
        format!("LOCALVERSION={}", flavor.localversion(lv)),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    // Only the host's paths and proxies: a KCFLAGS, CROSS_COMPILE,
    // LOCALVERSION or an outer make's MAKEFLAGS would change the kernel.
    crate::support::cmd::Cmd::argv("make", all)
        .clean_env()
        .env(
            "KBUILD_BUILD_TIMESTAMP",
            crate::support::date::kernel_timestamp(ctx.epoch.kernel),
        )
        .env("KBUILD_BUILD_USER", BUILD_USER)
        .env("KBUILD_BUILD_HOST", BUILD_HOST)
        .env("KBUILD_BUILD_VERSION", "1")
        .env("SOURCE_DATE_EPOCH", ctx.epoch.kernel.to_string())
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
}

/// The configuration: the base targets, the fragments merged over it,
/// olddefconfig, and every fragment line checked against the result.
fn configure(
    ctx: &Ctx,
    stage: &mut Stage,
    flavor: Flavor,
    make: &dyn Fn(&[&str]) -> crate::support::cmd::Cmd,
    build: &Path,
    extra_lines: &[String],
) -> Result<()> {
    stage.run(make(flavor.base_targets()))?;
    let mut fragments = read_fragments(&ctx.root, flavor)?;
    fragments.extend(
        kconfig::parse_fragment(&extra_lines.join("\n"), "(bench)").map_err(anyhow::Error::msg)?,
    );
    let dot_config = build.join(".config");
    let base = fs::read_to_string(&dot_config)?;
    fs::write(&dot_config, kconfig::merge(&base, &fragments))?;
    stage.run(make(&["olddefconfig"]))?;
    let final_config = fs::read_to_string(&dot_config)?;
    let mismatches = kconfig::check(&kconfig::parse_config(&final_config), &fragments);
    if !mismatches.is_empty() {
        let list: Vec<String> = mismatches.iter().map(|m| format!("  {m}")).collect();
        bail!(
            "{} option(s) of the config fragments do not hold in the final .config of the {} kernel:\n{}\nfix the fragment (a missing dependency, or a value Kconfig does not allow)",
            mismatches.len(),
            flavor.name(),
            list.join("\n")
        );
    }
    Ok(())
}

impl crate::cli::FlavorArg {
    pub fn flavors(self) -> Vec<Flavor> {
        match self {
            crate::cli::FlavorArg::Um => vec![Flavor::Um],
            crate::cli::FlavorArg::Xen => vec![Flavor::Xen],
            crate::cli::FlavorArg::All => Flavor::ALL.to_vec(),
        }
    }
}

impl crate::cli::Kernel {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        crate::stages::ensure_tools(ctx, &[crate::stages::StageId::KernelUm], &[])?;
        for f in self.flavor.flavors() {
            build(ctx, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flavor_has_one_row_and_names_its_outputs_as_the_spec_does() {
        for f in Flavor::ALL {
            assert_eq!(FLAVORS.iter().filter(|s| s.flavor == f).count(), 1);
        }
        // The spec's file names: linux-*-um-finnix for UML.
        assert_eq!(
            output_names(Flavor::Um, "6.1.192", "finnix"),
            ["linux-6.1.192-um-finnix"]
        );
        assert_eq!(Flavor::Xen.localversion("finnix"), "-finnix");
    }

    #[test]
    fn shipped_fragments_parse_and_ask_for_what_the_live_system_needs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for flavor in Flavor::ALL {
            let f = read_fragments(root, flavor).unwrap();
            let want = |sym: &str, value: &str| {
                assert!(
                    f.iter()
                        .any(|s| s.symbol == sym && s.value == kconfig::Value::Set(value.into())),
                    "{} lacks {sym}={value}",
                    flavor.name()
                )
            };
            for sym in [
                "CONFIG_SQUASHFS",
                "CONFIG_SQUASHFS_XZ",
                "CONFIG_SQUASHFS_ZSTD",
                "CONFIG_SQUASHFS_ZLIB",
                "CONFIG_OVERLAY_FS",
                "CONFIG_ISO9660_FS",
                "CONFIG_JOLIET",
                "CONFIG_BLK_DEV_LOOP",
                "CONFIG_TMPFS_XATTR",
                "CONFIG_DEVTMPFS",
                "CONFIG_BLK_DEV_INITRD",
                "CONFIG_RD_GZIP",
                "CONFIG_RD_XZ",
                "CONFIG_RD_ZSTD",
                "CONFIG_EXT4_FS",
            ] {
                want(sym, "y");
            }
        }
        let um = read_fragments(root, Flavor::Um).unwrap();
        for sym in [
            "CONFIG_BLK_DEV_UBD",
            "CONFIG_HOSTFS",
            "CONFIG_MCONSOLE",
            "CONFIG_UML_NET_TUNTAP",
            "CONFIG_UML_NET_VECTOR",
        ] {
            assert!(um.iter().any(|s| s.symbol == sym), "um lacks {sym}");
        }
        let xen = read_fragments(root, Flavor::Xen).unwrap();
        for sym in [
            "CONFIG_XEN_PV",
            "CONFIG_XEN_PVH",
            "CONFIG_XEN_BLKDEV_FRONTEND",
            "CONFIG_XEN_NETDEV_FRONTEND",
            "CONFIG_HVC_XEN",
            "CONFIG_VIRTIO_BLK",
        ] {
            assert!(
                xen.iter()
                    .any(|s| s.symbol == sym && s.value == kconfig::Value::Set("y".into())),
                "xen lacks {sym}"
            );
        }
        // A guest, not a driver domain, and lean: no bare-metal drivers.
        for sym in [
            "CONFIG_XEN_BLKDEV_BACKEND",
            "CONFIG_ATA",
            "CONFIG_SCSI",
            "CONFIG_USB_SUPPORT",
            "CONFIG_DRM",
            "CONFIG_SOUND",
            "CONFIG_WLAN",
            "CONFIG_ETHERNET",
        ] {
            assert!(
                xen.iter()
                    .any(|s| s.symbol == sym && s.value == kconfig::Value::NotSet),
                "xen does not switch off {sym}"
            );
        }
    }
}
