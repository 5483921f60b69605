//! `configs/finnix.toml`: the typed build configuration (pure: parsing and
//! validation only; the caller reads the file).

use std::fmt;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Config {
    pub distribution: Distribution,
    pub kernel: Kernel,
    pub metal: Metal,
    pub rootfs: RootfsConfig,
    pub squashfs: SquashfsOptions,
}

/// What boots the ISO on hardware: Debian's packages, each resolved to an
/// exact version and pinned in `finnix.lock` (`[debian-package.<role>]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Metal {
    /// The signed kernel's metapackage (`linux-image-amd64`): it names the
    /// exact kernel package, which is what is fetched and pinned.
    pub kernel: String,
    /// shim, signed by Microsoft's UEFI CA: the first stage of Secure Boot.
    pub shim: String,
    /// shim's MokManager (mmx64.efi).
    pub shim_helpers: String,
    /// GRUB signed by Debian (gcdx64.efi, the removable-media image).
    pub grub: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RootfsConfig {
    /// The profile `dist` and the stages build unless told otherwise.
    pub default_profile: String,
}

/// How the live root is packed: `[squashfs]` in finnix.toml, or the
/// `squashfs` job's options. The one place its rule is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SquashfsOptions {
    pub compression: Compression,
    /// Bytes, a power of two from 4096 to 1048576.
    pub block_size: u32,
}

impl SquashfsOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        let b = self.block_size;
        if !(4096..=1 << 20).contains(&b) || !b.is_power_of_two() {
            anyhow::bail!("squashfs block size {b} is invalid: expected a power of two from 4096 (4K) to 1048576 (1M)");
        }
        Ok(())
    }
}

/// The squashfs compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

/// The file as written; [`Config::parse`] checks it and builds a [`Config`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawConfig {
    distribution: Distribution,
    kernel: RawKernel,
    metal: Metal,
    rootfs: RootfsConfig,
    squashfs: SquashfsOptions,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Distribution {
    pub name: String,
    pub version: String,
    pub volume_label: String,
    pub publisher: String,
    pub hostname: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawKernel {
    source: SourceKind,
    package: Option<String>,
    snapshot: Option<String>,
    snapshot_url: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
    localversion: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum SourceKind {
    #[serde(rename = "debian")]
    Debian,
    #[serde(rename = "kernel.org")]
    KernelOrg,
}

#[derive(Debug, Clone)]
pub struct Kernel {
    pub source: KernelSource,
    /// Appended to every kernel release (`-um-<localversion>`, `-<localversion>`).
    pub localversion: String,
}

/// Where the kernel source tarball comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// The tarball inside Debian's `linux-source-X.Y` package, from the
    /// live archive or a snapshot of it (time stamp, URL template).
    Debian {
        package: String,
        snapshot: Option<(String, String)>,
    },
    /// A kernel.org tarball: fixed url and sha256.
    KernelOrg { url: String, sha256: String },
}

/// A configuration error, located in its file.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of byte offset `pos` in `text`.
pub fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parse any TOML document into `T`, reporting errors as `file:line:column: message`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
        ConfigError {
            file: file.display().to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })
}

