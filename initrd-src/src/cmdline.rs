//! The kernel command line, as the initramfs reads it (pure).

pub use finnix_contract::GuestMode;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// `uml` or `xen` was given.
    pub mode: Option<GuestMode>,
    /// `squashroot`: the block device is the squashfs itself.
    pub squashroot: bool,
    /// `root=<device>`: use this device instead of scanning.
    pub root: Option<String>,
    /// `toram`: copy the squashfs into RAM so the medium can go.
    pub toram: bool,
    /// `debug`: say every step.
    pub debug: bool,
    /// `break`: a shell before switching root.
    pub break_shell: bool,
    /// `rootwait=<seconds>`: how long to wait for the medium (default 30).
    pub wait_secs: Option<u64>,
    /// `fetch=<http URL>`: a network boot; the squashfs is downloaded into RAM.
    pub fetch: Option<String>,
    /// `fetchsha256=<hex>`: the sha256 the downloaded squashfs must have.
    pub fetch_sha256: Option<String>,
    /// `findiso=<path>`: boot the ISO file at this path on a disk's filesystem.
    pub findiso: Option<String>,
    /// `ip=<value>` as given (parsed by `finnix_contract::ip` when the
    /// network is brought up, so that a mistake is reported there).
    pub ip: Option<String>,
}

/// Parse `/proc/cmdline`. Unknown words (and the obsolete `mode=tt`) are ignored.
pub fn parse(cmdline: &str) -> Params {
    let mut p = Params::default();
    for word in finnix_contract::cmdline::words(cmdline) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        match (key, value) {
            ("uml", None) => p.mode = Some(GuestMode::Uml),
            ("xen", None) => p.mode = Some(GuestMode::Xen),
            ("squashroot", None) => p.squashroot = true,
            ("toram", None) => p.toram = true,
            ("debug", None) => p.debug = true,
            ("break", None) => p.break_shell = true,
            ("root", Some(dev)) if !dev.is_empty() => p.root = Some(normalize_device(dev)),
            ("rootwait", Some(secs)) => p.wait_secs = secs.parse().ok(),
            ("fetch", Some(url)) if !url.is_empty() => p.fetch = Some(url.to_string()),
            ("fetchsha256", Some(hex)) => p.fetch_sha256 = Some(hex.to_ascii_lowercase()),
            ("ip", Some(v)) => p.ip = Some(v.to_string()),
            ("findiso", Some(path)) if !path.is_empty() => {
                p.findiso = Some(format!("/{}", path.trim_start_matches('/')))
            }
            _ => {}
        }
    }
    p
}

/// `ubda` → `/dev/ubda`; `/dev/ubda` stays. UML's numeric default
/// `root=98:0` means "no choice" and scanning applies.
fn normalize_device(dev: &str) -> String {
    if dev.starts_with('/') {
        dev.to_string()
    } else {
        format!("/dev/{dev}")
    }
}

impl Params {
    /// `root=` that names a device path (not UML's `98:0` default).
    pub fn root_device(&self) -> Option<&str> {
        self.root
            .as_deref()
            .filter(|r| !r.trim_start_matches("/dev/").contains(':'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_command_lines() {
        // What UML leaves in /proc/cmdline for the spec's two command lines.
        let p = parse("mem=64M initrd=initrd.img root=/dev/ubda ubdar=finnix.iso uml console=tty0");
        assert_eq!(p.mode, Some(GuestMode::Uml));
        assert_eq!(p.root_device(), Some("/dev/ubda"));
        assert!(!p.squashroot && !p.toram && !p.debug && !p.break_shell);

        let p = parse("mode=tt mem=64M root=/dev/ubda ubdar=FINNIX squashroot uml");
        assert!(p.squashroot);
        assert_eq!(p.mode, Some(GuestMode::Uml));
    }

    #[test]
    fn xen_and_flags() {
        let p = parse("console=hvc0 xen toram debug break root=xvda rootwait=5");
        assert_eq!(p.mode, Some(GuestMode::Xen));
        assert!(p.toram && p.debug && p.break_shell);
        assert_eq!(p.root_device(), Some("/dev/xvda"));
        assert_eq!(p.wait_secs, Some(5));
    }

    #[test]
    fn unknown_words_and_mode_tt_are_ignored() {
        assert_eq!(parse("mode=tt quiet splash foo=bar 3"), Params::default());
        assert_eq!(parse(""), Params::default());
        // A word that merely starts like a known one is not it.
        assert_eq!(parse("umlx xenial debugging root="), Params::default());
    }

    #[test]
    fn network_boot_words() {
        let p = parse("fetch=http://10.0.2.2:8080/f.squashfs fetchsha256=AB01 ip=dhcp");
        assert_eq!(p.fetch.as_deref(), Some("http://10.0.2.2:8080/f.squashfs"));
        assert_eq!(p.fetch_sha256.as_deref(), Some("ab01"));
        assert_eq!(p.ip.as_deref(), Some("dhcp"));
        assert_eq!(parse("fetch=").fetch, None);
        assert_eq!(
            parse("findiso=isos/f.iso").findiso.as_deref(),
            Some("/isos/f.iso")
        );
        assert_eq!(parse("findiso=/f.iso").findiso.as_deref(), Some("/f.iso"));
    }

    #[test]
    fn uml_default_root_means_scan() {
        let p = parse("root=98:0 uml");
        assert_eq!(p.root_device(), None);
    }

    #[test]
    fn quotes_group_words() {
        let p = parse("foo=\"a b\" toram");
        assert!(p.toram);
        assert_eq!(
            finnix_contract::cmdline::words("a \"b c\" d"),
            ["a", "b c", "d"]
        );
    }
}
