//! Facts about the running system, from the texts the kernel and dpkg keep
//! (pure parsers; the caller reads the files).

pub use finnix_contract::GuestMode as Mode;

/// The line that greets a user in this mode.
pub fn welcome(mode: Mode) -> &'static str {
    match mode {
        Mode::Uml => "Welcome to Finnix for User Mode Linux!",
        Mode::Xen => "Welcome to Finnix for Xen!",
        Mode::Metal => "Welcome to Finnix!",
    }
}

/// The consoles that get a root shell in this mode.
pub fn consoles(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Uml => &["tty0"],
        Mode::Xen => &["hvc0"],
        Mode::Metal => &["tty1", "ttyS0"],
    }
}

/// UML's `/proc/cpuinfo` carries the host's uname in a `host` line.
pub fn uml_host(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "host").then(|| v.trim().to_string())
    })
}

/// Packages dpkg considers installed, from `/var/lib/dpkg/status`.
pub fn installed_packages(status: &str) -> usize {
    finnix_contract::dpkg::installed(status).count()
}

pub use finnix_contract::boot_env::field as release_field;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uml_host_line() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: User Mode Linux\nmodel name\t: UML\nhost\t\t: Linux vm 6.18.44 #1 SMP x86_64\n";
        assert_eq!(
            uml_host(cpuinfo).as_deref(),
            Some("Linux vm 6.18.44 #1 SMP x86_64")
        );
        assert_eq!(uml_host("processor : 0\n"), None);
    }

    #[test]
    fn counts_installed_packages() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: deinstall ok config-files\n\nPackage: c\nStatus: install ok installed\n";
        assert_eq!(installed_packages(status), 2);
        assert_eq!(installed_packages(""), 0);
    }
}
