//! Fuzz targets for what skiff reads from parties it does not trust (`docs/security.md`):
//! manifests (a namespace token's YAML, a manifests-folder file), writes (JSON/merge/strategic
//! patches, server-side apply, replace), image layer tars (a hostile image), SPDY port-forward
//! sessions (kubectl's bytes), and DNS queries (a pod's packets).
//!
//! Each target calls the real functions — private ones through narrow `#[doc(hidden)] fuzz_*`
//! entries in the crate that owns them — and checks what must always hold. Two engines run
//! them: libFuzzer through `cargo fuzz run <target>` (the binaries in `fuzz_targets/`, long
//! runs, see `docs/security.md`), and [`short`] under `cargo test` on stable Rust: every saved
//! input replayed, then a few seconds of mutations of them (`tests/short.rs`).

use std::path::Path;
use std::sync::LazyLock;

use serde_json::Value;
use skiff_agent::network::dns::{self, Handled, Records};
use skiff_controller::folder::{self, apply};
use skiff_controller::model::podsecurity::{self, Level, LevelVersion};
use skiff_controller::model::validate;

pub mod short;

/// A fuzz target: runs on any bytes, panics on a finding.
pub type Target = fn(&[u8]);

/// The targets by name (the binaries' and corpus folders' names).
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("patch", patch),
    ("layer", layer),
    ("spdy", spdy),
    ("dns", dns),
];

/// A manifests-folder file: parsed (YAML 1.1 octals, multi-document, `List`s), each document
/// validated and prepared, merged as the folder stores it (server-side apply, defaults), and
/// its pod checked against every Pod Security level. What the folder stores must pass
/// validation itself: every later write (a `kubectl patch`, the folder's next apply) starts
/// from it.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = folder::parse_documents(text) else {
        return;
    };
    for doc in &docs {
        let Ok(prepared) = apply::prepare(doc, "fuzz.yaml") else {
            continue;
        };
        let stored = apply::fuzz_folder_apply(None, &prepared);
        if let Err(errors) = validate::validate(&without_managed_fields(&stored)) {
            panic!("the folder stores an object it would refuse: {errors:?}\n{stored:#}");
        }
        apply::fuzz_folder_apply(Some(&stored), &prepared);
        if let Some((meta, spec)) = podsecurity::pod_of(&stored) {
            for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
                let violations = podsecurity::evaluate(&LevelVersion::latest(level), meta, spec);
                podsecurity::describe(&violations);
            }
        }
        podsecurity::policy(
            &stored["metadata"]["labels"],
            LevelVersion::latest(Level::Baseline),
        );
    }
}

/// A write through the API by a namespace token: one selector byte (the write's kind:
/// JSON patch, merge patch, strategic merge patch, server-side apply, replace), the stored
/// object's JSON or YAML, a NUL byte, then the request body. The stored object is what a
/// create would have stored. What a write stores must be valid and must be written back
/// unchanged by a replace of itself (`kubectl get -o yaml | kubectl replace -f -`).
pub fn patch(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let Some(nul) = rest.iter().position(|&b| b == 0) else {
        return;
    };
    let (base, body) = (&rest[..nul], &rest[nul + 1..]);
    let Ok(stored) = skiff_controller::api::fuzz_stored(base) else {
        return;
    };
    let Ok(written) = skiff_controller::api::fuzz_write(&stored, op, body) else {
        return;
    };
    if let Err(errors) = validate::validate(&without_managed_fields(&written)) {
        panic!("a write stores an object it would refuse: {errors:?}\n{written:#}");
    }
    let again = serde_json::to_vec(&written).expect("JSON");
    if let Err(e) = skiff_controller::api::fuzz_write(&written, 4, &again) {
        panic!(
            "replacing an object with itself is refused: {}\n{written:#}",
            e.message
        );
    }
}

/// An image layer blob (tar, gzip or zstd) unpacked as a pull or an import does, into a
/// scratch directory, with a 1 MiB limit. Whatever the layer holds, nothing may appear beside
/// the destination (a sibling directory stays empty, the blob unchanged).
pub fn layer(data: &[u8]) {
    let scratch = tempfile::Builder::new()
        .prefix("skiff-fuzz-layer-")
        .tempdir_in(scratch_root())
        .expect("a scratch directory");
    let root = scratch.path();
    let (blob, dest, beside) = (root.join("blob"), root.join("dest"), root.join("beside"));
    std::fs::write(&blob, data).expect("write the blob");
    std::fs::create_dir(&dest).expect("create dest");
    std::fs::create_dir(&beside).expect("create beside");
    let _ = skiff_agent::image::fuzz_unpack_layer(&blob, &dest, 1 << 20);
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("read the scratch directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["beside", "blob", "dest"],
        "the layer wrote beside dest"
    );
    assert!(
        std::fs::read_dir(&beside)
            .expect("read beside")
            .next()
            .is_none(),
        "the layer wrote into a sibling of dest"
    );
    assert_eq!(std::fs::read(&blob).expect("read the blob"), data);
}

/// A port-forward session's bytes from kubectl: the first byte sets the size of the chunks
/// they arrive in (1–256 bytes), the rest are SPDY/3.1 frames.
pub fn spdy(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let chunks: Vec<&[u8]> = rest.chunks(usize::from(cut) + 1).collect();
    skiff_controller::api::portforward::fuzz_session(&chunks);
}

/// A UDP packet to the cluster DNS. An answer must be a DNS message answering that query.
pub fn dns(data: &[u8]) {
    static RECORDS: LazyLock<Records> = LazyLock::new(|| {
        let mut r = Records::default();
        r.0.insert(
            "web.default.svc.cluster.local".into(),
            vec![std::net::Ipv4Addr::new(10, 43, 0, 11)],
        );
        r.0.insert(
            "db.default.svc.cluster.local".into(),
            vec![
                std::net::Ipv4Addr::new(10, 42, 0, 5),
                std::net::Ipv4Addr::new(10, 42, 0, 6),
            ],
        );
        r
    });
    if let Handled::Reply(reply) = dns::handle(data, &RECORDS) {
        let reply = hickory_proto::op::Message::from_vec(&reply).expect("the reply parses");
        let query = hickory_proto::op::Message::from_vec(data).expect("the query parsed");
        assert_eq!(reply.metadata.id, query.metadata.id);
        assert_eq!(reply.queries.first(), query.queries.first());
    }
}

/// `obj` without `metadata.managedFields` (the server's record; writers never send it back
/// for validation).
fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(md) = obj
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        md.remove("managedFields");
    }
    obj
}

/// Where layer targets unpack: memory (`/dev/shm`) when there is one, else the temp dir.
fn scratch_root() -> &'static Path {
    static ROOT: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    &ROOT
}

/// The binaries' `main` without cargo-fuzz: runs `target` on each file named on the command
/// line (a crash found by a long run, replayed on stable Rust).
pub fn replay_args(target: Target) {
    for path in std::env::args_os().skip(1) {
        let data = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", Path::new(&path).display()));
        target(&data);
        println!("{}: ok", Path::new(&path).display());
    }
}
