//! `cargo fuzz run manifest`: see `skiff_fuzz::manifest`. Without cargo-fuzz, replays the files named
//! on the command line.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| skiff_fuzz::manifest(data));

#[cfg(not(fuzzing))]
fn main() {
    skiff_fuzz::replay_args(skiff_fuzz::manifest);
}