/// Where the kernel source comes from, checked: the keys of one kind only,
/// a linux-source package, or a kernel.org URL with its sha256.
fn kernel_source(
    k: &RawKernel,
    at: &dyn Fn(&str, String) -> ConfigError,
) -> Result<KernelSource, ConfigError> {
    let only = |present: &[(&str, bool)], kind: &str| -> Result<(), ConfigError> {
        match present.iter().find(|(_, p)| *p) {
            Some((key, _)) => Err(at(
                key,
                format!("{key} does not apply to source = \"{kind}\""),
            )),
            None => Ok(()),
        }
    };
    Ok(match k.source {
        SourceKind::Debian => {
            only(
                &[("url", k.url.is_some()), ("sha256", k.sha256.is_some())],
                "debian",
            )?;
            let package = k.package.clone().ok_or_else(|| {
                at(
                    "source",
                    "source = \"debian\" needs package = \"linux-source-X.Y\"".into(),
                )
            })?;
            if !package.starts_with("linux-source-") {
                return Err(at(
                    "package",
                    format!("invalid package {package:?}: expected a linux-source-X.Y package"),
                ));
            }
            let snapshot = match &k.snapshot {
                None => None,
                Some(ts) if is_snapshot_timestamp(ts) => Some((
                    ts.clone(),
                    k.snapshot_url.clone().unwrap_or_else(default_snapshot_url),
                )),
                Some(ts) => {
                    return Err(at(
                        "snapshot",
                        format!(
                        "invalid snapshot {ts:?}: expected a time stamp like \"20261127T000000Z\""
                    ),
                    ))
                }
            };
            KernelSource::Debian { package, snapshot }
        }
        SourceKind::KernelOrg => {
            only(
                &[
                    ("package", k.package.is_some()),
                    ("snapshot", k.snapshot.is_some()),
                ],
                "kernel.org",
            )?;
            let url = k.url.clone().ok_or_else(|| {
                at(
                    "source",
                    "source = \"kernel.org\" needs url = \"...\"".into(),
                )
            })?;
            let sha256 = k.sha256.clone().ok_or_else(|| {
                at(
                    "source",
                    "source = \"kernel.org\" needs sha256 = \"...\"".into(),
                )
            })?;
            if !is_sha256(&sha256) {
                return Err(at(
                    "sha256",
                    format!("invalid sha256 {sha256:?}: expected 64 lowercase hex digits"),
                ));
            }
            if !(url.starts_with("https://")
                || url.starts_with("http://")
                || url.starts_with("file://"))
            {
                return Err(at(
                    "url",
                    format!("invalid url {url:?}: expected https://, http:// or file://"),
                ));
            }
            KernelSource::KernelOrg { url, sha256 }
        }
    })
}

impl Config {
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = parse_toml(text, file)?;
        let at = |key: &str, message: String| {
            let pos = find_key(text, key).unwrap_or(0);
            let (line, column) = line_column(text, pos);
            ConfigError {
                file: file.display().to_string(),
                line,
                column,
                message,
            }
        };
        let d = &raw.distribution;
        let label = &d.volume_label;
        if label.is_empty()
            || label.len() > 32
            || !label
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(at(
                "volume-label",
                format!("invalid volume-label {label:?}: expected 1 to 32 characters from A-Z, 0-9 and _"),
            ));
        }
        let version = &d.version;
        if version.is_empty()
            || !version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-+~_".contains(c))
        {
            return Err(at(
                "version",
                format!("invalid version {version:?}: expected letters, digits and . - + ~ _"),
            ));
        }
        let k = raw.kernel;
        let lv = &k.localversion;
        if lv.is_empty()
            || !lv
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            return Err(at(
                "localversion",
                format!(
                    "invalid localversion {lv:?}: expected letters, digits, . and _ (no dashes)"
                ),
            ));
        }
        let source = kernel_source(&k, &at)?;
        if let Err(e) = raw.squashfs.validate() {
            return Err(at("block-size", e.to_string()));
        }
        Ok(Config {
            distribution: raw.distribution,
            kernel: Kernel {
                source,
                localversion: k.localversion,
            },
            metal: raw.metal,
            rootfs: raw.rootfs,
            squashfs: raw.squashfs,
        })
    }
}

