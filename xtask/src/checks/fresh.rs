//! `cargo xtask check-fresh`: the README's commands on a pristine Debian 12.
//!
//! A minimal bookworm root (mmdebstrap, cached as stage `fresh-root`) holds
//! only what the README asks a maintainer to bring: the Rust toolchain (bound
//! in read-only from this host) with its linker (gcc, libc6-dev), and git for
//! the clone. A copy of the checkout goes into it at a deep path (well over
//! the 108 bytes of a Unix socket's path, as `~/src/github.com/<org>/<repo>`
//! can be), and the commands run the README's way: no FINNIX_* variable, the
//! cache at its default place below the checkout. Kernels built here are
//! seeded into that cache, so nothing is compiled twice. Inside, as root
//! with /proc, /sys, /dev and the host's network, each step runs on its own:
//!
//! 1. `cargo xtask test --unit-only`: installs the unit tests' host tools,
//!    then runs them;
//! 2. `cargo xtask dist`: installs every stage's tools and builds the
//!    release, the kernels taken from the seeded cache (a kernel that would
//!    have to be compiled is an error, not a 20-minute build);
//! 3. `sha256sum -c SHA256SUMS` on what it wrote, and that SHA256SUMS is
//!    this host's for the same release: an independent rebuild;
//! 4. `keygen`, `sign` and `verify-release` as docs/verifying-a-release.md
//!    shows them (gpg-agent's sockets are where a deep checkout broke them).
//!
//! A missing install step fails the step that needed it, named.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::stages::StageId;

use crate::checks::debian_root::{self, Recipe, SUITE};
use crate::stages::kernel::{self, Flavor};
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome, Stage};

const RECIPE: u32 = 1;
/// What a fresh machine has besides Debian's minimal base: the Rust
/// toolchain's linker and C library, git (the checkout is a clone), and the
/// CA certificates cargo needs to reach crates.io. The README names these.
const BROUGHT: &[&str] = &["ca-certificates", "git", "gcc", "libc6-dev"];
/// Where things sit inside the fresh root: the checkout deep enough that
/// any Unix socket made below it would exceed the 108-byte limit.
const CHECKOUT: &str = "/root/src/github.com/finnix-rescue-system-maintainers/finnix-build-system/worktrees/release-engineering-checkout";
const TOOLCHAIN: &str = "/opt/rust";
/// The README's default cache, below the checkout.
fn cache_dir() -> String {
    format!("{CHECKOUT}/target/finnix-cache")
}

/// The pristine root, cached: mmdebstrap --variant=minbase plus [`BROUGHT`]
/// (with apt's recommends, as on a fresh machine).
fn fresh_root(ctx: &Ctx) -> Result<PathBuf> {
    let recipe = Recipe {
        stage: StageId::FreshRoot,
        what: format!("a minimal Debian {SUITE} root (mmdebstrap) for check-fresh"),
        version: RECIPE,
        packages: BROUGHT.iter().map(|p| p.to_string()).collect(),
        recommends: true,
        files: vec![],
    };
    let (entry, _) = debian_root::build(ctx, &recipe, |_, _, _| Ok(String::new()))?;
    Ok(entry.join("tree"))
}

/// The active Rust toolchain's directory (`rustc --print sysroot`).
fn toolchain_dir() -> Result<PathBuf> {
    let out = crate::cmd!("rustc", "--print", "sysroot")
        .expr()
        .read()
        .context("cannot ask rustc for its sysroot: is the Rust toolchain installed?")?;
    let dir = fs::canonicalize(out.trim())
        .with_context(|| format!("rustc's sysroot {} does not exist", out.trim()))?;
    ensure!(
        dir.join("bin/cargo").is_file(),
        "the toolchain at {} has no cargo",
        dir.display()
    );
    Ok(dir)
}

