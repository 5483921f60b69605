//! `cargo xtask bench squashfs`: our backhand writer against squashfs-tools'
//! mksquashfs on the same tree, same compressor, same block size, same
//! number of threads. Each run is a child process, so its wall time and peak
//! memory (VmHWM) are its own.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use crate::stages::squashfs::Options;
use crate::support::ui::fmt_size;

pub struct Sample {
    pub secs: f64,
    pub bytes: u64,
    pub peak_rss_kib: u64,
}

/// Run a command, returning its wall time and peak resident memory (KiB).
///
/// The peak is the child's VmHWM, read from /proc while it runs. Not
/// wait4's ru_maxrss: exec carries the high-water mark of the forked copy
/// of this process into the child's, so a bench that had built a root
/// filesystem first reported 236 MiB for a writer that peaks at 38.
fn measure(mut cmd: Command) -> Result<(f64, u64)> {
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        // A zombie's status has no VmHWM line: the last reading stands.
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|text| vm_hwm_kib(&text))
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        status.success(),
        "{:?} failed ({status})",
        cmd.get_program()
    );
    Ok((secs, peak))
}

/// The `VmHWM:` line of a /proc/PID/status, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Both writers, `runs` times each (alternating), on `tree`.
pub fn squashfs(
    tree: &Path,
    work: &Path,
    opts: Options,
    epoch: i64,
    threads: usize,
    runs: usize,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let exe = crate::support::context::this_program();
    let ours_out = work.join("backhand.sqfs");
    let theirs_out = work.join("mksquashfs.sqfs");
    let (mut ours, mut theirs) = (vec![], vec![]);
    for run in 0..runs {
        let mut order = [true, false];
        if run % 2 == 1 {
            order.reverse();
        }
        for is_ours in order {
            if is_ours {
                let _ = std::fs::remove_file(&ours_out);
                let mut c = Command::new(&exe);
                c.args([
                    "write-squashfs",
                    "--compression",
                    opts.compression.name(),
                    "--block-size",
                ])
                .arg(opts.block_size.to_string())
                .arg("--epoch")
                .arg(epoch.to_string())
                .arg("--threads")
                .arg(threads.to_string())
                .arg(tree)
                .arg(&ours_out);
                let (secs, rss) = measure(c)?;
                ours.push(Sample {
                    secs,
                    bytes: std::fs::metadata(&ours_out)?.len(),
                    peak_rss_kib: rss,
                });
            } else {
                let _ = std::fs::remove_file(&theirs_out);
                let mut c = Command::new("mksquashfs");
                c.arg(tree)
                    .arg(&theirs_out)
                    .args(["-comp", opts.compression.name(), "-b"])
                    .arg(opts.block_size.to_string())
                    .args(["-processors"])
                    .arg(threads.to_string())
                    .args(["-no-xattrs", "-noappend", "-no-progress", "-quiet"])
                    .env("SOURCE_DATE_EPOCH", epoch.to_string());
                let (secs, rss) = measure(c)?;
                theirs.push(Sample {
                    secs,
                    bytes: std::fs::metadata(&theirs_out)?.len(),
                    peak_rss_kib: rss,
                });
            }
        }
    }
    Ok((ours, theirs))
}

/// The comparison table, medians over the runs.
pub fn report(ours: &[Sample], theirs: &[Sample]) -> String {
    let t = |s: &[Sample]| median(s.iter().map(|x| x.secs).collect());
    let m = |s: &[Sample]| median(s.iter().map(|x| x.peak_rss_kib as f64).collect());
    let b = |s: &[Sample]| s[0].bytes as f64;
    let row = |name: &str, s: &[Sample]| {
        let times: Vec<String> = s.iter().map(|x| format!("{:.1}", x.secs)).collect();
        format!(
            "{name:<20} {:>8.1} s {:>12} {:>12}   runs: {}\n",
            t(s),
            fmt_size(b(s) as u64),
            fmt_size(m(s) as u64 * 1024),
            times.join(" ")
        )
    };
    let mut out = format!(
        "{:<20} {:>10} {:>12} {:>12}\n",
        "writer", "median", "size", "peak memory"
    );
    out.push_str(&row("backhand (xtask)", ours));
    out.push_str(&row("mksquashfs", theirs));
    out.push_str(&format!(
        "ratios backhand/mksquashfs: time {:.2}x, size {:.4}x ({:+.2}%), peak memory {:.2}x\n",
        t(ours) / t(theirs),
        b(ours) / b(theirs),
        (b(ours) / b(theirs) - 1.0) * 100.0,
        m(ours) / m(theirs)
    ));
    out
}

