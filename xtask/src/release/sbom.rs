//! The release's SBOM, `finnix-<version>.spdx.json` (SPDX 2.3, JSON): what
//! each artifact holds and where it comes from.
//!
//! - every Debian binary package of the root filesystem (dpkg's status):
//!   version, source package, licences from its machine-readable
//!   `copyright` file (DEP-5 `License:` fields, Debian's short names mapped
//!   to SPDX identifiers, others as `LicenseRef-`), `NOASSERTION` without one;
//! - the kernel source as pinned, and each of our patches (PATCH_APPLIED);
//! - the UML and domU kernels built from them, Debian's signed kernel, shim
//!   and GRUB as pinned;
//! - the Rust crates compiled into `/init` and `finnix` (`cargo metadata`:
//!   the normal dependencies of both, with their declared licences);
//! - busybox (the initramfs), GRUB and syslinux as shipped.
//!
//! Pure: the caller gathers the facts ([`Facts`]); this writes the document,
//! sorted, dated by SOURCE_DATE_EPOCH.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// One component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Component {
    /// Kind, for the SPDX id: `deb`, `crate`, `kernel`, `patch`, ...
    pub kind: String,
    pub name: String,
    pub version: String,
    /// An SPDX licence expression, or `NOASSERTION`.
    pub license: String,
    pub download: String,
    /// (purl or other locator)
    pub purl: Option<String>,
    pub sha256: Option<String>,
    pub comment: Option<String>,
    /// Debian's source package, `name version`.
    pub source: Option<String>,
}

/// An artifact of the release and what it contains (ids of components).
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub sha256: String,
    pub contains: Vec<usize>,
}

pub struct Facts {
    pub name: String,
    pub version: String,
    pub publisher: String,
    pub epoch: i64,
    pub components: Vec<Component>,
    pub artifacts: Vec<Artifact>,
    /// (patch index, kernel index): patch applied to kernel.
    pub patches: Vec<(usize, usize)>,
    /// (built index, source index): generated from.
    pub generated_from: Vec<(usize, usize)>,
    /// Identifies the document (the git commit and profile).
    pub namespace_suffix: String,
}

/// Debian's short licence names (copyright-format 1.0) as SPDX ids.
fn spdx_id_for(debian: &str) -> Option<&'static str> {
    let d = debian.trim();
    Some(match d {
        "GPL-1" => "GPL-1.0-only",
        "GPL-1+" => "GPL-1.0-or-later",
        "GPL-2" => "GPL-2.0-only",
        "GPL-2+" => "GPL-2.0-or-later",
        "GPL-3" => "GPL-3.0-only",
        "GPL-3+" => "GPL-3.0-or-later",
        "LGPL-2" => "LGPL-2.0-only",
        "LGPL-2+" => "LGPL-2.0-or-later",
        "LGPL-2.1" => "LGPL-2.1-only",
        "LGPL-2.1+" => "LGPL-2.1-or-later",
        "LGPL-3" => "LGPL-3.0-only",
        "LGPL-3+" => "LGPL-3.0-or-later",
        "AGPL-3" => "AGPL-3.0-only",
        "AGPL-3+" => "AGPL-3.0-or-later",
        "GFDL-1.2" | "GFDL-1.2+" => "GFDL-1.2-or-later",
        "GFDL-1.3" | "GFDL-1.3+" => "GFDL-1.3-or-later",
        "Expat" | "MIT" => "MIT",
        "BSD-2-clause" | "BSD-2-Clause" => "BSD-2-Clause",
        "BSD-3-clause" | "BSD-3-Clause" => "BSD-3-Clause",
        "BSD-4-clause" | "BSD-4-Clause" => "BSD-4-Clause",
        "ISC" => "ISC",
        "Apache-2.0" | "Apache-2" => "Apache-2.0",
        "Artistic" | "Artistic-1.0" => "Artistic-1.0",
        "Artistic-2.0" => "Artistic-2.0",
        "MPL-1.1" => "MPL-1.1",
        "MPL-2.0" => "MPL-2.0",
        "Zlib" | "zlib" => "Zlib",
        "PSF-2" | "Python" | "PSF-2.0" => "Python-2.0",
        "OpenSSL" => "OpenSSL",
        "CC0-1.0" | "CC0" => "CC0-1.0",
        "0BSD" => "0BSD",
        "Unlicense" => "Unlicense",
        "X11" => "X11",
        "curl" => "curl",
        "BSL-1.0" => "BSL-1.0",
        "WTFPL" => "WTFPL",
        "FSFAP" => "FSFAP",
        "FSFUL" => "FSFUL",
        "FSFULLR" => "FSFULLR",
        "Sleepycat" => "Sleepycat",
        "Libpng" | "libpng" => "Libpng",
        "Unicode-DFS-2016" => "Unicode-DFS-2016",
        _ => return None,
    })
}

