//! Not vendored: the html feature is not built in skiff (see PATCHES.md).