/// A root filesystem profile: `configs/profiles/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Profile {
    /// One line for `--help` and logs.
    pub description: String,
    /// How the base tree is made.
    pub base: Base,
    /// Debian suite for `base = "debian"`.
    #[serde(default)]
    pub suite: Option<String>,
    /// Debian mirror for `base = "debian"` (suite and suite-updates come from it).
    #[serde(default)]
    pub mirror: Option<String>,
    /// Debian security mirror (suite-security).
    #[serde(default = "default_security_mirror")]
    pub security_mirror: String,
    /// Debian's archive as it was at this time (`20261127T000000Z`): the
    /// mirrors become the snapshot archive's (`snapshot-url`), so a later
    /// rebuild installs the very same package versions.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Where a snapshot is served: `{archive}` (`debian`,
    /// `debian-security`) and `{timestamp}` are filled in.
    #[serde(default = "default_snapshot_url")]
    pub snapshot_url: String,
    /// Archive components for `base = "debian"` (`non-free-firmware` for
    /// the firmware packages).
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// The keyring apt trusts for the archive (a private mirror's signing
    /// key); default Debian's archive keyring.
    #[serde(default = "default_keyring")]
    pub keyring: String,
    /// The root filesystem carries every module of Debian's kernel (the
    /// ISO's kernel on hardware), for udev and modprobe.
    #[serde(default)]
    pub metal_modules: bool,
    /// Package list file (relative to configs/profiles/) for `base = "debian"`.
    #[serde(default)]
    pub packages: Option<String>,
    /// Folders under live/overlay/ copied over the base tree, in order.
    pub overlays: Vec<String>,
    /// Guest memory (MiB) the boot checks give this profile.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// sysvinit scripts (Debian bases) started at boot.
    #[serde(default)]
    pub enable_services: Vec<String>,
    /// sysvinit scripts installed but not started at boot (`service X start` by hand).
    #[serde(default)]
    pub disable_services: Vec<String>,
    /// sysvinit scripts the live system's own replaces (removed from the tree).
    #[serde(default)]
    pub remove_init_scripts: Vec<String>,
}

fn default_memory() -> u32 {
    64
}

pub fn default_snapshot_url() -> String {
    "http://snapshot.debian.org/archive/{archive}/{timestamp}/".into()
}

/// A snapshot time stamp as snapshot.debian.org writes it: `YYYYMMDDTHHMMSSZ`.
pub fn is_snapshot_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

/// Debian's archive keyring (package debian-archive-keyring).
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// The Debian release and archive that a profile without its own `suite`
/// and `mirror` takes, as do the source archive's deb-src lines, the
/// kernel source's snapshot and the checks' plain Debian roots: named once.
pub const DEBIAN_SUITE: &str = "bookworm";
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

fn default_keyring() -> String {
    DEBIAN_KEYRING.into()
}

