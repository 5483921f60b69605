//! The xen-xl boot target: the spec's Xen workflow in a real dom0.
//!
//! Xen 4.17 (Debian's hypervisor) boots under qemu without KVM, with a
//! Debian dom0 (Debian's kernel, xen-utils-4.17, a bridge `xenbr0` with
//! DHCP; stage `xen-host`, from `configs/xen-host/`). The release's Xen
//! tarball and ISO reach dom0 on a disk of their own; there the tarball's
//! README commands run as they are written: untar into /root, link the ISO,
//! `xl create -c /root/finnix-conf 'name="finnix"'`. The guest is checked
//! through its hvc0 console as PVH (finnix-conf's default, DHCP from dom0)
//! and as PV (its one-line change, with `sshd passwd= ip=<static>` on xl's
//! command line and a password login from dom0 over xenbr0), then xl's own
//! errors for bad configurations.
//!
//! qemu's SVM model with nested paging (`-cpu qemu64,+svm,+npt`) gives Xen
//! HAP under TCG: Debian builds Xen without shadow paging
//! (`# CONFIG_SHADOW_PAGING is not set`), so PVH needs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fs_err as fs;

use crate::checks::boot::{Inputs, ReleaseInputs, Report, Target};
use crate::checks::debian_root::{self, Recipe, SUITE};
use crate::guest::console::Guest;
use crate::stages::StageId;
use crate::support::context::Ctx;
use crate::support::ui;

const PACKAGES: &str = "configs/xen-host/packages";
const INIT: &str = "configs/xen-host/init";
const RECIPE: u32 = 1;
/// dom0's address on xenbr0 (configs/xen-host/init sets it).
pub const DOM0_ADDR: &str = "10.0.0.1";
/// Where dom0 mounts the disk holding the release (by its label).
pub const RELEASE_DIR: &str = "/srv/release";
const RELEASE_LABEL: &str = "release";
/// dom0's prompt (configs/xen-host/init sets PS1).
const PROMPT: &str = "dom0# ";
const DOM0_BOOT: Duration = Duration::from_secs(300);
const GUEST_BOOT: Duration = Duration::from_secs(300);
const COMMAND: Duration = Duration::from_secs(120);
/// The PV guest's static address on xenbr0 (outside dnsmasq's range) and
/// root's password (`passwd=`), for the SSH login from dom0.
const XEN_GUEST: &str = "10.0.0.50";
const XEN_PASSWORD: &str = "rescue-pv-42";

/// The Xen host's files in the cache.
#[derive(Clone)]
pub struct Host {
    /// Xen, gunzipped (qemu's multiboot loader wants it plain).
    pub xen: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// dom0's root filesystem (ext4, label `dom0`); booted as a snapshot.
    pub root: PathBuf,
}

/// Stage `xen-host`: the Debian dom0 root (cached).
pub fn host(ctx: &Ctx) -> Result<Host> {
    let recipe = Recipe {
        stage: StageId::XenHost,
        what: format!("the Xen host for xen-xl (Debian {SUITE}, Xen 4.17, dom0)"),
        version: RECIPE,
        packages: debian_root::read_packages(ctx, PACKAGES)?,
        recommends: false,
        files: vec![Path::new(INIT)],
    };
    let (entry, _) = debian_root::build(ctx, &recipe, |s, entry, tree| {
        fs::copy(ctx.root.join(INIT), tree.join("sbin/xen-host-init"))?;
        let boot = tree.join("boot");
        let find = |prefix: &str| -> Result<PathBuf> {
            let mut found: Vec<PathBuf> = fs::read_dir(&boot)?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect();
            found.sort();
            found
                .pop()
                .with_context(|| format!("no {prefix}* in the Xen host's /boot"))
        };
        crate::support::fsutil::gunzip(&find("xen-4.17-amd64.gz")?, &entry.join("xen"))?;
        fs::copy(find("vmlinuz-")?, entry.join("vmlinuz"))?;
        fs::copy(find("initrd.img-")?, entry.join("initrd.img"))?;
        // The tree (about 720 MiB) in a sparse 2 GiB ext4 image.
        s.run(ext4_image("dom0", tree, &entry.join("root.img"), 2048))?;
        fs::remove_dir_all(tree)?;
        Ok("dom0 root image made".into())
    })?;
    Ok(Host {
        xen: entry.join("xen"),
        kernel: entry.join("vmlinuz"),
        initrd: entry.join("initrd.img"),
        root: entry.join("root.img"),
    })
}