/// One step run as root inside the fresh root, in its own mount namespace.
fn step(s: &Stage, root: &Path, toolchain: &Path, what: &str, script: &str) -> Result<()> {
    s.note(format!("--- step: {what}"));
    let setup = format!(
        "set -e
R='{root}'
mount --rbind /dev \"$R/dev\"
mount -t proc proc \"$R/proc\"
mount --rbind /sys \"$R/sys\"
mount -t tmpfs -o mode=1777 tmpfs \"$R/tmp\"
mount -t tmpfs -o mode=755 tmpfs \"$R/run\"
mkdir -p \"$R{TOOLCHAIN}\"
mount --bind '{toolchain}' \"$R{TOOLCHAIN}\"
mount -o remount,bind,ro \"$R{TOOLCHAIN}\"
cp -L /etc/resolv.conf \"$R/etc/resolv.conf\"
exec chroot \"$R\" /usr/bin/env -i HOME=/root USER=root LANG=C.UTF-8 \
  PATH={TOOLCHAIN}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  FINNIX_REQUIRE_CACHED_KERNELS=1 CARGO_TERM_COLOR=never \
  /bin/sh -c \"$0\"",
        root = root.display(),
        toolchain = toolchain.display(),
    );
    let inner = format!("set -e; cd {CHECKOUT}; {script}");
    // At a lower priority: its builds use every core, and the guests the
    // suite runs beside it are timing-bound (Xen's block hotplug scripts
    // have 40 s each; a dom0 under TCG starved by a build missed them).
    s.run(crate::cmd!("nice", "-n", "10", "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", setup, inner))
        .map_err(|_| anyhow::anyhow!("check-fresh: the step `{what}` failed on a pristine Debian root (its output ends the log)"))
}

/// `host_sums`: this host's SHA256SUMS of the same release (the default
/// profile's dist): the fresh root's dist, an independent rebuild with its
/// own tools, must equal it.
pub fn check(ctx: &Ctx, host_sums: Option<&Path>) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Fresh], &ctx.logs())?;
    let base = fresh_root(ctx)?;
    // The kernels this checkout builds (cached here), to seed the fresh cache.
    let um = kernel::build(ctx, Flavor::Um)?;
    let xen = kernel::build(ctx, Flavor::Xen)?;
    let toolchain = toolchain_dir()?;
    ui::stage(
        &ctx.logs(),
        "check-fresh",
        "the README's commands in a pristine Debian root, checkout at a deep path: test --unit-only, dist (kernels seeded), sign",
        |s| {
            let work = ctx.cache.temp_dir("check-fresh")?;
            let root = work.path().join("root");
            crate::support::fsutil::copy_tree(&base, &root)?;
            crate::checks::repro::copy_checkout(
                &ctx.root,
                &root.join(CHECKOUT.trim_start_matches('/')),
                false,
            )?;
            // The crates cargo would download (crates.io is reachable; a copy
            // is quicker and keeps the check off the network for them).
            let registry = ctx.env.cargo_home().join("registry");
            if registry.is_dir() {
                fs::create_dir_all(root.join("root/.cargo"))?;
                crate::support::fsutil::copy_tree(&registry, &root.join("root/.cargo/registry"))?;
            }
            for k in [&um, &xen] {
                let stage = k
                    .entry
                    .parent()
                    .and_then(|p| p.file_name())
                    .context("kernel entry")?;
                let dest = root
                    .join(cache_dir().trim_start_matches('/'))
                    .join(stage)
                    .join(k.entry.file_name().context("kernel entry")?);
                fs::create_dir_all(dest.parent().expect("parent"))?;
                crate::support::fsutil::copy_tree(&k.entry, &dest)?;
            }
            step(
                s,
                &root,
                &toolchain,
                "cargo xtask test --unit-only",
                "cargo xtask test --unit-only",
            )?;
            step(s, &root, &toolchain, "cargo xtask dist", "cargo xtask dist")?;
            step(
                s,
                &root,
                &toolchain,
                "sha256sum -c on the release it wrote",
                "cd dist && sha256sum --check --strict SHA256SUMS",
            )?;
            step(
                s,
                &root,
                &toolchain,
                "keygen, sign and verify-release (docs/verifying-a-release.md)",
                "cargo xtask keygen --private-dir /root/release-keys --public-dir /root/release-public
                 cargo xtask sign --ssh-key /root/release-keys/ssh --openpgp-key /root/release-keys/openpgp-secret.asc
                 cargo xtask verify-release dist --allowed-signers /root/release-public/allowed_signers --openpgp-key /root/release-public/release.asc
                 if [ -n \"$(ls -A /tmp/finnix-0 2>/dev/null)\" ]; then echo 'socket directories left in /tmp/finnix-0:'; ls -la /tmp/finnix-0; exit 1; fi",
            )?;
            let dist = root.join(CHECKOUT.trim_start_matches('/')).join("dist");
            let files = fs::read_dir(&dist)?.filter_map(|e| e.ok()).count();
            // An independent rebuild for free: the same SHA256SUMS as here.
            let rebuilt = match host_sums {
                Some(host) => compare_with_host(ctx, s, host, &dist, &root)?,
                None => String::new(),
            };
            Ok((
                (),
                Outcome::Passed,
                format!("unit tests, dist and signing passed at a {}-byte checkout path; {files} files in dist/{rebuilt}", CHECKOUT.len()),
            ))
        },
    )
}

