//! Facts about the running system, from the texts the kernel and dpkg keep
//! (pure parsers; the caller reads the files).

/// How the live system runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Uml,
    Xen,
    Metal,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Uml => "uml",
            Mode::Xen => "xen",
            Mode::Metal => "metal",
        }
    }

    /// Guests skip hardware autodetection.
    pub fn is_guest(self) -> bool {
        self != Mode::Metal
    }

    pub fn welcome(self) -> &'static str {
        match self {
            Mode::Uml => "Welcome to Finnix for User Mode Linux!",
            Mode::Xen => "Welcome to Finnix for Xen!",
            Mode::Metal => "Welcome to Finnix!",
        }
    }

    /// The consoles that get a root shell in this mode.
    pub fn consoles(self) -> &'static [&'static str] {
        match self {
            Mode::Uml => &["tty0"],
            Mode::Xen => &["hvc0"],
            Mode::Metal => &["tty1", "ttyS0"],
        }
    }
}

/// `uml` / `xen` on the command line win; then what the system says of itself.
pub fn detect_mode(cmdline: &str, cpuinfo: &str, hypervisor_type: &str) -> Mode {
    for word in cmdline.split_whitespace() {
        match word {
            "uml" => return Mode::Uml,
            "xen" => return Mode::Xen,
            _ => {}
        }
    }
    if cpuinfo
        .lines()
        .any(|l| l.starts_with("vendor_id") && l.contains("User Mode Linux"))
    {
        Mode::Uml
    } else if hypervisor_type.trim() == "xen" {
        Mode::Xen
    } else {
        Mode::Metal
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
    status
        .split("\n\n")
        .filter(|stanza| {
            stanza
                .lines()
                .any(|l| l.trim_end() == "Status: install ok installed")
        })
        .count()
}

/// A `KEY=value` file (os-release, finnix-release); quotes removed.
pub fn release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_from_cmdline_then_detection() {
        assert_eq!(detect_mode("root=/dev/ubda uml", "", ""), Mode::Uml);
        assert_eq!(detect_mode("console=hvc0 xen", "", ""), Mode::Xen);
        assert_eq!(
            detect_mode("", "processor\t: 0\nvendor_id\t: User Mode Linux\n", ""),
            Mode::Uml
        );
        assert_eq!(
            detect_mode("", "vendor_id\t: GenuineIntel\n", "xen\n"),
            Mode::Xen
        );
        assert_eq!(
            detect_mode("quiet", "vendor_id\t: GenuineIntel\n", ""),
            Mode::Metal
        );
        assert_eq!(detect_mode("umlaut xenon", "", ""), Mode::Metal);
    }

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

    #[test]
    fn release_fields() {
        let text = "NAME=\"Finnix\"\nVERSION=127-dev\n";
        assert_eq!(release_field(text, "VERSION").as_deref(), Some("127-dev"));
        assert_eq!(release_field(text, "NAME").as_deref(), Some("Finnix"));
        assert_eq!(release_field(text, "ID"), None);
    }
}