/// What an SPDX id may hold (letters, digits, `.`, `-`); the rest as `-`.
fn id_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A `LicenseRef-` for a licence without an SPDX id.
pub fn license_ref(name: &str) -> String {
    format!("LicenseRef-{}", id_chars(name.trim()).trim_matches('-'))
}

/// One DEP-5 `License:` value (its first line) as an SPDX expression:
/// `or`/`and` become `OR`/`AND`, `with ... exception` is kept as a
/// LicenseRef of its own.
pub fn dep5_expression(value: &str) -> String {
    let v = value.trim();
    let mut out = Vec::new();
    for (i, word) in v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let _ = i;
        out.push(word.to_string());
    }
    // Re-join into terms separated by operators.
    let mut terms: Vec<String> = Vec::new();
    let mut ops: Vec<&str> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for w in out {
        match w.to_ascii_lowercase().as_str() {
            "or" | "and" => {
                terms.push(current.join(" "));
                current.clear();
                ops.push(if w.eq_ignore_ascii_case("or") {
                    "OR"
                } else {
                    "AND"
                });
            }
            _ => current.push(w),
        }
    }
    terms.push(current.join(" "));
    let mapped: Vec<String> = terms
        .iter()
        .map(|t| match spdx_id_for(t) {
            Some(id) => id.to_string(),
            None if t.is_empty() => "NOASSERTION".to_string(),
            None => license_ref(t),
        })
        .collect();
    if mapped.iter().any(|m| m == "NOASSERTION") {
        return "NOASSERTION".into();
    }
    let mut s = mapped[0].clone();
    for (op, t) in ops.iter().zip(&mapped[1..]) {
        s = format!("{s} {op} {t}");
    }
    if ops.is_empty() {
        s
    } else {
        format!("({s})")
    }
}

/// A machine-readable copyright file's licences (the `License:` of each
/// `Files:` paragraph), as one SPDX expression; None for a free-form file.
pub fn copyright_license(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    if !first.starts_with("Format:") || !first.contains("copyright-format") {
        return None;
    }
    let mut set = BTreeSet::new();
    for para in text.split("\n\n") {
        let is_files = para.lines().any(|l| l.starts_with("Files:"));
        if !is_files {
            continue;
        }
        if let Some(l) = para.lines().find_map(|l| l.strip_prefix("License:")) {
            let e = dep5_expression(l);
            if e != "NOASSERTION" {
                set.insert(e);
            }
        }
    }
    if set.is_empty() {
        return None;
    }
    let all: Vec<String> = set.into_iter().collect();
    Some(if all.len() == 1 {
        all[0].clone()
    } else {
        all.join(" AND ")
    })
}

/// dpkg's status file: installed packages (name, version, arch, source).
pub fn dpkg_status(text: &str) -> Vec<(String, String, String, String)> {
    use finnix_contract::dpkg::{field, installed, source_of};
    let mut out: Vec<_> = installed(text)
        .filter_map(|para| {
            let (name, version) = (field(para, "Package")?, field(para, "Version")?);
            let arch = field(para, "Architecture").unwrap_or_default();
            // Source: `src` or `src (version)`; absent: the package's own name.
            let (src, src_version) = source_of(name, version, field(para, "Source"));
            Some((
                name.to_string(),
                version.to_string(),
                arch.to_string(),
                format!("{src} {src_version}"),
            ))
        })
        .collect();
    out.sort();
    out
}

