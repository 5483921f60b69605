//! `cargo xtask sign`: detached signatures of a release's `SHA256SUMS`,
//! as upstream Finnix signs its releases: `SHA256SUMS.sig`, an SSH signature
//! (`ssh-keygen -Y sign -n file`), and `SHA256SUMS.asc`, an OpenPGP one
//! (`gpg --detach-sign --armor`). SHA256SUMS names every artifact with its
//! sha256, so the two signatures cover the release.
//!
//! The private keys come from files named by FINNIX_SSH_SIGNING_KEY and
//! FINNIX_OPENPGP_SIGNING_KEY (or `--ssh-key`, `--openpgp-key`), never from
//! the repository; the public halves that `verify-release` trusts are
//! committed under `keys/`. Signatures are written beside SHA256SUMS by
//! rename, never half-written.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::cli;
use crate::support::context::Ctx;
use crate::support::prereq::{self, Tools};
use crate::support::ui::{self, Outcome, Stage};

/// The SSH signature namespace (`ssh-keygen -Y sign -n`).
pub const SSH_NAMESPACE: &str = "file";
/// The principal `keys/allowed_signers` names for the release key.
pub const SSH_IDENTITY: &str = "release@finnix";
pub const SUMS: &str = "SHA256SUMS";
pub const SSH_SIG: &str = "SHA256SUMS.sig";
pub const OPENPGP_SIG: &str = "SHA256SUMS.asc";
/// The public keys' files, named once: keygen writes them into the public
/// directory (the repository's `keys/` by default), verify-release trusts
/// them there.
pub const KEYS_DIR: &str = "keys";
pub const ALLOWED_SIGNERS: &str = "allowed_signers";
pub const OPENPGP_KEY: &str = "release.asc";

/// The private keys a signing run uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub ssh: Option<PathBuf>,
    pub openpgp: Option<PathBuf>,
}

impl Keys {
    /// Options first, then the environment.
    pub fn resolve(
        ssh: Option<PathBuf>,
        openpgp: Option<PathBuf>,
        env: &crate::support::context::Env,
    ) -> Keys {
        Keys {
            ssh: ssh.or_else(|| env.ssh_signing_key.clone()),
            openpgp: openpgp.or_else(|| env.openpgp_signing_key.clone()),
        }
    }

    pub fn none(&self) -> bool {
        self.ssh.is_none() && self.openpgp.is_none()
    }

    /// Both keys, or an error naming what to set.
    fn both(&self) -> Result<(&Path, &Path)> {
        match (&self.ssh, &self.openpgp) {
            (Some(s), Some(o)) => Ok((s, o)),
            (s, o) => {
                let mut missing = Vec::new();
                if s.is_none() {
                    missing.push("the SSH key (FINNIX_SSH_SIGNING_KEY or --ssh-key)");
                }
                if o.is_none() {
                    missing.push("the OpenPGP key (FINNIX_OPENPGP_SIGNING_KEY or --openpgp-key)");
                }
                anyhow::bail!(
                    "a release is signed with both keys; missing {}",
                    missing.join(" and ")
                )
            }
        }
    }
}

/// Sign `dir/SHA256SUMS`: SHA256SUMS.sig and SHA256SUMS.asc beside it.
pub fn sign(stage: &Stage, dir: &Path, keys: &Keys) -> Result<()> {
    let (ssh_key, pgp_key) = keys.both()?;
    let sums = dir.join(SUMS);
    ensure!(
        sums.is_file(),
        "{} does not exist: run `cargo xtask dist` first",
        sums.display()
    );
    for key in [ssh_key, pgp_key] {
        ensure!(
            key.is_file(),
            "the signing key {} does not exist",
            key.display()
        );
    }
    let work =
        crate::support::fsutil::TempDir::create(dir.join(format!(".sign.{}", std::process::id())))?;
    let copy = work.path().join(SUMS);
    fs::copy(&sums, &copy)?;

    // SSH: ssh-keygen writes <file>.sig beside the file it signs.
    stage
        .run(crate::cmd!(
            "ssh-keygen",
            "-Y",
            "sign",
            "-f",
            ssh_key,
            "-n",
            SSH_NAMESPACE,
            &copy
        ))
        .with_context(|| format!("ssh-keygen could not sign with {}", ssh_key.display()))?;

    // OpenPGP: the key imported into a throwaway home, nothing else in it.
    let gpg = crate::support::gpg::Gpg::new()?;
    stage
        .run(gpg.cmd(&["--import", &pgp_key.display().to_string()]))
        .with_context(|| format!("gpg could not import {}", pgp_key.display()))?;
    let asc = work.path().join(OPENPGP_SIG);
    stage.run(gpg.cmd(&[
        "--armor",
        "--detach-sign",
        "--output",
        &asc.display().to_string(),
        &copy.display().to_string(),
    ]))?;
    drop(gpg);
    // A release signed meanwhile? SHA256SUMS must still be what was signed.
    ensure!(
        fs::read(&sums)? == fs::read(&copy)?,
        "{} changed while it was being signed",
        sums.display()
    );
    fs::rename(work.path().join(SSH_SIG), dir.join(SSH_SIG))?;
    fs::rename(&asc, dir.join(OPENPGP_SIG))?;
    Ok(())
}

