//! The image store: content-addressed blobs, layers unpacked once (read-only), and the
//! names that point at images. Owns everything under `<data-dir>/store/`; touches nothing else.
//!
//! Imports `docker save` archives (the classic `manifest.json` layout and the OCI layout
//! Docker 25+ writes beside it) and OCI image-layout archives. Pulling from registries is
//! not here yet.
//!
//! Start at `store.rs` (the on-disk layout and [`ImageStore`]); `archive.rs` reads archive
//! layouts, `unpack.rs` is the security boundary that turns a layer into a directory,
//! `reference.rs` normalizes image names, `digest.rs` and `compression.rs` are the small pieces
//! they share.

mod archive;
mod compression;
mod digest;
mod error;
pub mod folder;
mod reference;
mod store;
mod unpack;

#[cfg(test)]
mod tests;

pub use error::ImageError;
pub use reference::{normalize_reference, Reference};
pub use store::{Image, ImageStore, ImportLimits, ImportedImage};