/// A Cargo licence field as an SPDX expression (`MIT/Apache-2.0` is the
/// old spelling of `MIT OR Apache-2.0`).
pub fn cargo_license(s: Option<&str>) -> String {
    match s {
        None => "NOASSERTION".into(),
        Some(l) if l.contains('/') => l.split('/').map(str::trim).collect::<Vec<_>>().join(" OR "),
        Some(l) => l.to_string(),
    }
}

fn spdx_id(kind: &str, name: &str, used: &mut BTreeSet<String>) -> String {
    let clean = id_chars(&format!("{kind}-{name}"));
    let mut id = format!("SPDXRef-{clean}");
    let mut n = 2;
    while used.contains(&id) {
        id = format!("SPDXRef-{clean}-{n}");
        n += 1;
    }
    used.insert(id.clone());
    id
}

fn iso8601(epoch: i64) -> String {
    crate::support::date::iso8601(epoch)
}

/// A component's SPDX package.
fn component_package(c: &Component, id: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": c.name,
        "downloadLocation": c.download,
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": c.license,
        "copyrightText": "NOASSERTION",
    });
    if !c.version.is_empty() {
        p["versionInfo"] = json!(c.version);
    }
    if let Some(sha) = &c.sha256 {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sha}]);
    }
    if let Some(purl) = &c.purl {
        p["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }]);
    }
    if let Some(src) = &c.source {
        p["sourceInfo"] = json!(format!("built from the Debian source package {src}"));
    }
    if let Some(comment) = &c.comment {
        p["comment"] = json!(comment);
    }
    p
}

/// The SPDX 2.3 document.
pub fn document(f: &Facts) -> Value {
    let mut used = BTreeSet::new();
    let ids: Vec<String> = f
        .components
        .iter()
        .map(|c| spdx_id(&c.kind, &format!("{}-{}", c.name, c.version), &mut used))
        .collect();
    let art_ids: Vec<String> = f
        .artifacts
        .iter()
        .map(|a| spdx_id("artifact", &a.name, &mut used))
        .collect();
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    let mut packages = Vec::new();
    for (a, id) in f.artifacts.iter().zip(&art_ids) {
        packages.push(json!({
            "SPDXID": id,
            "name": a.name,
            "versionInfo": f.version,
            "supplier": format!("Organization: {}", f.publisher),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": a.sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": if a.name.ends_with(".iso") { "OPERATING-SYSTEM" } else { "ARCHIVE" },
        }));
    }
    for (c, id) in f.components.iter().zip(&ids) {
        for word in c
            .license
            .split(|ch: char| ch == '(' || ch == ')' || ch.is_whitespace())
        {
            if let Some(r) = word.strip_prefix("LicenseRef-") {
                refs.insert(format!("LicenseRef-{r}"), r.to_string());
            }
        }
        packages.push(component_package(c, id));
    }
    let mut rel = Vec::new();
    for id in &art_ids {
        rel.push(json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": id}));
    }
    for (a, id) in f.artifacts.iter().zip(&art_ids) {
        for &c in &a.contains {
            rel.push(json!({"spdxElementId": id, "relationshipType": "CONTAINS", "relatedSpdxElement": ids[c]}));
        }
    }
    for &(p, k) in &f.patches {
        rel.push(json!({"spdxElementId": ids[p], "relationshipType": "PATCH_APPLIED", "relatedSpdxElement": ids[k]}));
    }
    for &(b, s) in &f.generated_from {
        rel.push(json!({"spdxElementId": ids[b], "relationshipType": "GENERATED_FROM", "relatedSpdxElement": ids[s]}));
    }
    let extracted: Vec<Value> = refs
        .iter()
        .map(|(id, name)| {
            json!({
                "licenseId": id,
                "name": name,
                "extractedText": format!("The licence called {name:?} in a Debian package's copyright file (/usr/share/doc/<package>/copyright in the live system)."),
            })
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", f.name.to_lowercase(), f.version),
        "documentNamespace": format!("https://finnix.org/spdx/{}-{}/{}", f.name.to_lowercase(), f.version, f.namespace_suffix),
        "creationInfo": {
            "created": iso8601(f.epoch),
            "creators": [format!("Organization: {}", f.publisher), "Tool: finnix-xtask"],
        },
        "packages": packages,
        "relationships": rel,
        "hasExtractedLicensingInfos": extracted,
    })
}

// ---- gathering the facts (reads the release, runs cargo metadata) ---------

fn purl_deb(name: &str, version: &str, arch: &str) -> String {
    let v = version.replace(':', "%3A").replace('+', "%2B");
    if arch.is_empty() {
        format!("pkg:deb/debian/{name}@{v}")
    } else {
        format!("pkg:deb/debian/{name}@{v}?arch={arch}")
    }
}

/// A package's copyright file in a root filesystem tree (following only
/// links that stay inside the tree).
fn tree_copyright(tree: &std::path::Path, package: &str) -> Option<String> {
    let mut doc = tree.join("usr/share/doc").join(package);
    for _ in 0..4 {
        match std::fs::read_link(&doc) {
            Ok(target) if target.is_relative() => {
                doc = doc.parent()?.join(target);
            }
            Ok(_) => return None,
            Err(_) => break,
        }
    }
    std::fs::read_to_string(doc.join("copyright")).ok()
}

fn deb_copyright(deb: &std::path::Path, package: &str) -> Option<String> {
    crate::cmd!(
        "sh",
        "-c",
        format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xO ./usr/share/doc/{package}/copyright",
            deb.display()
        )
    )
    .output()
    .ok()
}

