//! `cargo xtask dist`: the release into `dist/` (staged, then renamed into
//! place), its closing table, the sweep of what a killed run left, and
//! `cargo xtask clean`.

use fs_err as fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli;
use crate::pipeline::{self, RELEASE_STAGES};
use crate::release::checksums::{self, Hashed};
use crate::stages::{ensure_tools, tarballs, StageId};
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::prereq::{self, Tools};
use crate::support::ui::{self, Outcome};

/// `cargo xtask dist`: the release into `dist/`, with SHA256SUMS and the
/// manifest. Files are staged under `dist/` and renamed into place only when
/// all are complete; a failed run leaves `dist/` as it was.
pub fn dist(ctx: &Ctx, profile: &str, dist_dir: &Path) -> Result<Vec<Hashed>> {
    let release = pipeline::release(ctx, profile)?;
    let dist_dir = dist_dir.to_path_buf();
    let artifacts = ui::stage(
        &ctx.logs(),
        "dist",
        format!("write the release into {}/", ui::display_path(&dist_dir)),
        |s| {
            fs::create_dir_all(&dist_dir)?;
            crate::support::fsutil::sweep_staging(&dist_dir)?;
            let staging = crate::support::fsutil::TempDir::create(
                dist_dir.join(format!(".staging.{}", std::process::id())),
            )?;
            let mut artifacts = Vec::new();
            for (name, path) in &release.files {
                let staged = staging.path().join(name);
                crate::support::fsutil::link_or_copy(path, &staged)?;
                artifacts.push(Hashed {
                    name: name.clone(),
                    size: Some(fs::metadata(&staged)?.len()),
                    sha256: sha256_file(&staged)?,
                });
            }
            // The SBOM: what the artifacts hold (SPDX 2.3).
            let sbom_facts = crate::release::sbom::facts(ctx, &release, &artifacts)?;
            let sbom =
                serde_json::to_string_pretty(&crate::release::sbom::document(&sbom_facts))? + "\n";
            let sbom_name = tarballs::names(ctx, profile).sbom;
            fs::write(staging.path().join(&sbom_name), &sbom)?;
            artifacts.push(Hashed {
                name: sbom_name,
                size: Some(sbom.len() as u64),
                sha256: crate::support::cache::sha256_hex(sbom.as_bytes()),
            });
            let manifest = crate::release::manifest::build(ctx, &release, artifacts.clone())?;
            let manifest_name = tarballs::names(ctx, profile).manifest;
            let json = manifest.to_json();
            fs::write(staging.path().join(&manifest_name), &json)?;
            artifacts.push(Hashed {
                name: manifest_name,
                size: Some(json.len() as u64),
                sha256: crate::support::cache::sha256_hex(json.as_bytes()),
            });
            let sums = checksums::sha256sums(&artifacts);
            fs::write(staging.path().join("SHA256SUMS"), &sums)?;
            s.note(&sums);
            // All complete: rename into place.
            let mut names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
            names.push("SHA256SUMS".into());
            // Signatures of a previous SHA256SUMS no longer hold, nor does
            // a source archive it listed (`cargo xtask source` again).
            let n = tarballs::names(ctx, profile);
            for stale in [
                crate::release::sign::SSH_SIG,
                crate::release::sign::OPENPGP_SIG,
                n.source.as_str(),
                n.source_incomplete.as_str(),
            ] {
                let _ = fs::remove_file(dist_dir.join(stale));
            }
            for name in &names {
                fs::rename(staging.path().join(name), dist_dir.join(name))
                    .with_context(|| format!("cannot move {name} into dist/"))?;
            }
            Ok((artifacts, Outcome::Built, format!("{} files", names.len())))
        },
    )?;
    Ok(artifacts)
}

/// The closing table: artifact, size, sha256.
pub fn table(artifacts: &[Hashed]) -> String {
    let width = artifacts
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!("{:<width$}  {:>10}  sha256\n", "artifact", "size");
    for a in artifacts {
        out.push_str(&format!(
            "{:<width$}  {:>10}  {}\n",
            a.name,
            ui::fmt_size(a.size.unwrap_or(0)),
            a.sha256
        ));
    }
    out
}

impl cli::Dist {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, RELEASE_STAGES, &[])?;
        let profile = ctx.profile(self.profile);
        let artifacts = dist(ctx, &profile, &ctx.dist_dir())?;
        print!("{}", table(&artifacts));
        let keys = crate::release::sign::Keys::resolve(None, None, &ctx.env);
        if keys.none() {
            eprintln!(
                "note: the release is unsigned (no FINNIX_SSH_SIGNING_KEY, FINNIX_OPENPGP_SIGNING_KEY); `cargo xtask sign` signs it"
            );
            return Ok(());
        }
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        crate::release::sign::sign_dir(ctx, &ctx.dist_dir(), &keys)
    }
}

impl cli::Clean {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        if let Some(name) = self.stage {
            let stage = StageId::from_name(&name).map_err(anyhow::Error::msg)?;
            for entry in fs::read_dir(&ctx.cache.root)
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let mine = name == stage.name()
                    || (stage.per_profile()
                        && name.starts_with(&format!("{}-", stage.name()))
                        && !(stage == StageId::Rootfs && name.starts_with("rootfs-base-")));
                if mine {
                    eprintln!("removing {}", entry.path().display());
                    crate::support::fsutil::remove_all(&entry.path())?;
                }
            }
            return Ok(());
        }
        eprintln!("removing {}", ctx.cache.root.display());
        crate::support::fsutil::remove_all(&ctx.cache.root)?;
        if self.dist {
            let d = ctx.dist_dir();
            for entry in fs::read_dir(&d)? {
                let p = entry?.path();
                if p.file_name().is_some_and(|n| n != ".gitkeep") {
                    crate::support::fsutil::remove_all(&p)?;
                }
            }
        }
        Ok(())
    }
}
