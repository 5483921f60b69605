//! Jobs that prove what the stages built: boots, `finnix create`, COW mode,
//! rescue scenarios, Xen with a real dom0 (xen-xl),
//! reproducibility, a pristine machine, benchmarks, and the whole suite.

pub mod access;
pub mod bench;
pub mod boot;
pub mod cow;
pub mod create;
pub mod debian_root;
pub mod fresh;
pub mod hardware;
pub mod isofile;
pub mod netboot;
pub mod repro;
pub mod rescue;
pub mod snapshot;
pub mod source;
pub mod suite;
pub mod verify_release;
pub mod wifi;
pub mod xen_xl;