/// The crates compiled into the live system's programs: the normal
/// dependencies of `roots`, from `cargo metadata`.
fn crates(root: &std::path::Path, roots: &[&str]) -> anyhow::Result<Vec<Component>> {
    let text = crate::cmd!(
        "cargo",
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--filter-platform",
        "x86_64-unknown-linux-gnu"
    )
    .dir(root)
    .output()?;
    let meta = cargo_metadata::MetadataCommand::parse(&text)?;
    let by_id: BTreeMap<&str, &cargo_metadata::Package> = meta
        .packages
        .iter()
        .map(|p| (p.id.repr.as_str(), p))
        .collect();
    let nodes: BTreeMap<&str, &cargo_metadata::Node> = meta
        .resolve
        .as_ref()
        .map(|r| r.nodes.iter().map(|n| (n.id.repr.as_str(), n)).collect())
        .unwrap_or_default();
    let mut todo: Vec<&str> = meta
        .packages
        .iter()
        .filter(|p| roots.contains(&p.name.as_str()))
        .map(|p| p.id.repr.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in nodes.get(id).map(|n| n.deps.as_slice()).unwrap_or_default() {
            let normal = d
                .dep_kinds
                .iter()
                .any(|k| k.kind == cargo_metadata::DependencyKind::Normal);
            if normal {
                todo.push(d.pkg.repr.as_str());
            }
        }
    }
    let mut out = Vec::new();
    for id in seen {
        let Some(p) = by_id.get(id) else { continue };
        let name = p.name.to_string();
        let version = p.version.to_string();
        let registry = p
            .source
            .as_ref()
            .is_some_and(|s| s.repr.starts_with("registry+"));
        out.push(Component {
            kind: "crate".into(),
            license: cargo_license(p.license.as_deref()),
            download: if registry {
                format!("https://crates.io/crates/{name}/{version}")
            } else {
                "NOASSERTION".into()
            },
            purl: registry.then(|| format!("pkg:cargo/{name}@{version}")),
            sha256: None,
            comment: (!registry).then(|| "part of this repository".to_string()),
            source: None,
            name,
            version,
        });
    }
    out.sort();
    Ok(out)
}

