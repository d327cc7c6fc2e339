//! The short fuzzing run on stable Rust: each target's saved inputs replayed, then a few
//! seconds of mutations (`skiff_fuzz::short`). The long runs are `cargo fuzz run <target>`
//! (docs/security.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

fn short(name: &str) {
    let target = skiff_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .expect("a target of that name");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seed = std::env::var("SKIFF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let seconds = std::env::var("SKIFF_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let failures = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("fuzz-failures");
    let report = skiff_fuzz::short::run(
        name,
        target,
        &corpus,
        seed,
        Duration::from_secs_f64(seconds),
        &failures,
    );
    eprintln!("{name}: {report:?}");
    assert!(report.mutated > 0, "{name}: no mutated input ran");
}

#[test]
fn manifest() {
    short("manifest");
}

#[test]
fn patch() {
    short("patch");
}

#[test]
fn layer() {
    short("layer");
}

#[test]
fn spdy() {
    short("spdy");
}

#[test]
fn dns() {
    short("dns");
}

/// Every target has a test above and saved inputs.
#[test]
fn every_target_is_run() {
    let this = include_str!("short.rs");
    for (name, _) in skiff_fuzz::TARGETS {
        assert!(
            this.contains(&format!("short(\"{name}\")")),
            "{name} has no test here"
        );
    }
}