// ---- the README's commands ---------------------------------------------------

/// The commands of the Xen tarball's README, as dom0 runs them: the
/// placeholder `/path/to/` is where the release disk is mounted.
#[derive(Debug, PartialEq, Eq)]
pub struct Readme {
    /// `tar -C /root -xzf <tarball>` (run in the release directory).
    pub untar: String,
    /// `ln -s /path/to/<iso> /root/finnix.iso`.
    pub link: String,
    /// `xl create -c /root/finnix-conf 'name="finnix"'`.
    pub create: String,
    /// The file names the README expects: the tarball and the ISO.
    pub tarball: String,
    pub iso: String,
}

/// The three commands from the README's text.
pub fn readme_commands(text: &str) -> Result<Readme, String> {
    let line = |start: &str| -> Result<String, String> {
        let found: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(start))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(format!("the README has no `{} ...` line", start.trim())),
            _ => Err(format!(
                "the README has {} `{} ...` lines",
                found.len(),
                start.trim()
            )),
        }
    };
    let untar = line("tar -C /root -xzf ")?;
    let link = line("ln -s ")?;
    let create = line("xl create ")?;
    let tarball = untar["tar -C /root -xzf ".len()..].trim().to_string();
    let iso_path = link["ln -s ".len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default();
    let iso = iso_path
        .strip_prefix("/path/to/")
        .ok_or_else(|| format!("the README's ln line does not link /path/to/<ISO>: {link}"))?
        .to_string();
    Ok(Readme {
        link: link.replacen("/path/to/", &format!("{RELEASE_DIR}/"), 1),
        untar,
        create,
        tarball,
        iso,
    })
}

/// mke2fs making `image` (sparse, `mib` MiB): ext4 labelled `label`
/// holding the tree `dir`.
fn ext4_image(label: &str, dir: &Path, image: &Path, mib: u64) -> crate::support::cmd::Cmd {
    crate::cmd!(
        "mke2fs",
        "-q",
        "-F",
        "-t",
        "ext4",
        "-L",
        label,
        "-d",
        dir,
        image,
        format!("{mib}M")
    )
}

/// The commands of the README inside a Xen tarball.
pub fn readme_of(tarball: &Path) -> Result<Readme> {
    readme_commands(&readme_text(tarball)?).map_err(anyhow::Error::msg)
}

fn readme_text(tarball: &Path) -> Result<String> {
    let gz = fs::File::open(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.file_name().is_some_and(|n| n == "README.xen") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text)?;
            return Ok(text);
        }
    }
    bail!("{} holds no README.xen", tarball.display())
}

// ---- dom0 ------------------------------------------------------------------------

/// A disk (ext4, label `release`) holding the Xen tarball and the ISO under
/// the names the README uses.
pub fn release_disk(dir: &Path, readme: &Readme, r: &ReleaseInputs) -> Result<PathBuf> {
    let files: [(&str, &Path); 2] = [(&readme.tarball, &r.xen_tarball), (&readme.iso, &r.iso)];
    let staging = dir.join("release");
    fs::create_dir_all(&staging)?;
    let mut bytes = 0;
    for (name, path) in &files {
        fs::copy(path, staging.join(name))?;
        bytes += fs::metadata(path)?.len();
    }
    let image = dir.join("release.img");
    let mib = bytes / (1 << 20) + 256;
    ext4_image(RELEASE_LABEL, &staging, &image, mib)
        .output()
        .context("cannot make the release disk for dom0")?;
    fs::remove_dir_all(&staging)?;
    Ok(image)
}