/// Everything the SBOM says of a release, read from it: what each
/// artifact holds.
pub fn facts(
    ctx: &crate::support::context::Ctx,
    r: &crate::pipeline::Release,
    artifacts: &[crate::release::checksums::Hashed],
) -> anyhow::Result<Facts> {
    let d = &ctx.config.distribution;
    let mut components: Vec<Component> = Vec::new();
    let lock = crate::support::lock::Lock::read(&ctx.lock_path())?;

    let rootfs = rootfs_components(&r.live.rootfs.tree(), &mut components);
    let (busybox, syslinux) = host_components(&mut components);
    let k = kernel_components(ctx, r, &lock, &mut components)?;
    let metal = metal_components(ctx, &lock, &mut components);
    let crates = crate_components(&ctx.root, &mut components)?;

    // Debian's kernel package alone, and with the packages the ISO's
    // initramfs takes files from (ntfs-3g); not shim or GRUB.
    let roles = |wanted: &dyn Fn(&str) -> bool| -> Vec<usize> {
        lock.shipped_debs()
            .into_iter()
            .zip(&metal)
            .filter(|((role, _), _)| wanted(role))
            .map(|(_, &i)| i)
            .collect()
    };
    use crate::stages::kernel::metal::{NTFS_DEBS, ROLE};
    let held = Held {
        metal_kernel: roles(&|r| r == ROLE),
        initramfs_debs: roles(&|r| r == ROLE || NTFS_DEBS.iter().any(|(n, _)| *n == r)),
        rootfs,
        busybox,
        syslinux,
        metal,
        uml: k.uml,
        xen: k.xen,
        crates_init: crates.init.clone(),
        crates_all: crates.all.iter().copied().collect(),
    };
    let find = |suffix: &str| artifacts.iter().find(|a| a.name.ends_with(suffix));
    let mut arts = Vec::new();
    for (suffix, contains) in held.by_artifact() {
        if let Some(a) = find(suffix) {
            arts.push(Artifact {
                name: a.name.clone(),
                sha256: a.sha256.clone(),
                contains,
            });
        }
    }
    let (components, patches, generated_from) = drop_duplicates(
        components,
        &crates.all,
        &mut arts,
        k.patches,
        k.generated_from,
    );
    let commit = crate::cmd!("git", "rev-parse", "HEAD")
        .dir(&ctx.root)
        .output()
        .unwrap_or_default();
    Ok(Facts {
        name: d.name.clone(),
        version: d.version.clone(),
        publisher: d.publisher.clone(),
        epoch: ctx.epoch.global,
        components,
        artifacts: arts,
        patches,
        generated_from,
        namespace_suffix: format!("{}-{}", r.live.profile, commit.trim()),
    })
}

/// The host's packages the release takes files from: busybox (the
/// initramfs), isolinux and its modules (the ISO's BIOS boot).
fn host_components(components: &mut Vec<Component>) -> (usize, Vec<usize>) {
    use crate::support::context::package_version;
    let busybox_version = package_version("busybox-static");
    let busybox = add(
        components,
        Component {
            purl: Some(purl_deb("busybox-static", &busybox_version, "amd64")),
            ..plain(
                "deb",
                "busybox-static",
                &busybox_version,
                "GPL-2.0-only",
                "the initramfs's shell and tools (and the mini profile's root filesystem)",
            )
        },
    );
    let mut syslinux = Vec::new();
    for p in ["isolinux", "syslinux-common"] {
        let v = package_version(p);
        syslinux.push(add(
            components,
            Component {
                purl: Some(purl_deb(p, &v, "")),
                ..plain(
                    "deb",
                    p,
                    &v,
                    "GPL-2.0-or-later",
                    "the ISO's BIOS boot loader (isolinux and its modules)",
                )
            },
        ));
    }
    (busybox, syslinux)
}

