//! gpg with a home of its own (0700, thrown away with its directory): never
//! the user's keyring, never a prompt.

use fs_err as fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::support::cmd::Cmd;

pub struct Gpg {
    home: PathBuf,
}

impl Gpg {
    /// A new home at `home` (made, mode 0700: gpg refuses others).
    pub fn new(home: &Path) -> Result<Gpg> {
        fs::create_dir_all(home)?;
        fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))?;
        Ok(Gpg {
            home: home.to_path_buf(),
        })
    }

    /// `gpg <args>` in this home, batch mode, keys without passphrase.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::argv(
            "gpg",
            [
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ],
        )
        .args(args)
        .env("GNUPGHOME", &self.home)
        .stdin_null()
    }

    /// Make a signing key for `uid` (ed25519, no passphrase, no expiry).
    pub fn make_key(&self, uid: &str) -> Cmd {
        self.cmd(&["--quick-gen-key", uid, "ed25519", "sign", "never"])
    }

    /// Stop the agent gpg started for this home.
    pub fn stop_agent(&self) {
        let _ = Cmd::argv("gpgconf", ["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.home)
            .output();
    }
}