fn default_security_mirror() -> String {
    "http://deb.debian.org/debian-security".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Base {
    /// Debian's static busybox and nothing else.
    Busybox,
    /// A Debian tree made by mmdebstrap.
    Debian,
}

impl Profile {
    pub fn load(root: &Path, name: &str) -> anyhow::Result<Profile> {
        let rel = format!("configs/profiles/{name}.toml");
        let path = root.join(&rel);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let known: Vec<String> = std::fs::read_dir(root.join("configs/profiles"))
                .map(|d| {
                    d.filter_map(|e| {
                        e.ok()?
                            .file_name()
                            .to_str()?
                            .strip_suffix(".toml")
                            .map(String::from)
                    })
                    .collect()
                })
                .unwrap_or_default();
            anyhow::anyhow!(
                "cannot read profile {name:?} ({rel}: {e}); known profiles: {}",
                known.join(", ")
            )
        })?;
        let profile: Profile = parse_toml(&text, Path::new(&rel))?;
        if profile.base == Base::Debian {
            for (key, v) in [
                ("suite", &profile.suite),
                ("mirror", &profile.mirror),
                ("packages", &profile.packages),
            ] {
                if v.is_none() {
                    anyhow::bail!("{rel}: base = \"debian\" needs {key} = \"...\"");
                }
            }
        }
        if let Some(ts) = &profile.snapshot {
            if !is_snapshot_timestamp(ts) {
                anyhow::bail!("{rel}: snapshot = {ts:?} is not a time stamp like \"20261127T000000Z\" (UTC, as snapshot.debian.org writes it)");
            }
            if !profile.snapshot_url.contains("{timestamp}") {
                anyhow::bail!(
                    "{rel}: snapshot-url = {:?} has no {{timestamp}}",
                    profile.snapshot_url
                );
            }
        }
        Ok(profile)
    }
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Byte offset of the first line that assigns `key`.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(offset + (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[distribution]
name = "Finnix"
version = "127-dev"
volume-label = "FINNIX_127"
publisher = "x"
hostname = "finnix"

[kernel]
source = "debian"
package = "linux-source-6.1"
localversion = "finnix"

[metal]
kernel = "linux-image-amd64"
shim = "shim-signed"
shim-helpers = "shim-helpers-amd64-signed"
grub = "grub-efi-amd64-signed"

[rootfs]
default-profile = "mini"

[squashfs]
compression = "xz"
block-size = 131072
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("configs/finnix.toml"))
    }

    #[test]
    fn parses_the_shipped_config() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/finnix.toml"
        ))
        .unwrap();
        let config = parse(&text).unwrap();
        assert_eq!(config.distribution.name, "Finnix");
        assert!(matches!(config.kernel.source, KernelSource::Debian { .. }));
    }

    #[test]
    fn parses_both_kernel_sources() {
        let config = parse(GOOD).unwrap();
        assert_eq!(
            config.kernel.source,
            KernelSource::Debian {
                package: "linux-source-6.1".into(),
                snapshot: None,
            }
        );
        // A snapshot of the archive: the time stamp checked, the default URL.
        let snap = parse(&GOOD.replace(
            "package = \"linux-source-6.1\"",
            "package = \"linux-source-6.1\"\nsnapshot = \"20261127T000000Z\"",
        ))
        .unwrap();
        assert_eq!(
            snap.kernel.source,
            KernelSource::Debian {
                package: "linux-source-6.1".into(),
                snapshot: Some(("20261127T000000Z".into(), default_snapshot_url())),
            }
        );
        let bad = parse(&GOOD.replace(
            "package = \"linux-source-6.1\"",
            "package = \"linux-source-6.1\"\nsnapshot = \"yesterday\"",
        ))
        .unwrap_err();
        assert!(bad.to_string().contains("snapshot"), "{bad}");
        let sha = "a".repeat(64);
        let text = GOOD.replace(
            "source = \"debian\"\npackage = \"linux-source-6.1\"",
            &format!("source = \"kernel.org\"\nurl = \"https://cdn.kernel.org/x.tar.xz\"\nsha256 = \"{sha}\""),
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.kernel.source,
            KernelSource::KernelOrg {
                url: "https://cdn.kernel.org/x.tar.xz".into(),
                sha256: sha
            }
        );
    }

    #[test]
    fn type_error_has_line_and_column() {
        let text = GOOD.replace("version = \"127-dev\"", "version = 127");
        let err = parse(&text).unwrap_err();
        assert_eq!((err.line, err.column), (4, 11), "{err}");
        assert!(err.message.contains("expected a string"), "{err}");
        assert!(
            err.to_string().starts_with("configs/finnix.toml:4:11: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace(
            "hostname = \"finnix\"",
            "hostname = \"finnix\"\nhostnam = \"x\"",
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, 8, "{err}");
        assert!(err.message.contains("unknown field `hostnam`"), "{err}");
    }

    #[test]
    fn missing_key_and_bad_syntax_are_located() {
        let err = parse(&GOOD.replace("publisher = \"x\"\n", "")).unwrap_err();
        assert!(err.message.contains("missing field `publisher`"), "{err}");
        let err = parse(&GOOD.replace("name = \"Finnix\"", "name = \"Finnix")).unwrap_err();
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn unknown_kernel_source_lists_the_choices() {
        let err = parse(&GOOD.replace("source = \"debian\"", "source = \"gentoo\"")).unwrap_err();
        assert!(
            err.message.contains("debian") && err.message.contains("kernel.org"),
            "{err}"
        );
    }

    #[test]
    fn validation_errors_point_at_the_key() {
        let err = parse(&GOOD.replace("FINNIX_127", "finnix 127")).unwrap_err();
        assert_eq!((err.line, err.column), (5, 1), "{err}");
        assert!(err.message.contains("volume-label"), "{err}");
        let err = parse(&GOOD.replace("localversion = \"finnix\"", "localversion = \"-finnix\""))
            .unwrap_err();
        assert_eq!(err.line, 12, "{err}");
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }
}