/// An independent rebuild for free: the fresh root's SHA256SUMS must equal
/// this host's (`host`), unless Debian's archive moved between the two.
fn compare_with_host(
    ctx: &Ctx,
    s: &mut ui::Stage,
    host: &Path,
    dist: &Path,
    root: &Path,
) -> Result<String> {
    let (ours, theirs) = (
        fs::read_to_string(host)?,
        fs::read_to_string(dist.join("SHA256SUMS"))?,
    );
    let moved = archive_moved(host.parent().context("a release directory")?, dist)?;
    if !moved.is_empty() {
        // Debian's archive published other versions between
        // this host's build and the fresh one: not the same
        // inputs (a snapshot in the profile pins them).
        s.warn(format!(
            "the inputs differ between this host's build and the fresh root's (Debian's archive or host tools moved: {}): their releases are not compared",
            moved.join(", ")
        ));
        Ok(String::new())
    } else if ours != theirs {
        // Kept for diffoscope: the fresh root's release and
        // the stage outputs it was made of.
        let keep = ctx.cache.root.join("check-fresh-differs");
        crate::support::fsutil::remove_all(&keep)?;
        fs::create_dir_all(&keep)?;
        crate::support::fsutil::copy_tree(dist, &keep.join("dist"))?;
        let fresh_cache = root.join(cache_dir().trim_start_matches('/'));
        for stage in [
            "squashfs-standard",
            "iso-standard",
            "kernel-metal",
            "initrd",
            "rootfs-standard",
        ] {
            if fresh_cache.join(stage).is_dir() {
                crate::support::fsutil::copy_tree(&fresh_cache.join(stage), &keep.join(stage))?;
            }
        }
        let diff: Vec<String> = theirs
            .lines()
            .filter(|l| !ours.lines().any(|o| o == *l))
            .map(|l| format!("  fresh root: {l}"))
            .chain(
                ours.lines()
                    .filter(|l| !theirs.lines().any(|t| t == *l))
                    .map(|l| format!("  this host:  {l}")),
            )
            .collect();
        anyhow::bail!(
            "the pristine root's dist differs from this host's ({}); its release and stage outputs are kept in {} for diffoscope:\n{}",
            host.display(),
            keep.display(),
            diff.join("\n")
        );
    } else {
        Ok(format!(
            "; its SHA256SUMS equals this host's ({} files)",
            ours.lines().count()
        ))
    }
}

/// Packages whose versions differ between two releases' manifests.
fn archive_moved(a: &Path, b: &Path) -> Result<Vec<String>> {
    let manifest = |dir: &Path| -> Result<crate::release::checksums::Manifest> {
        let name = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".manifest.json"))
            .with_context(|| format!("{} holds no manifest", dir.display()))?;
        crate::release::checksums::Manifest::read(&dir.join(name))
    };
    let (ma, mb) = (manifest(a)?, manifest(b)?);
    let mut moved: Vec<String> = Vec::new();
    // The host tools whose versions the manifest records (xorriso, ...):
    // another version installed here than in the fresh root.
    for (tool, v) in &ma.tools {
        match mb.tools.iter().find(|(t, _)| t == tool) {
            Some((_, w)) if w == v => {}
            Some((_, w)) => moved.push(format!("host tool {tool} {v} -> {w}")),
            None => moved.push(format!("host tool {tool} {v} (not recorded there)")),
        }
    }
    for p in &ma.packages {
        match mb.packages.iter().find(|q| q.name == p.name) {
            Some(q) if q.version == p.version => {}
            Some(q) => moved.push(format!("{} {} -> {}", p.name, p.version, q.version)),
            None => moved.push(format!("{} {} (gone)", p.name, p.version)),
        }
    }
    for q in mb
        .packages
        .iter()
        .filter(|q| !ma.packages.iter().any(|p| p.name == q.name))
    {
        moved.push(format!("{} {} (new)", q.name, q.version));
    }
    Ok(moved)
}

impl crate::cli::CheckFresh {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        crate::stages::ensure_tools(
            ctx,
            &[crate::stages::StageId::KernelUm],
            &[crate::support::prereq::Tools::Fresh],
        )?;
        let profile = ctx.profile(None);
        let host = ctx.cache.root.join(format!("test-dist-{profile}"));
        crate::release::dist::dist(ctx, &profile, &host)?;
        check(ctx, Some(&host.join("SHA256SUMS")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fresh_checkout_is_deeper_than_a_socket_path_can_be() {
        assert!(super::CHECKOUT.len() > crate::support::fsutil::SUN_PATH_MAX);
    }
}