/// The components each kind of artifact holds (indices into the list).
struct Held {
    rootfs: Vec<usize>,
    busybox: usize,
    syslinux: Vec<usize>,
    /// Every package taken as it is (kernel, shim, GRUB, ntfs-3g, ...).
    metal: Vec<usize>,
    metal_kernel: Vec<usize>,
    /// What the ISO's initramfs takes files from.
    initramfs_debs: Vec<usize>,
    uml: usize,
    xen: usize,
    crates_init: Vec<usize>,
    crates_all: Vec<usize>,
}

impl Held {
    /// (artifact name suffix, what it contains).
    fn by_artifact(&self) -> Vec<(&'static str, Vec<usize>)> {
        let cat = |parts: &[&[usize]]| parts.concat();
        let (busybox, uml, xen) = ([self.busybox], [self.uml], [self.xen]);
        vec![
            (
                ".iso",
                cat(&[
                    &self.rootfs,
                    &busybox,
                    &uml,
                    &self.syslinux,
                    &self.metal,
                    &self.crates_all,
                ]),
            ),
            ("-xen.tar.gz", cat(&[&xen, &busybox, &self.crates_init])),
            ("-uml.tar.gz", cat(&[&uml, &busybox, &self.crates_all])),
            ("-netboot-amd64.vmlinuz", self.metal_kernel.clone()),
            (
                "-netboot-amd64.initrd.img",
                cat(&[&busybox, &self.initramfs_debs, &self.crates_init]),
            ),
            (
                "-netboot-amd64.squashfs",
                cat(&[&self.rootfs, &self.metal_kernel, &self.crates_all]),
            ),
            ("-netboot-amd64.ipxe", vec![]),
        ]
    }
}

/// `c` appended; its index.
fn add(components: &mut Vec<Component>, c: Component) -> usize {
    components.push(c);
    components.len() - 1
}

/// A component without a download location, purl, checksum or source.
fn plain(kind: &str, name: &str, version: &str, license: &str, comment: &str) -> Component {
    Component {
        kind: kind.into(),
        name: name.into(),
        version: version.into(),
        license: license.into(),
        download: "NOASSERTION".into(),
        purl: None,
        sha256: None,
        comment: Some(comment.into()),
        source: None,
    }
}

/// The root filesystem's Debian packages, with their licences from the
/// copyright files in the tree.
fn rootfs_components(tree: &std::path::Path, components: &mut Vec<Component>) -> Vec<usize> {
    let status = std::fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap_or_default();
    let mut rootfs = Vec::new();
    for (name, version, arch, source) in dpkg_status(&status) {
        let license = tree_copyright(tree, &name)
            .and_then(|t| copyright_license(&t))
            .unwrap_or_else(|| "NOASSERTION".into());
        rootfs.push(add(
            components,
            Component {
                kind: "deb".into(),
                purl: Some(purl_deb(&name, &version, &arch)),
                name,
                version,
                license,
                download: "NOASSERTION".into(),
                sha256: None,
                comment: None,
                source: Some(source),
            },
        ));
    }
    rootfs
}

/// The kernel source, our patches and the two kernels built from them.
struct Kernels {
    uml: usize,
    xen: usize,
    /// (patch, kernel) pairs.
    patches: Vec<(usize, usize)>,
    /// (kernel, source) pairs.
    generated_from: Vec<(usize, usize)>,
}

