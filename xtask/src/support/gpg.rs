//! gpg with a home of its own (0700, thrown away with its directory): never
//! the user's keyring, never a prompt. The home is a socket directory
//! (`fsutil::socket_dir`, below /tmp): gpg-agent makes its sockets there,
//! and a socket path may not exceed 107 bytes wherever the checkout is.

use std::path::Path;

use anyhow::Result;

use crate::support::cmd::Cmd;
use crate::support::fsutil::TempDir;

pub struct Gpg {
    home: TempDir,
}

impl Gpg {
    /// A new, empty home.
    pub fn new() -> Result<Gpg> {
        Ok(Gpg {
            home: crate::support::fsutil::socket_dir("gnupg")?,
        })
    }

    pub fn home(&self) -> &Path {
        self.home.path()
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
        .env("GNUPGHOME", self.home())
        .stdin_null()
    }

    /// Make a signing key for `uid` (ed25519, no passphrase, no expiry).
    pub fn make_key(&self, uid: &str) -> Cmd {
        self.cmd(&["--quick-gen-key", uid, "ed25519", "sign", "never"])
    }
}

impl Drop for Gpg {
    /// Stop the agent gpg started for this home; the home goes with it.
    fn drop(&mut self) {
        let _ = Cmd::argv("gpgconf", ["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.home())
            .stdin_null()
            .output();
    }
}