/// A new pair of release keys (`cargo xtask keygen`, and the throwaway keys
/// of the tests): the private halves in `private` (made, mode 0700), the
/// public halves that `verify-release` trusts in `public`.
#[derive(Debug, Clone)]
pub struct NewKeys {
    /// The private keys, for `cargo xtask sign` (or the repository secrets).
    pub keys: Keys,
    /// `allowed_signers`: the SSH key for SSH_IDENTITY, namespace `file`.
    pub allowed_signers: PathBuf,
    /// `release.asc`: the OpenPGP public key, armored.
    pub openpgp_public: PathBuf,
}

/// Make both keys (ed25519, no passphrase: they live in CI secrets); `uid`
/// is the OpenPGP user id, e.g. `Finnix release <release@finnix.org>`.
pub fn make_keys(private: &Path, public: &Path, uid: &str) -> Result<NewKeys> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(private)?;
    fs::set_permissions(private, std::fs::Permissions::from_mode(0o700))?;
    fs::create_dir_all(public)?;
    let ssh = private.join("ssh");
    crate::cmd!(
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        uid,
        "-f",
        &ssh
    )
    .output()
    .context("ssh-keygen could not make the SSH key")?;
    let ssh_public = fs::read_to_string(private.join("ssh.pub"))?;
    let allowed_signers = public.join(ALLOWED_SIGNERS);
    fs::write(
        &allowed_signers,
        format!(
            "{SSH_IDENTITY} namespaces=\"{SSH_NAMESPACE}\" {}\n",
            ssh_public.trim()
        ),
    )?;

    let gpg = crate::support::gpg::Gpg::new()?;
    gpg.make_key(uid)
        .output()
        .context("gpg could not make the OpenPGP key")?;
    let secret = private.join("openpgp-secret.asc");
    let openpgp_public = public.join(OPENPGP_KEY);
    for (file, what) in [
        (&secret, "--export-secret-keys"),
        (&openpgp_public, "--export"),
    ] {
        gpg.cmd(&[
            "--armor",
            "--output",
            &file.display().to_string(),
            what,
            uid,
        ])
        .output()
        .context("gpg could not export the OpenPGP key")?;
    }
    // The keyring is not needed: the armored secret key is what sign reads.
    drop(gpg);
    Ok(NewKeys {
        keys: Keys {
            ssh: Some(ssh),
            openpgp: Some(secret),
        },
        allowed_signers,
        openpgp_public,
    })
}

/// Sign a release directory's SHA256SUMS (one stage line).
pub fn sign_dir(ctx: &Ctx, dir: &Path, keys: &Keys) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "sign",
        format!(
            "sign {}/SHA256SUMS (SSH and OpenPGP)",
            ui::display_path(dir)
        ),
        |s| {
            sign(s, dir, keys)?;
            Ok((
                (),
                Outcome::Built,
                "SHA256SUMS.sig, SHA256SUMS.asc".to_string(),
            ))
        },
    )
}

impl cli::Sign {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        let keys = Keys::resolve(self.ssh_key, self.openpgp_key, &ctx.env);
        let dir = self.dir.unwrap_or_else(|| ctx.dist_dir());
        sign_dir(ctx, &dir, &keys)
    }
}

impl cli::Keygen {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        let public = self.public_dir.unwrap_or_else(|| ctx.root.join(KEYS_DIR));
        let files = [public.join(ALLOWED_SIGNERS), public.join(OPENPGP_KEY)];
        if !self.force {
            for f in &files {
                anyhow::ensure!(
                    !f.exists(),
                    "{} exists: the release keys were made before (--force replaces them: a key rotation, and older releases then verify only against the old keys)",
                    f.display()
                );
            }
        }
        anyhow::ensure!(
            !self.private_dir.exists() || fs::read_dir(&self.private_dir)?.next().is_none(),
            "{} is not empty: name a new directory for the private keys",
            self.private_dir.display()
        );
        anyhow::ensure!(
            !self.private_dir.starts_with(&ctx.root),
            "{} is inside the repository: the private keys must never be committed",
            self.private_dir.display()
        );
        let k = make_keys(&self.private_dir, &public, &self.uid)?;
        let (ssh, pgp) = (k.keys.ssh.expect("made"), k.keys.openpgp.expect("made"));
        eprintln!(
            "made the release keys ({}):
  public, commit them: {} and {}{}
  private, keep them secret:
    {}
    {}
next:
  gh secret set FINNIX_SSH_SIGNING_KEY < {}
  gh secret set FINNIX_OPENPGP_SIGNING_KEY < {}
  git add keys && git commit -m 'Release keys'
then store the private directory offline and delete it here.",
            self.uid,
            k.allowed_signers.display(),
            k.openpgp_public.display(),
            if public == ctx.root.join(KEYS_DIR) {
                format!(" ({KEYS_DIR}/{ALLOWED_SIGNERS}, {KEYS_DIR}/{OPENPGP_KEY})")
            } else {
                String::new()
            },
            ssh.display(),
            pgp.display(),
            ssh.display(),
            pgp.display()
        );
        Ok(())
    }
}