fn kernel_components(
    ctx: &crate::support::context::Ctx,
    r: &crate::pipeline::Release,
    lock: &crate::support::lock::Lock,
    components: &mut Vec<Component>,
) -> anyhow::Result<Kernels> {
    let ks = lock.kernel_source.clone().unwrap_or_default();
    let source = add(
        components,
        Component {
            sha256: (!ks.sha256.is_empty()).then(|| ks.sha256.clone()),
            purl: (ks.source == "debian").then(|| purl_deb(&ks.origin, &ks.package_version, "all")),
            ..plain(
                "kernel-source",
                "linux",
                &ks.version,
                "GPL-2.0-only WITH Linux-syscall-note",
                &format!(
                    "the source tarball of {} {} ({})",
                    ks.origin, ks.package_version, ks.source
                ),
            )
        },
    );
    let gpl = "GPL-2.0-only WITH Linux-syscall-note";
    let uml = add(
        components,
        plain(
            "kernel",
            "linux-um",
            &r.live.uml.info.release,
            gpl,
            "the UML kernel, built here",
        ),
    );
    let xen = add(
        components,
        plain(
            "kernel",
            "linux-domU",
            &r.xen.info.release,
            gpl,
            "the Xen domU kernel, built here",
        ),
    );
    let mut patches = Vec::new();
    for (series, kernels) in [
        ("common", vec![uml, xen]),
        ("um", vec![uml]),
        ("xen", vec![xen]),
    ] {
        for p in
            crate::stages::kernel::patches::read_series(&ctx.root.join("kernel-patches"), series)?
        {
            let idx = add(
                components,
                Component {
                    sha256: Some(crate::support::cache::sha256_file(&p.path)?),
                    ..plain(
                        "patch",
                        &format!("kernel-patches/{series}/{}", p.name),
                        "",
                        "GPL-2.0-only",
                        "applied to the kernel source before building",
                    )
                },
            );
            for &k in &kernels {
                patches.push((idx, k));
            }
        }
    }
    Ok(Kernels {
        uml,
        xen,
        patches,
        generated_from: vec![(uml, source), (xen, source)],
    })
}

/// Debian packages taken as they are (signed kernel, shim, GRUB): the very
/// .deb finnix.lock pins, from the cache.
fn metal_components(
    ctx: &crate::support::context::Ctx,
    lock: &crate::support::lock::Lock,
    components: &mut Vec<Component>,
) -> Vec<usize> {
    let mut metal = Vec::new();
    for (role, deb) in &lock.shipped_debs() {
        let license = if role == crate::stages::kernel::metal::ROLE {
            "GPL-2.0-only WITH Linux-syscall-note".to_string()
        } else {
            crate::stages::debs::cached(ctx, role, deb)
                .and_then(|c| deb_copyright(&c.path, &deb.package))
                .and_then(|t| copyright_license(&t))
                .unwrap_or_else(|| "NOASSERTION".into())
        };
        metal.push(add(
            components,
            Component {
                kind: "deb".into(),
                name: deb.package.clone(),
                version: deb.version.clone(),
                license,
                download: "NOASSERTION".into(),
                purl: Some(purl_deb(&deb.package, &deb.version, "amd64")),
                sha256: Some(deb.sha256.clone()),
                comment: Some(format!(
                    "taken as Debian ships it ({role}), pinned in finnix.lock"
                )),
                source: None,
            },
        ));
    }
    metal
}

/// The crates of /init (`init`) and of /init and finnix (`all`), one entry
/// of each crate kept in `all`.
struct Crates {
    init: Vec<usize>,
    all: BTreeSet<usize>,
}

fn crate_components(
    root: &std::path::Path,
    components: &mut Vec<Component>,
) -> anyhow::Result<Crates> {
    let init_crates: Vec<usize> = crates(root, &["finnix-init"])?
        .into_iter()
        .map(|c| add(components, c))
        .collect();
    let all_crates: Vec<usize> = crates(root, &["finnix-init", "finnix"])?
        .into_iter()
        .map(|c| add(components, c))
        .collect();
    // (The second list repeats the first's crates: keep one of each.)
    let mut unique: BTreeMap<(String, String), usize> = BTreeMap::new();
    for &i in init_crates.iter().chain(&all_crates) {
        unique
            .entry((components[i].name.clone(), components[i].version.clone()))
            .or_insert(i);
    }
    let init = init_crates
        .iter()
        .map(|&i| unique[&(components[i].name.clone(), components[i].version.clone())])
        .collect();
    Ok(Crates {
        init,
        all: unique.values().copied().collect(),
    })
}

