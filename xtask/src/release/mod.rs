//! The release: what `dist/` holds beside the artifacts the stages made,
//! and the maintainer's jobs on it. `dist` stages the files, the SBOM, the
//! manifest and SHA256SUMS and renames them into place; `sign` and `verify`
//! are the two ends of the signatures; `source` writes the corresponding
//! source archive. Below `checks/`, above `stages/` and the pipeline.

pub mod checksums;
pub mod dist;
pub mod manifest;
pub mod sbom;
pub mod sign;
pub mod source;
pub mod verify;
