//! Issue 11: a corpus of real manifest files from public home-lab and app repositories
//! (`e2e/testdata/real-manifests/`, provenance in its `PROVENANCE.md`), read and validated
//! exactly as the manifests folder reads and validates a file: `folder::parse_documents`,
//! then `folder::apply::prepare` on every document (drops `status`, validates, fills a
//! missing namespace). A file is accepted when every document of it is.
//!
//! The test prints a report (and, with `SKIFF_WRITE_REAL_MANIFESTS_REPORT=1`, rewrites
//! `REPORT.md` next to the corpus) and fails if fewer files are accepted than today.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use skiff_controller::folder::apply::{prepare, ApplyError};
use skiff_controller::folder::parse_documents;

/// Files of the corpus accepted when this test was written. This is a regression guard:
/// it may only go up (raise it when skiff accepts more), never down.
const ACCEPTED_FLOOR: usize = 73;

/// Files a real Kubernetes API server refuses as well (placeholders left for a later
/// substitution step, or a field the API does not have): reported apart, and left out of the
/// rate "of what `kubectl apply` accepts".
const KUBERNETES_REFUSES_TOO: &[(&str, &str)] = &[
    (
        "abalage__home-assistant-k8s__base__ingress.yml",
        "host \"REPLACEME\" is a placeholder, not a DNS-1123 subdomain (upper case)",
    ),
    (
        "d-uzlov__k8s-homelab__torrents__qbittorrent__pvc__config.yaml",
        "storage \"AUTOMATIC_REPLACE\" is a placeholder, not a quantity",
    ),
    (
        "kubernetes__examples___archived__volumes__storageos__storageos-pod.yaml",
        "storageos.pool is not a field of StorageOSVolumeSource (strict field validation refuses it)",
    ),
    (
        "d-uzlov__k8s-homelab__metrics__component-monitoring__etcd__built-in-etcd__cert-extractor.yaml",
        "spec.containers[0].volumeMounts[0].name: Not found: \"pki-etcd\" (the pod defines no such volume)",
    ),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/testdata/real-manifests")
}

/// What refused a file: the document, the object, the first field and its message, and every
/// refused field of every document (one refusal can hide others behind it).
struct Refusal {
    doc: usize,
    what: String,
    field: String,
    message: String,
    all_fields: Vec<String>,
}

fn check(text: &str, source: &str) -> Result<usize, Refusal> {
    let docs = parse_documents(text).map_err(|e| Refusal {
        doc: 0,
        what: "(parse)".into(),
        field: "(syntax)".into(),
        message: e.to_string(),
        all_fields: vec!["(syntax)".into()],
    })?;
    let mut refusal: Option<Refusal> = None;
    for doc in &docs {
        let (index, what, errors) = match prepare(doc, source) {
            Ok(_) => continue,
            Err(ApplyError::Invalid { doc, what, errors }) => (
                doc,
                what,
                errors
                    .into_iter()
                    .map(|e| (e.field, e.message))
                    .collect::<Vec<_>>(),
            ),
            Err(other) => (
                doc.index,
                String::new(),
                vec![("(other)".to_string(), other.to_string())],
            ),
        };
        let fields = errors.iter().map(|(f, _)| f.clone());
        match refusal.as_mut() {
            Some(r) => r.all_fields.extend(fields),
            None => {
                let (field, message) = errors.first().cloned().unwrap_or_default();
                refusal = Some(Refusal {
                    doc: index,
                    what,
                    field,
                    message,
                    all_fields: fields.collect(),
                });
            }
        }
    }
    match refusal {
        Some(r) => Err(r),
        None => Ok(docs.len()),
    }
}