/// qemu running Xen and dom0: its root as a snapshot, the release disk,
/// then `disks` (virtio, serial `rescueNN`), in this order. dom0's shell is
/// on a virtio console on stdio; Xen's serial line (Xen's and dom0's kernel
/// messages) goes to `serial_log`.
pub fn qemu_command(
    host: &Host,
    release: &Path,
    disks: &[(String, PathBuf)],
    serial_log: &Path,
) -> Command {
    // One CPU (qemu::machine's): with two, qemu runs them in parallel threads (MTTCG) and a
    // PVH guest triple-faulted in about one boot in fifteen, always just
    // after an `in` from an ACPI port that Xen emulates (acpi_os_read_port,
    // port 0xb002), while dom0 worked on the other CPU; with one CPU, none
    // in 25 boots in a row. (Nested SVM under TCG; not seen on hardware.)
    let mut c = crate::guest::qemu::machine("pc", 2048);
    c.args(["-cpu", "qemu64,+svm,+npt"])
        .arg("-serial")
        .arg(format!("file:{}", serial_log.display()))
        .args(["-chardev", "stdio,id=shell", "-device", "virtio-serial-pci"])
        .args(["-device", "virtconsole,chardev=shell"])
        .arg("-kernel")
        .arg(&host.xen)
        .args([
            "-append",
            "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M noreboot",
        ])
        .arg("-initrd")
        .arg(format!(
            "{} root=LABEL=dom0 rw console=hvc0 init=/sbin/xen-host-init,{}",
            host.kernel.display(),
            host.initrd.display()
        ));
    let mut drive = |id: &str, file: &Path, extra: &str, serial: Option<&str>| {
        c.arg("-drive").arg(format!(
            "file={},format=raw,if=none,id={id}{extra}",
            file.display()
        ));
        let serial = serial.map(|s| format!(",serial={s}")).unwrap_or_default();
        c.args(["-device", &format!("virtio-blk-pci,drive={id}{serial}")]);
    };
    drive("root", &host.root, ",snapshot=on", None);
    drive("release", release, "", None);
    for (i, (serial, file)) in disks.iter().enumerate() {
        drive(&format!("disk{i}"), file, "", Some(serial));
    }
    c
}

/// Xen's serial log beside a console log.
pub fn serial_log(console_log: &Path) -> PathBuf {
    console_log.with_extension("xen-serial.log")
}

/// dom0's shell, on its virtio console.
pub struct Dom0 {
    pub g: Guest,
}

impl Dom0 {
    /// Boot to dom0's prompt: its init says `xen-host: ready` when xenstored,
    /// xenconsoled, xenbr0 and DHCP run and the release disk is mounted.
    pub fn boot(cmd: Command, log: &Path) -> Result<(Dom0, f64)> {
        let start = Instant::now();
        let mut g = Guest::start(cmd, log)?;
        let hit = g.expect_any(&["xen-host: ready", "xen-host: FAILED"], DOM0_BOOT);
        if !matches!(hit, Ok((0, _))) {
            std::thread::sleep(Duration::from_millis(500));
            g.kill();
            let serial = serial_log(log);
            bail!(
                "dom0 did not come up ({}); Xen's serial line ({}):\n{}",
                match hit {
                    Ok(_) => "its init failed".to_string(),
                    Err(e) => format!("{e:#}"),
                },
                ui::display_path(&serial),
                ui::tail(&serial, 25)
            );
        }
        g.expect(PROMPT, COMMAND)?;
        Ok((Dom0 { g }, start.elapsed().as_secs_f64()))
    }

    /// A command in dom0's shell that must succeed; its output.
    pub fn sh(&mut self, command: &str) -> Result<String> {
        let (code, out) = self.g.run_code(command, COMMAND)?;
        ensure!(
            code == 0,
            "in dom0, `{command}` failed (exit status {code}):\n{out}"
        );
        Ok(out)
    }

    /// The domains `xl list` shows, by name.
    pub fn domains(&mut self) -> Result<Vec<String>> {
        let out = self.sh("xl list")?;
        Ok(out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect())
    }

    /// The README's untar and link lines, in the release directory.
    pub fn install(&mut self, readme: &Readme) -> Result<()> {
        self.sh(&format!(
            "cd {RELEASE_DIR} && {} && {} && cd /root",
            readme.untar, readme.link
        ))?;
        Ok(())
    }

