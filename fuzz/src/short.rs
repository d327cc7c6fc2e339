//! The short run on stable Rust (`cargo test -p skiff-fuzz`, part of `cargo test
//! --workspace`): every saved input of a target replayed (`fuzz/corpus/<target>/`, the
//! libFuzzer corpus, minimised), then the target run on mutations of them for a few seconds.
//! The mutations are libFuzzer's basic ones (bit flips, random bytes, inserted and erased
//! ranges, copied ranges, crossovers of two inputs, interesting integers) from a seeded
//! generator, so a run is repeatable: `SKIFF_FUZZ_SEED` changes the seed,
//! `SKIFF_FUZZ_SECONDS` the time per target (default 3). A failing input is written to
//! `$CARGO_TARGET_TMPDIR`/`fuzz-failures` (or the temp dir) before the panic goes on, to be
//! replayed with `cargo run -p skiff-fuzz --bin <target> -- FILE`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The longest input a mutation makes (libFuzzer's `-max_len` for the long runs is set per
/// target in `docs/security.md`).
const MAX_LEN: usize = 16 * 1024;

/// What [`run`] did.
#[derive(Debug)]
pub struct Report {
    /// Saved inputs replayed.
    pub replayed: usize,
    /// Mutated inputs run.
    pub mutated: usize,
}

/// The saved inputs of `target` under `corpus` (`fuzz/corpus/<target>/`), sorted by name.
pub fn saved_inputs(corpus: &Path, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus.join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Replays `target`'s saved inputs, then runs it on mutations of them for `budget`.
pub fn run(
    name: &str,
    target: fn(&[u8]),
    corpus: &Path,
    seed: u64,
    budget: Duration,
    failures: &Path,
) -> Report {
    let saved = saved_inputs(corpus, name);
    assert!(
        !saved.is_empty(),
        "{name}: no saved inputs under {}",
        corpus.display()
    );
    for (path, data) in &saved {
        guarded(name, target, data, failures, &format!("{}", path.display()));
    }
    let inputs: Vec<Vec<u8>> = saved.into_iter().map(|(_, d)| d).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut mutated = 0;
    while start.elapsed() < budget {
        let mut input = inputs[rng.gen_range(0..inputs.len())].clone();
        for _ in 0..rng.gen_range(1..=4) {
            mutate(&mut rng, &mut input, &inputs);
        }
        input.truncate(MAX_LEN);
        guarded(
            name,
            target,
            &input,
            failures,
            &format!("mutation {mutated} of seed {seed}"),
        );
        mutated += 1;
    }
    Report {
        replayed: inputs.len(),
        mutated,
    }
}

/// Runs `target` on `data`; a panic is reported with the input saved to a file.
fn guarded(name: &str, target: fn(&[u8]), data: &[u8], failures: &Path, what: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(data))) {
        let _ = std::fs::create_dir_all(failures);
        let file = failures.join(format!("{name}-{:016x}", fnv1a(data)));
        let saved = std::fs::write(&file, data).is_ok();
        eprintln!(
            "fuzz target {name} failed on {what}{}",
            if saved {
                format!(", saved as {}", file.display())
            } else {
                String::new()
            }
        );
        resume_unwind(panic);
    }
}

/// One mutation of `input`, as libFuzzer's `MutationDispatcher` does them.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    const INTERESTING: &[&[u8]] = &[
        b"\x00",
        b"\xff",
        b"\x7f",
        b"\x80",
        b"\xff\xff\xff\xff",
        b"\x00\x00\x00\x00",
        b"\x7f\xff\xff\xff",
        b"\x80\x00\x00\x00",
        b"-1",
        b"0",
        b"4294967296",
        b"9223372036854775808",
        b"1e309",
        b"null",
        b"[]",
        b"{}",
        b"\n---\n",
        b"&a",
        b"*a",
        b"..",
        b"/",
    ];
    let len = input.len();
    match rng.gen_range(0..8) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = rng.gen();
        }
        2 => {
            let at = rng.gen_range(0..=len);
            let n = rng.gen_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let at = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - at).min(64));
            input.drain(at..at + n);
        }
        4 if len > 0 => {
            let from = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - from).min(64));
            let chunk = input[from..from + n].to_vec();
            let at = rng.gen_range(0..=len);
            input.splice(at..at, chunk);
        }
        5 => {
            let other = &others[rng.gen_range(0..others.len())];
            if !other.is_empty() {
                let from = rng.gen_range(0..other.len());
                let n = rng.gen_range(1..=(other.len() - from).min(256));
                let at = rng.gen_range(0..=len);
                input.splice(at..at, other[from..from + n].iter().copied());
            }
        }
        6 => {
            let token = INTERESTING[rng.gen_range(0..INTERESTING.len())];
            let at = rng.gen_range(0..=len);
            if rng.gen_bool(0.5) || at + token.len() > len {
                input.splice(at..at, token.iter().copied());
            } else {
                input[at..at + token.len()].copy_from_slice(token);
            }
        }
        _ if len > 1 => {
            let at = rng.gen_range(1..len);
            input.truncate(at);
        }
        _ => input.push(rng.gen()),
    }
}

/// A stable name for a failing input.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
