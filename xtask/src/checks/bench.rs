//! `cargo xtask bench squashfs`: our backhand writer against squashfs-tools'
//! mksquashfs on the same tree, same compressor, same block size, same
//! number of threads. Each run is a child process, so its wall time and peak
//! memory (ru_maxrss) are its own.

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

/// Run a command, returning its wall time and peak resident memory.
fn measure(mut cmd: Command) -> Result<(f64, u64)> {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        r == pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{:?} failed (status {status})",
        cmd.get_program()
    );
    std::mem::forget(child);
    Ok((secs, usage.ru_maxrss as u64))
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
    let exe = std::env::current_exe()?;
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
        use crate::pipeline::{default_squashfs, ensure_tools, LIVE_STAGES};
        use crate::stages::{initrd, kernel, rootfs};
        if self.what == crate::cli::BenchWhat::Boot {
            return boot(ctx, self.profile, self.runs);
        }
        ensure_tools(ctx, LIVE_STAGES, &[])?;
        let profile = ctx.profile(self.profile);
        let um = kernel::build(ctx, kernel::Flavor::Um)?;
        let initrd = initrd::build(ctx)?;
        let rootfs = rootfs::build(ctx, &profile, &um, &initrd)?;
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
fn boot(ctx: &crate::support::context::Ctx, profile: Option<String>, runs: usize) -> Result<()> {
    use crate::checks::boot::Target;
    use crate::pipeline::{ensure_tools, release, release_inputs, RELEASE_STAGES};
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
    println!(
        "{:<10} {:>7} {:>15} {:>15}   runs (banner)",
        "profile", "memory", "median banner", "median shell"
    );
    for (p, mib, banner, shell) in rows {
        let runs: Vec<String> = banner.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "{p:<10} {:>4} MB {:>13.2} s {:>13.2} s   {}",
            mib,
            median(banner),
            median(shell),
            runs.join(" ")
        );
    }
    Ok(())
}