/// The blocking field with list indices removed, so that the tally groups alike fields.
fn field_shape(field: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn real_manifests_are_accepted() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(skiff_controller::folder::is_manifest_name)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 50, "the corpus has {} files", files.len());

    let mut accepted = 0;
    let mut refused = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("readable");
        match check(&text, &name) {
            Ok(_) => accepted += 1,
            Err(r) => refused.push((name, r)),
        }
    }

    let total = files.len();
    let pct = |n: usize, of: usize| 100.0 * n as f64 / of as f64;
    let too = |name: &str| {
        KUBERNETES_REFUSES_TOO
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, why)| *why)
    };
    let kube_ok = total - refused.iter().filter(|(n, _)| too(n).is_some()).count();
    let tally = |fields: &mut dyn Iterator<Item = String>| {
        let mut t: BTreeMap<String, usize> = BTreeMap::new();
        for f in fields {
            *t.entry(f).or_default() += 1;
        }
        let mut t: Vec<_> = t.into_iter().collect();
        t.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        t
    };
    // First blocking field of each file, then every refused field (counted once a file).
    let first = tally(&mut refused.iter().map(|(_, r)| field_shape(&r.field)));
    let every = tally(&mut refused.iter().flat_map(|(_, r)| {
        let mut f: Vec<String> = r.all_fields.iter().map(|f| field_shape(f)).collect();
        f.sort();
        f.dedup();
        f
    }));

    let mut report = String::new();
    writeln!(report, "# Real manifests: acceptance report\n").unwrap();
    writeln!(
        report,
        "Generated by `SKIFF_WRITE_REAL_MANIFESTS_REPORT=1 cargo test -p skiff-controller \
         --test real_manifests`. Each file is parsed and validated as the manifests folder \
         does (`folder::parse_documents`, then `folder::apply::prepare` on every document: \
         `status` dropped, validated, namespace filled); a file is accepted when all its \
         documents are. Provenance: `PROVENANCE.md`.\n"
    )
    .unwrap();
    writeln!(
        report,
        "**Accepted: {accepted}/{total} files ({:.1} %).** Of the {kube_ok} files a \
         Kubernetes API server accepts unchanged ({} are refused by Kubernetes too, marked \
         below), skiff accepts {accepted} ({:.1} %).\n",
        pct(accepted, total),
        total - kube_ok,
        pct(accepted, kube_ok)
    )
    .unwrap();
    writeln!(report, "## First blocking field, by frequency\n").unwrap();
    writeln!(report, "| files | field |").unwrap();
    writeln!(report, "| ---: | --- |").unwrap();
    for (field, n) in &first {
        writeln!(report, "| {n} | `{field}` |").unwrap();
    }
    writeln!(
        report,
        "\n## Every refused field, by the number of files it appears in\n\n\
         A file can have several blockers: fixing the first one does not make it accepted.\n"
    )
    .unwrap();
    writeln!(report, "| files | field |").unwrap();
    writeln!(report, "| ---: | --- |").unwrap();
    for (field, n) in &every {
        writeln!(report, "| {n} | `{field}` |").unwrap();
    }
    writeln!(report, "\n## Refused files\n").unwrap();
    writeln!(
        report,
        "| file | document | object | first field | message | other refused fields |"
    )
    .unwrap();
    writeln!(report, "| --- | ---: | --- | --- | --- | --- |").unwrap();
    for (name, r) in &refused {
        let mut message = r.message.replace('|', "\\|").replace('\n', " ");
        if let Some(why) = too(name) {
            message = format!("{message} — **Kubernetes refuses it too**: {why}");
        }
        let mut others: Vec<String> = r
            .all_fields
            .iter()
            .skip(1)
            .map(|f| field_shape(f))
            .collect();
        others.dedup();
        let others = others
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            report,
            "| {name} | {} | {} | `{}` | {message} | {others} |",
            r.doc, r.what, r.field
        )
        .unwrap();
    }
    println!("{report}");
    if std::env::var_os("SKIFF_WRITE_REAL_MANIFESTS_REPORT").is_some() {
        std::fs::write(dir.join("REPORT.md"), &report).expect("write REPORT.md");
    }

    assert!(
        accepted >= ACCEPTED_FLOOR,
        "only {accepted}/{total} real manifest files are accepted; {ACCEPTED_FLOOR} were \
         before: skiff now refuses files it accepted (see the report above)"
    );
}