    /// Type `create` (an `xl create -c ...` line) and wait for the guest's
    /// ready banner and root prompt on its console. Returns the seconds
    /// from the typed line to the banner, and the boot's console text.
    pub fn create(&mut self, create: &str, version: &str) -> Result<(f64, String)> {
        // The prompt after the last command: dom0's shell is waiting.
        self.g.expect(PROMPT, COMMAND)?;
        let start = Instant::now();
        self.g.send(&format!("{create}\n"))?;
        // xl's own failure returns to dom0's prompt: fail with its errors
        // at once rather than wait for a banner that cannot come.
        let (banner_secs, _, text) = self
            .g
            .boot_to_shell_unless(version, "hvc0", start, GUEST_BOOT, &[PROMPT])
            .context("xl create did not bring the guest to its shell")?;
        Ok((banner_secs, text))
    }

    /// Leave the guest's console (Ctrl-]) and prove the shell is dom0's.
    pub fn detach(&mut self) -> Result<()> {
        // xenconsole leaves only on a read of Ctrl-] alone: nothing may
        // follow it until dom0's prompt is back.
        self.g.send("\x1d")?;
        self.g
            .expect(PROMPT, COMMAND)
            .context("no dom0 prompt after Ctrl-] on the guest's console")?;
        let name = self.sh("hostname")?;
        ensure!(
            name.trim() == "dom0",
            "Ctrl-] did not return to dom0 (hostname {name:?})"
        );
        Ok(())
    }

    /// `xl console <name>` from dom0's prompt, to the guest's root shell.
    pub fn attach_console(&mut self, name: &str) -> Result<()> {
        self.g.send(&format!("xl console {name}\n"))?;
        std::thread::sleep(Duration::from_millis(500));
        self.g.send("\n")?;
        self.g
            .expect("root@hvc0:", COMMAND)
            .with_context(|| format!("`xl console {name}` did not reach the guest's shell"))?;
        Ok(())
    }

