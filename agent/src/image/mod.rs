//! The image store: content-addressed blobs, layers unpacked once (read-only), and the
//! names that point at images. Owns everything under `<data-dir>/store/`; touches nothing else.
//!
//! Imports `docker save` archives (the classic `manifest.json` layout and the OCI layout
//! Docker 25+ writes beside it) and OCI image-layout archives, and pulls from registries
//! (`pull.rs`, the registry client, configured by `registries.rs` and `auth.rs`); both feed the
//! same verified ingest in `store.rs`. [`Puller`] (`puller.rs`) holds a store and owns pulling:
//! the registries configuration in force, and what the pod worker asks for images (pull
//! policies, back-off). `gc.rs` holds free functions over a store that remove images (`skiff
//! image rm|prune`, and the collector that runs when the disk fills up).
//!
//! Dependencies go one way: `puller.rs` → `pull.rs`, `gc.rs` → `store.rs`.
//!
//! Start at `store.rs` (the on-disk layout and [`ImageStore`], storage only); `archive.rs` reads archive
//! layouts, `unpack.rs` is the security boundary that turns a layer into a directory,
//! `reference.rs` normalizes image names, `digest.rs` and `compression.rs` are the small pieces
//! they share.

mod archive;
pub mod auth;
mod compression;
mod digest;
mod error;
pub mod folder;
pub mod gc;
pub mod pull;
pub mod puller;
mod reference;
pub mod registries;
mod store;
mod unpack;

#[cfg(test)]
mod pull_tests;
#[cfg(test)]
mod tests;

pub use error::ImageError;
pub use pull::{PullOptions, PullProgress};
pub use puller::{ImageWanted, Puller, Readiness};
pub use reference::{normalize_reference, Reference};
pub use registries::RegistriesConfig;
pub use store::{Image, ImageStore, ImportLimits, ImportedImage};

/// The layer unpacker (`unpack.rs`, a security boundary) for the fuzz targets in `fuzz/`:
/// unpacks the layer blob at `blob` into the empty directory `dest`, at most `max_bytes`.
#[doc(hidden)]
pub fn fuzz_unpack_layer(
    blob: &std::path::Path,
    dest: &std::path::Path,
    max_bytes: u64,
) -> Result<String, ImageError> {
    unpack::unpack_layer(blob, dest, "fuzz", max_bytes)
}
