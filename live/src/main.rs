//! `finnix`: the live system's own command.
//!
//! - `finnix boot early|start|stop`: the kernel filesystems; the boot banner
//!   and the shutdown lines
//!   (called by the init scripts of every profile);
//! - `finnix console <tty>`: a root shell without login on a console;
//! - `finnix create`, `list`, `stop`: UML guests of this system (see create.rs);
//! - `finnix wifi-connect` (`/usr/sbin/wifi-connect`): join a Wi-Fi network.

mod access;
mod boot;
mod console;
mod create;
mod fsprobe;
mod fstab;
mod guests;
mod remote;
mod sysinfo;
mod wifi;

const USAGE: &str = "usage: finnix <command>

commands:
  boot early       mount /proc, /sys, /run, /dev/pts, /dev/shm if needed,
                   set the host name, create /run/utmp (first in rcS)
  boot start       print the Finnix boot lines: partitions and /etc/fstab,
                   swap, background DHCP, the ready banner (init scripts)
  boot stop        stop processes, take the network down, turn swap off,
                   unmount file systems (init scripts, at halt)
  console <tty>    a root shell without login on /dev/<tty>, if this mode
                   uses that console (tty0: UML, hvc0: Xen, tty1/ttyS0: hardware)
  create [options] start a UML guest copy of this system (finnix create --help)
  list             the guests: name, state, address, memory
  stop NAME...     shut guests down (--all: every guest)
  wifi-connect     join a Wi-Fi network (wifi-connect --help)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match args.as_slice() {
        ["boot", "early"] => boot::early(),
        ["boot", "start"] => boot::start(),
        ["boot", "stop"] => boot::stop(),
        ["console", tty] => console::run(tty),
        ["create", rest @ ..] => create::create(rest),
        ["list"] => create::list(),
        ["stop", rest @ ..] => create::stop(rest),
        ["wifi-connect", rest @ ..] => wifi::command(rest),
        ["guest-run", name] => create::guest_run(name),
        ["mode"] => {
            println!("{}", boot::mode().name());
            0
        }
        ["--help" | "-h" | "help"] => {
            print!("{USAGE}");
            0
        }
        _ => {
            eprint!("{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