    /// `shutdown -h now` in the guest at the console; back in dom0 when xl
    /// console ends; then the domain must leave `xl list`. Returns the
    /// seconds from the command to its removal.
    pub fn shutdown_guest(&mut self, name: &str) -> Result<f64> {
        let start = Instant::now();
        self.g.send("shutdown -h now\n")?;
        if let Err(e) = self.g.expect("[*] Shutting down...", COMMAND) {
            let state = self.stuck_guest_state(name);
            return Err(e.context(format!("no shutdown lines from the guest; {state}")));
        }
        self.g
            .expect(PROMPT, COMMAND)
            .context("xl console did not return to dom0 after the guest's shutdown")?;
        // xl's own process destroys the domain on poweroff (on_poweroff =
        // "destroy"): wait for it, as a user would see it go.
        self.sh(&format!(
            "i=0; while xl list | grep -q '^{name} '; do i=$((i+1)); [ $i -ge 300 ] && break; sleep 0.1; done"
        ))?;
        let left = self.domains()?;
        ensure!(
            !left.iter().any(|d| d == name),
            "{name} is still in `xl list` 30 s after it shut down: {left:?}"
        );
        let gone = start.elapsed().as_secs_f64();
        // Then xl releases its disks, a hotplug script each, a file's loop
        // device among them: under TCG, up to a minute after the domain
        // left `xl list` (the next `xl create` found the ISO's loop device
        // still there). Wait for that too. (A script xl killed at its 40 s
        // leaves the loop device for good: give a guest few disks at its
        // shutdown; check-rescue detaches its own first.)
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let loops = self.sh("losetup -a")?;
            if loops.trim().is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                // xl's log says which hotplug script failed or was killed.
                let log = self
                    .sh(&format!("tail -n 40 /var/log/xen/xl-{name}.log; true"))
                    .unwrap_or_else(|e| format!("(not read: {e:#})"));
                bail!(
                    "{name}'s loop devices are still in dom0 5 minutes after it left `xl list`:\n{loops}\n\
                     /var/log/xen/xl-{name}.log in dom0, last lines:\n{log}"
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(gone)
    }

    /// What dom0 can tell of a guest that went quiet: xl's view of it, and
    /// the guest kernel's list of blocked tasks (magic SysRq `w`, sent by
    /// xl, read back from its console).
    fn stuck_guest_state(&mut self, name: &str) -> String {
        let mut out = String::new();
        if self.detach().is_err() {
            return "dom0's prompt did not come back after Ctrl-]".into();
        }
        for cmd in [
            format!("xl list {name}; xl vcpu-list {name}"),
            format!("xl sysrq {name} w; sleep 3; timeout --foreground 5 xl console {name}; true"),
        ] {
            match self.g.run(&cmd, COMMAND) {
                Ok(text) => out.push_str(&format!("dom0 `{cmd}`:\n{text}\n")),
                Err(e) => out.push_str(&format!("dom0 `{cmd}` failed: {e:#}\n")),
            }
        }
        out
    }

    /// Only Domain-0 runs, and no loop device is left from a guest's disk.
    pub fn only_dom0(&mut self) -> Result<()> {
        let domains = self.domains()?;
        ensure!(
            domains == ["Domain-0"],
            "`xl list` shows more than Domain-0: {domains:?}"
        );
        let loops = self.sh("losetup -a")?;
        ensure!(
            loops.trim().is_empty(),
            "loop devices are left in dom0:\n{loops}"
        );
        Ok(())
    }

    /// Power the machine off (dom0 has no init system to do it).
    pub fn power_off(&mut self) -> Result<()> {
        self.g.send("sync; echo o > /proc/sysrq-trigger\n")?;
        let status = self.g.wait(COMMAND)?;
        ensure!(
            status.success(),
            "qemu exited with {status} after dom0's poweroff"
        );
        // dom0's console carries its own boot and its guests' consoles:
        // kernel trouble of any of them fails.
        self.g.check_kernel_trouble()
    }
}

// ---- the target -------------------------------------------------------------------

/// What one guest type showed.
pub struct GuestRun {
    pub kind: &'static str,
    pub banner_secs: f64,
    pub gone_secs: f64,
}

/// A bad finnix-conf: how it is made in dom0 from the good one, and what
/// xl's error must name.
struct BadInput {
    what: &'static str,
    /// Shell run in /root before the create line (and undone after).
    setup: &'static str,
    undo: &'static str,
    /// The create line's config file instead of /root/finnix-conf.
    conf: Option<&'static str>,
    names: &'static str,
}

const BAD_INPUTS: &[BadInput] = &[
    BadInput {
        what: "missing ISO",
        setup: "mv /root/finnix.iso /root/finnix.iso.away",
        undo: "mv /root/finnix.iso.away /root/finnix.iso",
        conf: None,
        names: "/root/finnix.iso: No such file or directory",
    },
    BadInput {
        what: "wrong kernel path",
        setup: "sed 's|^kernel = .*|kernel = \"/root/vmlinuz-missing\"|' /root/finnix-conf > /root/bad-conf",
        undo: "rm /root/bad-conf",
        conf: Some("/root/bad-conf"),
        names: "'/root/vmlinuz-missing': No such file or directory",
    },
    BadInput {
        what: "too little memory",
        setup: "sed 's|^memory = .*|memory = 8|' /root/finnix-conf > /root/bad-conf",
        undo: "rm /root/bad-conf",
        conf: Some("/root/bad-conf"),
        names: "Out of memory",
    },
];

/// `boot --check xen-xl`.
pub fn check(ctx: &Ctx, inputs: &Inputs, host: &Host, log: &Path) -> Result<Report> {
    let r = inputs
        .release
        .as_ref()
        .context("xen-xl needs the release files (the Xen tarball, the ISO)")?;
    let readme = readme_of(&r.xen_tarball)?;
    let run = ctx.cache.temp_dir("boot-xen-xl")?;
    let iso_sha = crate::support::cache::sha256_file(&r.iso)?;
    let disk = release_disk(run.path(), &readme, r)?;
    let (mut dom0, dom0_secs) = Dom0::boot(qemu_command(host, &disk, &[], &serial_log(log)), log)?;
    let result = drive(&mut dom0, inputs, &readme, &iso_sha);
    match result {
        Ok(runs) => {
            dom0.power_off()?;
            Ok(Report {
                banner_secs: runs[0].banner_secs,
                shell_secs: runs[0].banner_secs,
                mem_used_kib: 0,
                log: log.to_path_buf(),
                detail: format!("dom0 ready in {dom0_secs:.1} s; {}", describe(&runs)),
            })
        }
        Err(e) => {
            dom0.g.kill();
            bail!(
                "xen-xl: {e:#}\nlast lines of dom0's console ({}):\n{}\nlast lines of Xen's serial line ({}):\n{}",
                ui::display_path(log),
                dom0.g.tail(25),
                ui::display_path(&serial_log(log)),
                ui::tail(&serial_log(log), 15)
            )
        }
    }
}

fn drive(
    dom0: &mut Dom0,
    inputs: &Inputs,
    readme: &Readme,
    iso_sha: &str,
) -> Result<Vec<GuestRun>> {
    dom0.only_dom0()?;
    dom0.install(readme)
        .context("the README's tar and ln lines")?;
    let pvh = guest(dom0, inputs, readme, "PVH", |_| Ok(()))
        .with_context(|| format!("the PVH guest (`{}`)", readme.create))?;
    Ok(vec![
        pvh,
        after_pvh(dom0, inputs, readme, iso_sha, |_| Ok(()))?,
    ])
}

/// What follows the PVH guest once it is gone: the PV guest (finnix-conf's
/// one-line change; `during` runs while it does, dom0 at its prompt), xl's
/// refusals of bad configurations, and the ISO unchanged in dom0.
/// `check-rescue`'s Xen mode runs it in its own dom0 after its PVH guest,
/// its scenarios in the PV guest, so that the suite boots the Xen host
/// once.
pub fn after_pvh(
    dom0: &mut Dom0,
    inputs: &Inputs,
    readme: &Readme,
    iso_sha: &str,
    during: impl FnOnce(&mut Dom0) -> Result<()>,
) -> Result<GuestRun> {
    // finnix-conf's own advice: change this one line.
    dom0.sh("grep -c '^type = \"pvh\"$' /root/finnix-conf && sed -i 's/^type = \"pvh\"$/type = \"pv\"/' /root/finnix-conf")?;
    let pv = guest(dom0, inputs, readme, "PV", during)
        .with_context(|| format!("the PV guest (`{}`)", readme.create))?;
    for bad in BAD_INPUTS {
        refused(dom0, readme, bad).with_context(|| format!("bad input: {}", bad.what))?;
    }
    dom0.only_dom0()?;
    let after = dom0.sh(&format!("sha256sum {RELEASE_DIR}/{}", readme.iso))?;
    ensure!(
        after.split_whitespace().next() == Some(iso_sha),
        "the ISO changed in dom0: {after} (it was {iso_sha})"
    );
    Ok(pv)
}

/// The guests' figures and xl's refusals, as the check's detail says them.
pub fn describe(runs: &[GuestRun]) -> String {
    let guests = runs
        .iter()
        .map(|g| {
            format!(
                "{} banner {:.1} s after xl create, gone {:.1} s after shutdown",
                g.kind, g.banner_secs, g.gone_secs
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{guests}; xl refused {}",
        BAD_INPUTS
            .iter()
            .map(|b| b.what)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One guest: the README's create line, the checks inside, `xl list`
/// while it runs, `during` (dom0 at its prompt), `shutdown -h now`, gone
/// from `xl list`.
fn guest(
    dom0: &mut Dom0,
    inputs: &Inputs,
    readme: &Readme,
    kind: &'static str,
    during: impl FnOnce(&mut Dom0) -> Result<()>,
) -> Result<GuestRun> {
    // The PV guest is reached over SSH: a static address on xenbr0 (no
    // DHCP) and root's password, given on xl's command line as a user
    // would (a `cmdline=` after the file name replaces the file's).
    let create = match kind {
        "PV" => format!(
            "{} 'cmdline=\"console=hvc0 sshd passwd={XEN_PASSWORD} ip={XEN_GUEST}::{DOM0_ADDR}:255.255.255.0::eth0:off\"'",
            readme.create
        ),
        _ => readme.create.clone(),
    };
    let (banner_secs, boot_text) = dom0.create(&create, &inputs.version)?;
    running(dom0, inputs, kind, &boot_text)?;
    during(dom0)?;
    dom0.attach_console("finnix")?;
    let gone_secs = dom0.shutdown_guest("finnix")?;
    Ok(GuestRun {
        kind,
        banner_secs,
        gone_secs,
    })
}

/// A guest just created (its console on dom0's terminal, `boot_text` what
/// it said): the checks inside it, then, back at dom0's prompt (Ctrl-]),
/// `xl list` and dom0's DHCP leases. The guest keeps running.
pub fn running(dom0: &mut Dom0, inputs: &Inputs, kind: &str, boot_text: &str) -> Result<()> {
    let g = &mut dom0.g;
    crate::checks::boot::check_facts(g, Target::XenXl, inputs, boot_text)?;
    ensure!(
        boot_text.contains("Welcome to Finnix for Xen!"),
        "no Xen welcome line on the guest's console"
    );
    // check_facts saw FINNIX_MODE=xen: found out by the initramfs itself,
    // since finnix-conf has no `xen` word.
    let facts = g.run(
        "cat /sys/hypervisor/guest_type; grep -cw xen /proc/cmdline",
        COMMAND,
    )?;
    ensure!(
        facts.lines().collect::<Vec<_>>() == [kind, "0"],
        "expected a {kind} guest without `xen` on its command line: {facts:?}"
    );
    crate::checks::boot::check_readonly(g, "/dev/xvda")?;
    // DHCP on xenbr0 (the lease is asked in the background), or the
    // static address; then dom0 answers.
    let (ok, net) = g.run_status(
        &format!(
            "for i in $(seq 120); do ip -4 addr show dev eth0 | grep -q 'inet ' && break; sleep 0.5; done; \
             ip -4 addr show dev eth0 && ping -c 2 -W 5 {DOM0_ADDR}"
        ),
        COMMAND,
    )?;
    ensure!(
        ok,
        "no address on eth0, or dom0 ({DOM0_ADDR}) does not answer:\n{net}"
    );
    let leased = net
        .lines()
        .find_map(|l| l.trim().strip_prefix("inet "))
        .and_then(|a| a.split('/').next())
        .context("no IPv4 address on eth0")?
        .to_string();
    let has_sshd = kind == "PV" && pv_console(boot_text, &leased)?;
    dom0.detach()?;
    let domains = dom0.domains()?;
    ensure!(
        domains.iter().any(|d| d == "finnix"),
        "`xl list` does not show the running guest: {domains:?}"
    );
    let leases = dom0.sh("cat /run/dnsmasq.leases")?;
    if kind == "PV" {
        ensure!(
            !leases.contains(&format!(" {leased} ")),
            "the static guest asked for a lease anyway:\n{leases}"
        );
        if has_sshd {
            ssh_from_dom0(dom0)?;
        }
    } else {
        ensure!(
            leases.contains(&format!(" {leased} ")),
            "dom0's DHCP server did not lease {leased}:\n{leases}"
        );
    }
    Ok(())
}

/// The PV guest's boot lines for `ip=` (static, on eth0) and `sshd`;
/// whether it runs an SSH server (the mini profile has none and says so).
fn pv_console(boot_text: &str, leased: &str) -> Result<bool> {
    let no_sshd = "[!] sshd: this Finnix has no SSH server";
    let has_sshd = !boot_text.contains(no_sshd);
    for want in [
        format!("[*] Static address {XEN_GUEST}/24 on eth0"),
        if has_sshd {
            "[*] SSH server started on port 22: key and password logins (root)".into()
        } else {
            no_sshd.to_string()
        },
    ] {
        ensure!(
            boot_text.contains(&want),
            "the PV guest's console lacks {want:?}"
        );
    }
    ensure!(
        leased == XEN_GUEST,
        "ip= asked for {XEN_GUEST}, eth0 has {leased}"
    );
    Ok(has_sshd)
}

/// The PV guest with a static address and sshd: root's password login
/// from dom0 with OpenSSH's client (sshpass gives the password), a wrong
/// password refused.
fn ssh_from_dom0(dom0: &mut Dom0) -> Result<()> {
    // OpenSSH's client in dom0, the password from sshpass; a wrong
    // one is refused.
    let ssh = |pw: &str| {
        format!(
            "sshpass -p {pw} ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 \
             -o ConnectTimeout=30 root@{XEN_GUEST} \
             'echo login-as-$(id -un) on $(cat /sys/hypervisor/guest_type)'; echo ssh-exit=$?"
        )
    };
    let good = dom0.sh(&ssh(XEN_PASSWORD))?;
    ensure!(
        good.contains("login-as-root on PV") && good.contains("ssh-exit=0"),
        "root's password login from dom0 over xenbr0 failed:\n{good}"
    );
    let bad = dom0.sh(&ssh("not-the-password"))?;
    // sshpass says 5 for a refused password; ssh names the refusal.
    ensure!(
        (bad.contains("Permission denied") || bad.contains("ssh-exit=5"))
            && !bad.contains("login-as-"),
        "a wrong password was not refused:\n{bad}"
    );
    Ok(())
}

/// A bad configuration: xl refuses it with its own error naming the
/// culprit, and nothing is left running.
fn refused(dom0: &mut Dom0, readme: &Readme, bad: &BadInput) -> Result<()> {
    // The README's line without -c: a guest that started after all must
    // not take the console.
    let mut create = readme.create.replacen(" -c ", " ", 1);
    if let Some(conf) = bad.conf {
        create = create.replacen("/root/finnix-conf", conf, 1);
    }
    dom0.sh(bad.setup)?;
    let (code, out) = dom0.g.run_code(&format!("{create} 2>&1"), COMMAND)?;
    dom0.sh(bad.undo)?;
    if code == 0 {
        let _ = dom0.sh("xl destroy finnix");
        bail!("`{create}` succeeded");
    }
    let first = out
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or_default();
    ensure!(
        out.contains(bad.names),
        "xl failed (exit status {code}) without naming {:?}:\n{out}",
        bad.names
    );
    ensure!(
        !first.is_empty(),
        "xl failed (exit status {code}) without an error line:\n{out}"
    );
    dom0.only_dom0()
}

/// `cargo xtask boot xen-xl`: dom0's shell on this terminal, the release
/// disk mounted, the README's commands printed.
pub fn interactive(ctx: &Ctx, inputs: &Inputs, host: &Host) -> Result<()> {
    let r = inputs
        .release
        .as_ref()
        .context("xen-xl needs the release files")?;
    let readme = readme_of(&r.xen_tarball)?;
    let run = ctx.cache.temp_dir("boot-xen-xl")?;
    let disk = release_disk(run.path(), &readme, r)?;
    let serial = ctx.logs().join("console-xen-xl.xen-serial.log");
    let mut cmd = qemu_command(host, &disk, &[], &serial);
    eprintln!(
        "==> booting Xen and dom0 (leave with `echo o > /proc/sysrq-trigger` in dom0; Xen's serial line: {}); at its prompt:\n    cd {RELEASE_DIR}\n    {}\n    {}\n    {}",
        serial.display(),
        readme.untar, readme.link, readme.create
    );
    let status = cmd.status().context("cannot start qemu")?;
    ensure!(status.success(), "qemu exited with {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "Unpack it:\n\n  tar -C /root -xzf finnix-127-xen.tar.gz\n  ln -s /path/to/finnix-127-amd64.iso /root/finnix.iso\n  xl create -c /root/finnix-conf 'name=\"finnix\"'\n\nxl reads `name=\"finnix\"` ...\n";

    #[test]
    fn the_readme_commands_are_taken_as_written() {
        let r = readme_commands(README).unwrap();
        assert_eq!(r.untar, "tar -C /root -xzf finnix-127-xen.tar.gz");
        assert_eq!(
            r.link,
            "ln -s /srv/release/finnix-127-amd64.iso /root/finnix.iso"
        );
        assert_eq!(r.create, "xl create -c /root/finnix-conf 'name=\"finnix\"'");
        assert_eq!(r.tarball, "finnix-127-xen.tar.gz");
        assert_eq!(r.iso, "finnix-127-amd64.iso");
    }

    #[test]
    fn a_readme_without_its_commands_is_refused() {
        let e = readme_commands("  tar -C /root -xzf x.tar.gz\n").unwrap_err();
        assert!(e.contains("no `ln -s ...` line"), "{e}");
        let twice = format!("{README}  xl create -c other\n");
        assert!(readme_commands(&twice)
            .unwrap_err()
            .contains("2 `xl create ...` lines"));
    }

    #[test]
    fn the_shipped_readme_renders_runnable_commands() {
        let text = include_str!("../../../configs/xen/README")
            .replace("@TARBALL@", "finnix-1-xen.tar.gz")
            .replace("@ISO@", "finnix-1-amd64.iso");
        let r = readme_commands(&text).unwrap();
        // xl needs the quotes that xm did not.
        assert_eq!(r.create, "xl create -c /root/finnix-conf 'name=\"finnix\"'");
        assert_eq!(r.iso, "finnix-1-amd64.iso");
    }
}