impl crate::cli::Bench {
    pub fn run(self, ctx: &crate::support::context::Ctx) -> Result<()> {
        use crate::pipeline::{default_squashfs, LIVE_STAGES};
        use crate::stages::ensure_tools;
        use crate::stages::{initrd, kernel, rootfs};
        match self.what {
            crate::cli::BenchWhat::Boot => return boot(ctx, self.profile, self.runs),
            crate::cli::BenchWhat::Packages => return packages(ctx, self.profile),
            crate::cli::BenchWhat::Kernels => return kernels(ctx, self.flavor.flavors()),
            crate::cli::BenchWhat::Zram => return zram(ctx),
            crate::cli::BenchWhat::Squashfs => {}
        }
        ensure_tools(ctx, LIVE_STAGES, &[])?;
        let profile = ctx.profile(self.profile);
        let um = kernel::build(ctx, kernel::Flavor::Um)?;
        let initrd = initrd::build(ctx)?;
        let metal = kernel::metal::build(ctx)?;
        let rootfs = rootfs::build(ctx, &profile, &um, &initrd, &metal)?;
        let opts = default_squashfs(ctx);
        let work = ctx.cache.temp_dir("bench-squashfs")?;
        let size = crate::cmd!("du", "-sb", rootfs.tree()).expr().read()?;
        eprintln!(
            "==> bench squashfs: {} tree ({} bytes), {}, {} KiB blocks, {} threads, {} run(s) each",
            profile,
            size.split_whitespace().next().unwrap_or("?"),
            opts.compression.name(),
            opts.block_size / 1024,
            ctx.jobs,
            self.runs
        );
        let (ours, theirs) = squashfs(
            &rootfs.tree(),
            work.path(),
            opts,
            ctx.epoch.global,
            ctx.jobs,
            self.runs,
        )?;
        print!("{}", report(&ours, &theirs));
        Ok(())
    }
}

/// `bench boot`: each profile's release booted in UML as the spec's command
/// line has it (target uml-iso), `runs` times; the median time from start to
/// the ready banner and to the root prompt.
/// `bench kernels`: for each compiled kernel, a cold build (a fresh
/// workspace: patch, configure, make -jN from the unpacked source), then in
/// its kept workspace a rebuild after one fragment line changed
/// (configs/bench/kernel-one-line.config) and after a one-line patch
/// (configs/bench/kernel-one-line.patch); both undone, the kept build must
/// equal the cold one byte for byte. A table.
fn kernels(
    ctx: &crate::support::context::Ctx,
    flavors: Vec<crate::stages::kernel::Flavor>,
) -> Result<()> {
    use crate::stages::kernel;
    crate::stages::ensure_tools(ctx, &[crate::stages::StageId::KernelUm], &[])?;
    let line_file = ctx.root.join("configs/bench/kernel-one-line.config");
    let line = fs_err::read_to_string(&line_file)?
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("CONFIG_"))
        .with_context(|| format!("{} holds no CONFIG_ line", line_file.display()))?
        .to_string();
    let patch = ctx.root.join("configs/bench/kernel-one-line.patch");
    let mut rows = Vec::new();
    for flavor in flavors {
        rows.push((flavor, kernel::bench(ctx, flavor, &line, &patch)?));
    }
    println!(
        "{:<8} {:>10} {:>14} {:>12}   (make -j{}; {line}; {})",
        "kernel",
        "cold",
        "one line",
        "one patch",
        ctx.jobs,
        ui_path(&patch)
    );
    let fmt = crate::support::ui::fmt_duration;
    let mut total = 0.0;
    for (flavor, f) in &rows {
        total += f.cold.as_secs_f64();
        println!(
            "{:<8} {:>10} {:>14} {:>12}   {}",
            flavor.name(),
            fmt(f.cold),
            fmt(f.fragment_line),
            fmt(f.patch),
            flavor.spec().describe
        );
    }
    println!(
        "{:<8} {:>10}   (the kept workspace's builds equal the clean ones, byte for byte)",
        "all",
        fmt(std::time::Duration::from_secs_f64(total))
    );
    Ok(())
}