/// The repeated crate entries dropped (every other component kept), the
/// indices renumbered.
#[allow(clippy::type_complexity)]
fn drop_duplicates(
    components: Vec<Component>,
    crates: &BTreeSet<usize>,
    arts: &mut [Artifact],
    patches: Vec<(usize, usize)>,
    generated_from: Vec<(usize, usize)>,
) -> (Vec<Component>, Vec<(usize, usize)>, Vec<(usize, usize)>) {
    let keep: BTreeSet<usize> = (0..components.len())
        .filter(|i| components[*i].kind != "crate" || crates.contains(i))
        .collect();
    let map: BTreeMap<usize, usize> = keep
        .iter()
        .enumerate()
        .map(|(new, &old)| (old, new))
        .collect();
    for a in arts.iter_mut() {
        let set: BTreeSet<usize> = a
            .contains
            .iter()
            .filter_map(|i| map.get(i).copied())
            .collect();
        a.contains = set.into_iter().collect();
    }
    let components = keep.iter().map(|&i| components[i].clone()).collect();
    let pairs = |v: Vec<(usize, usize)>| v.into_iter().map(|(a, b)| (map[&a], map[&b])).collect();
    (components, pairs(patches), pairs(generated_from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_licence_names_become_spdx_expressions() {
        assert_eq!(dep5_expression("GPL-2+"), "GPL-2.0-or-later");
        assert_eq!(
            dep5_expression("GPL-2+ or Artistic"),
            "(GPL-2.0-or-later OR Artistic-1.0)"
        );
        assert_eq!(
            dep5_expression("LGPL-2.1+ and BSD-3-clause"),
            "(LGPL-2.1-or-later AND BSD-3-Clause)"
        );
        assert_eq!(dep5_expression("public-domain"), "LicenseRef-public-domain");
        assert_eq!(cargo_license(Some("MIT/Apache-2.0")), "MIT OR Apache-2.0");
        assert_eq!(cargo_license(None), "NOASSERTION");
    }

    #[test]
    fn machine_readable_copyright_files_give_their_licences() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: *\nCopyright: 2000 A\nLicense: GPL-2+\n\nFiles: lib/*\nCopyright: B\nLicense: Expat\n\nLicense: GPL-2+\n On Debian systems ...\n";
        assert_eq!(
            copyright_license(text).as_deref(),
            Some("GPL-2.0-or-later AND MIT")
        );
        assert_eq!(
            copyright_license("This package was debianized by ...\n"),
            None
        );
    }

    #[test]
    fn dpkg_status_gives_installed_packages_and_their_sources() {
        let text = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\nSource: bash (5.2.15-2)\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        let p = dpkg_status(text);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            (
                "bash".into(),
                "5.2.15-2+b7".into(),
                "amd64".into(),
                "bash 5.2.15-2".into()
            )
        );
        assert_eq!(p[1].3, "zlib 1:1.2.13");
    }

    #[test]
    fn the_document_is_spdx_2_3_with_ids_and_relationships() {
        let c = |kind: &str, name: &str, lic: &str| Component {
            kind: kind.into(),
            name: name.into(),
            version: "1".into(),
            license: lic.into(),
            download: "NOASSERTION".into(),
            purl: None,
            sha256: None,
            comment: None,
            source: None,
        };
        let f = Facts {
            name: "Finnix".into(),
            version: "127".into(),
            publisher: "p".into(),
            epoch: 0,
            components: vec![
                c("deb", "bash", "GPL-3.0-or-later"),
                c("deb", "x+y", "LicenseRef-public-domain"),
            ],
            artifacts: vec![Artifact {
                name: "finnix-127-amd64.iso".into(),
                sha256: "a".repeat(64),
                contains: vec![0, 1],
            }],
            patches: vec![],
            generated_from: vec![],
            namespace_suffix: "abc".into(),
        };
        let d = document(&f);
        assert_eq!(d["spdxVersion"], "SPDX-2.3");
        assert_eq!(d["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        let ids: Vec<&str> = d["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&"SPDXRef-deb-x-y-1"), "{ids:?}");
        assert_eq!(
            d["hasExtractedLicensingInfos"][0]["licenseId"],
            "LicenseRef-public-domain"
        );
        assert_eq!(d["relationships"].as_array().unwrap().len(), 3);
    }
}
