//! What every job shares: configuration, the context, the stage cache,
//! progress lines and logs, host prerequisites, files, dates, the lock file
//! and the writers of formats (cpio) and of the live system's programs.

pub mod apt;
pub mod cache;
pub mod cmd;
pub mod config;
pub mod context;
pub mod cpio;
pub mod date;
pub mod fsutil;
pub mod gpg;
pub mod lock;
pub mod parallel;
pub mod prereq;
pub mod rustbin;
pub mod ui;