fn ui_path(p: &std::path::Path) -> String {
    crate::support::ui::display_path(p)
}

fn boot(ctx: &crate::support::context::Ctx, profile: Option<String>, runs: usize) -> Result<()> {
    use crate::checks::boot::inputs_of_release as release_inputs;
    use crate::checks::boot::Target;
    use crate::pipeline::{release, RELEASE_STAGES};
    use crate::stages::ensure_tools;
    use crate::support::prereq::Tools;
    ensure!(runs > 0, "--runs must be at least 1");
    ensure_tools(ctx, RELEASE_STAGES, &[Tools::Boot])?;
    let profiles = match profile {
        Some(p) => vec![p],
        None => vec!["mini".to_string(), "standard".to_string()],
    };
    let mut rows = Vec::new();
    for p in &profiles {
        let r = release(ctx, p)?;
        let inputs = release_inputs(ctx, &r)?;
        let (mut banner, mut shell) = (vec![], vec![]);
        for i in 0..runs {
            let rep = crate::checks::boot::check(ctx, Target::UmlIso, &inputs)
                .with_context(|| format!("bench boot: {p}, run {}", i + 1))?;
            eprintln!(
                "    {p} run {}: banner {:.2} s, shell {:.2} s",
                i + 1,
                rep.banner_secs,
                rep.shell_secs
            );
            banner.push(rep.banner_secs);
            shell.push(rep.shell_secs);
        }
        rows.push((p.clone(), inputs.memory_mib, banner, shell));
    }
    // The memory column is the mem= the boot was given (the profile's
    // memory-mib), not a measurement; the times are the host's clock.
    println!(
        "{:<10} {:>9} {:>15} {:>15}   runs (banner)",
        "profile", "mem= given", "median banner", "median shell"
    );
    for (p, mib, banner, shell) in rows {
        let runs: Vec<String> = banner.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "{p:<10} {:>8}M {:>13.2} s {:>13.2} s   {}",
            mib,
            median(banner),
            median(shell),
            runs.join(" ")
        );
    }
    Ok(())
}

// ---- bench packages ---------------------------------------------------------

/// A package as dpkg's status file records it.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    pub name: String,
    pub kib: u64,
    pub base: bool,
    /// Dependencies: each a list of alternatives.
    pub depends: Vec<Vec<String>>,
    pub provides: Vec<String>,
}

/// The installed packages of a dpkg status file.
pub fn parse_status(text: &str) -> Vec<Installed> {
    let mut out = Vec::new();
    for para in finnix_contract::dpkg::installed(text) {
        let mut p = Installed::default();
        let mut priority_required = false;
        for line in para.lines() {
            let Some((k, v)) = line.split_once(": ") else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => p.name = v.to_string(),
                "Installed-Size" => p.kib = v.parse().unwrap_or(0),
                "Essential" => p.base |= v == "yes",
                "Priority" => priority_required = v == "required",
                "Depends" | "Pre-Depends" => {
                    for dep in v.split(',') {
                        let alts = dep
                            .split('|')
                            .map(|a| {
                                let a = a.split_whitespace().next().unwrap_or("");
                                a.split(':').next().unwrap_or("").to_string()
                            })
                            .filter(|a| !a.is_empty())
                            .collect::<Vec<_>>();
                        if !alts.is_empty() {
                            p.depends.push(alts);
                        }
                    }
                }
                "Provides" => {
                    for prov in v.split(',') {
                        if let Some(n) = prov.split_whitespace().next() {
                            p.provides.push(n.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        p.base |= priority_required;
        out.push(p);
    }
    out
}

/// Every installed package `roots` pull in, through Depends and
/// Pre-Depends (an alternative or a virtual name resolved to what is
/// installed).
fn closure(pkgs: &[Installed], roots: &[&str]) -> std::collections::BTreeSet<String> {
    use std::collections::{BTreeSet, HashMap};
    let by_name: HashMap<&str, &Installed> = pkgs.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut providers: HashMap<&str, &str> = HashMap::new();
    for p in pkgs {
        for v in &p.provides {
            providers.entry(v.as_str()).or_insert(p.name.as_str());
        }
    }
    let resolve = |n: &str| -> Option<String> {
        by_name
            .get(n)
            .map(|p| p.name.clone())
            .or_else(|| providers.get(n).map(|p| p.to_string()))
    };
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.iter().filter_map(|r| resolve(r)).collect();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        for alts in &by_name[n.as_str()].depends {
            if let Some(hit) = alts.iter().find_map(|a| resolve(a)) {
                todo.push(hit);
            }
        }
    }
    seen
}

/// One group of the package list: what it adds over everything else.
pub struct GroupSize {
    pub group: String,
    pub listed: usize,
    pub packages: usize,
    pub kib: u64,
}

/// What each group adds: the packages (and their KiB installed) that only
/// this group pulls in, over the minimal base and all the other groups.
pub fn group_sizes(groups: &[(String, Vec<String>)], pkgs: &[Installed]) -> Vec<GroupSize> {
    let base: Vec<&str> = pkgs
        .iter()
        .filter(|p| p.base)
        .map(|p| p.name.as_str())
        .chain(["apt"])
        .collect();
    let kib: std::collections::HashMap<&str, u64> =
        pkgs.iter().map(|p| (p.name.as_str(), p.kib)).collect();
    let all: Vec<&str> = groups
        .iter()
        .flat_map(|(_, l)| l.iter().map(|s| s.as_str()))
        .chain(base.iter().copied())
        .collect();
    let total = closure(pkgs, &all);
    groups
        .iter()
        .map(|(g, listed)| {
            let others: Vec<&str> = groups
                .iter()
                .filter(|(o, _)| o != g)
                .flat_map(|(_, l)| l.iter().map(|s| s.as_str()))
                .chain(base.iter().copied())
                .collect();
            let without = closure(pkgs, &others);
            let only: Vec<&String> = total.difference(&without).collect();
            GroupSize {
                group: g.clone(),
                listed: listed.len(),
                packages: only.len(),
                kib: only
                    .iter()
                    .map(|n| kib.get(n.as_str()).copied().unwrap_or(0))
                    .sum(),
            }
        })
        .collect()
}

/// The groups of a package list: `# == name ==` lines start one.
pub fn package_groups(text: &str) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for raw in text.lines() {
        let t = raw.trim();
        if let Some(name) = t.strip_prefix("# ==").and_then(|r| r.strip_suffix("==")) {
            groups.push((name.trim().to_string(), Vec::new()));
            continue;
        }
        let name = t.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        if groups.is_empty() {
            groups.push(("(ungrouped)".into(), Vec::new()));
        }
        groups.last_mut().expect("a group").1.push(name.to_string());
    }
    groups
}

/// `bench packages`: the profile's base tree (built if needed) and what
/// each group of its package list adds.
fn packages(ctx: &crate::support::context::Ctx, profile: Option<String>) -> Result<()> {
    use crate::stages::ensure_tools;
    use crate::stages::StageId;
    ensure_tools(ctx, &[StageId::RootfsBase], &[])?;
    let name = ctx.profile(profile);
    let prof = crate::support::config::Profile::load(&ctx.root, &name)?;
    let list = prof
        .packages
        .as_deref()
        .context("this profile has no package list (a busybox profile)")?;
    let text = fs_err::read_to_string(ctx.root.join("configs/profiles").join(list))?;
    let base = crate::stages::rootfs::base(ctx, &name, &prof)?;
    let status = fs_err::read_to_string(base.tree().join("var/lib/dpkg/status"))?;
    let pkgs = parse_status(&status);
    let groups = package_groups(&text);
    let rows = group_sizes(&groups, &pkgs);
    let total_kib: u64 = pkgs.iter().map(|p| p.kib).sum();
    // The group column as wide as its longest name.
    let w = rows
        .iter()
        .map(|r| r.group.chars().count())
        .chain([29])
        .max()
        .unwrap_or(29);
    println!(
        "{:<w$} {:>6} {:>9} {:>12}",
        "group (what only it pulls in)", "listed", "packages", "installed"
    );
    for r in &rows {
        println!(
            "{:<w$} {:>6} {:>9} {:>12}",
            r.group,
            r.listed,
            r.packages,
            fmt_size(r.kib * 1024)
        );
    }
    println!(
        "{:<w$} {:>6} {:>9} {:>12}",
        "whole tree (dpkg)",
        groups.iter().map(|(_, l)| l.len()).sum::<usize>(),
        pkgs.len(),
        fmt_size(total_kib * 1024)
    );
    Ok(())
}

// ---- bench zram --------------------------------------------------------------

/// The memory of the guest `bench zram` measures (the small machine).
const ZRAM_GUEST_MIB: u32 = 256;
/// The sizes of memory a process holds, MiB, tried in turn until one is
/// killed.
const ZRAM_STEPS: &[u64] = &[96, 128, 160, 192, 224, 256, 288, 320, 384];

/// One boot's result: the largest size held, and zram's own figures.
struct ZramRun {
    largest_mib: u64,
    killed_at: Option<u64>,
    swap_line: String,
    /// zram's mm_stat after the largest size: mem_used_max (bytes).
    peak_used: Option<u64>,
}

/// A 256 MB UML guest of the standard live system, with zram swap (the
/// default) and with `nozram`: a process holds more and more of the
/// system's own program files in memory (realistic data: code and
/// libraries compress about 2 to 3 times) until the kernel kills it.
fn zram(ctx: &crate::support::context::Ctx) -> Result<()> {
    use crate::pipeline::{default_squashfs, live, LIVE_STAGES};
    use crate::stages::ensure_tools;
    use crate::support::prereq::Tools;
    ensure_tools(ctx, LIVE_STAGES, &[Tools::Boot])?;
    let l = live(ctx, "standard", default_squashfs(ctx))?;
    let tmp = ctx.cache.temp_dir("bench-zram")?;
    let dir = tmp.path();
    for (from, name) in [
        (l.uml.image(), "linux"),
        (l.initrd.image(), "initrd.img"),
        (l.squashfs.image(), "FINNIX"),
    ] {
        crate::support::fsutil::link_or_copy(&from, &dir.join(name))?;
    }
    let version = &ctx.config.distribution.version;
    let mut rows = Vec::new();
    for (label, extra) in [("zram (default)", None), ("nozram", Some("nozram"))] {
        let run = zram_run(ctx, dir, extra, version)
            .with_context(|| format!("bench zram: the {label} boot"))?;
        rows.push((label, run));
    }
    println!(
        "mem={ZRAM_GUEST_MIB}M UML guest, standard live system; a process holding N MiB of /usr's files (cat | tail -c N):"
    );
    println!(
        "{:<16} {:>14} {:>12} {:>16}   swap",
        "boot", "largest held", "killed at", "zram peak use"
    );
    for (label, r) in rows {
        println!(
            "{label:<16} {:>10} MiB {:>12} {:>16}   {}",
            r.largest_mib,
            r.killed_at.map_or("-".to_string(), |n| format!("{n} MiB")),
            r.peak_used
                .map_or("-".to_string(), |b| format!("{} MiB", b >> 20)),
            if r.swap_line.is_empty() {
                "none"
            } else {
                &r.swap_line
            }
        );
    }
    Ok(())
}

fn zram_run(
    ctx: &crate::support::context::Ctx,
    dir: &std::path::Path,
    extra: Option<&str>,
    version: &str,
) -> Result<ZramRun> {
    use std::time::{Duration, Instant};
    let mem = format!("mem={ZRAM_GUEST_MIB}M");
    let mut args = vec![
        mem.as_str(),
        "initrd=initrd.img",
        "root=/dev/ubda",
        "ubdar=FINNIX",
        "squashroot",
        "uml",
    ];
    args.extend(extra);
    let c = crate::guest::uml::command(dir, dir, &args, false)?;
    let log = ctx.logs().join(format!(
        "console-bench-zram-{}.log",
        extra.unwrap_or("default")
    ));
    eprintln!(
        "    booting mem={ZRAM_GUEST_MIB}M {} (console: {})",
        extra.unwrap_or(""),
        log.display()
    );
    crate::guest::console::session(c, &log, |g| {
        let start = Instant::now();
        g.boot_to_shell(version, "tty0", start, Duration::from_secs(240))?;
        let swap_line = g.run(
            "swapon --show=NAME,SIZE,PRIO --noheadings | tr -s ' ' | paste -sd';'",
            Duration::from_secs(30),
        )?;
        let mut r = ZramRun {
            largest_mib: 0,
            killed_at: None,
            swap_line,
            peak_used: None,
        };
        for &n in ZRAM_STEPS {
            let t = Instant::now();
            let out = g.run(
                &format!("find /usr -xdev -type f -size +64k -print0 | xargs -0 cat 2>/dev/null | head -c {n}M | tail -c {n}M | wc -c"),
                Duration::from_secs(600),
            )?;
            let held = out
                .lines()
                .last()
                .and_then(|l| l.trim().parse::<u64>().ok())
                == Some(n << 20);
            eprintln!(
                "    {} {n} MiB: {} in {:.1} s",
                extra.unwrap_or("zram"),
                if held { "held" } else { "killed" },
                t.elapsed().as_secs_f64()
            );
            if !held {
                r.killed_at = Some(n);
                break;
            }
            r.largest_mib = n;
            if !r.swap_line.contains("zram") {
                continue; // zram0 exists but is not swap (nozram)
            }
            let stat = g.run(
                "cat /sys/block/zram0/mm_stat 2>/dev/null || true",
                Duration::from_secs(30),
            )?;
            r.peak_used = stat
                .split_whitespace()
                .nth(4)
                .and_then(|v| v.parse().ok())
                .or(r.peak_used);
        }
        Ok(r)
    })
}

#[cfg(test)]
mod measure_tests {
    use super::*;

    #[test]
    fn peak_memory_is_the_childs_own() {
        assert_eq!(
            vm_hwm_kib("Name:\tx\nVmHWM:\t   38276 kB\nVmRSS:\t 1 kB\n"),
            Some(38276)
        );
        assert_eq!(vm_hwm_kib("Name:\tzombie\nState:\tZ\n"), None);
        // This process holds 200 MiB when it starts the child: the child's
        // figure must not include it (wait4's ru_maxrss did).
        let held = vec![1u8; 200 << 20];
        let mut small = Command::new("sleep");
        small.arg("0.2");
        let (_, kib) = measure(small).unwrap();
        assert!(kib > 0 && kib < 20 << 10, "sleep peaked at {kib} KiB");
        // A child that takes 64 MiB is seen taking it.
        let mut big = Command::new("sh");
        big.args([
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 0.2",
        ]);
        let (_, kib) = measure(big).unwrap();
        assert!(kib > 64 << 10, "sh peaked at {kib} KiB");
        assert_eq!(held.iter().map(|b| *b as u64).sum::<u64>(), 200 << 20);
    }
}

#[cfg(test)]
mod package_tests {
    use super::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: required\nInstalled-Size: 100\n\n\
Package: vim\nStatus: install ok installed\nInstalled-Size: 30\nDepends: vim-runtime (= 1), libc6 (>= 2)\n\n\
Package: vim-runtime\nStatus: install ok installed\nInstalled-Size: 20\n\n\
Package: mc\nStatus: install ok installed\nInstalled-Size: 7\nDepends: libglib | libglib2, editor\n\n\
Package: libglib2\nStatus: install ok installed\nInstalled-Size: 5\nProvides: libglib\n\n\
Package: gone\nStatus: deinstall ok config-files\nInstalled-Size: 99\n";

    #[test]
    fn a_group_counts_what_only_it_pulls_in() {
        let pkgs = parse_status(STATUS);
        assert_eq!(pkgs.len(), 5, "config-files only is not installed");
        let groups = package_groups("# == editors ==\nvim\n# == files ==\nmc # two-pane\n");
        assert_eq!(groups[1], ("files".to_string(), vec!["mc".to_string()]));
        let rows = group_sizes(&groups, &pkgs);
        assert_eq!((rows[0].packages, rows[0].kib), (2, 50));
        // mc's libglib is a virtual name for libglib2; "editor" is unknown.
        assert_eq!((rows[1].packages, rows[1].kib), (2, 12));
    }
}
