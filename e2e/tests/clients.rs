//! The official Kubernetes clients as peers (issue 17): the Python client (PyPI `kubernetes`)
//! and the JavaScript client (npm `@kubernetes/client-node`) each run one scenario against a
//! real `skiff server` — create a Deployment, list, watch its pod (ADDED, MODIFIED), patch
//! (JSON merge and strategic merge), server-side apply, logs, exec (the clients' own WebSocket
//! protocols) and delete. The scripts are `e2e/clients/python/scenario.py` and
//! `e2e/clients/js/scenario.mjs`; each prints `ok <step>` per step and `PASS`.
//!
//! The clients are installed at test time, pinned (`requirements.txt`; `package.json` with its
//! lock file), into [`e2e_cache_dir`] keyed by those files, so a clean CI machine gets them and
//! a second run reuses them. A failed install fails the test: it is not skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_e2e::kubectl::*;
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e-clients:v1";

/// The steps each scenario prints as `ok <step>:`.
const STEPS: &[&str] = &[
    "create",
    "list",
    "watch",
    "patch merge",
    "patch strategic",
    "server-side apply",
    "logs",
    "exec",
    "delete",
];

fn clients_dir() -> PathBuf {
    workspace_root().join("e2e/clients")
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn must(cmd: &mut Command, what: &str) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}): {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A directory in the e2e cache named `prefix-<hash of the files>`, made by `install` once
/// (marked complete only when it succeeded; a half-made one is made again).
fn cached_install(prefix: &str, key_files: &[PathBuf], install: impl FnOnce(&Path)) -> PathBuf {
    let mut key = Vec::new();
    for f in key_files {
        key.extend(std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())));
    }
    let dir = e2e_cache_dir().join(format!("{prefix}-{}", &sha256_hex(&key)[..16]));
    let done = dir.join(".complete");
    if !done.is_file() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the client's cache dir");
        install(&dir);
        std::fs::write(&done, b"").unwrap();
    }
    dir
}

/// A venv with the pinned Python client.
fn python_client() -> PathBuf {
    let req = clients_dir().join("python/requirements.txt");
    let venv = cached_install("python-kubernetes", std::slice::from_ref(&req), |dir| {
        must(
            Command::new("python3").arg("-m").arg("venv").arg(dir),
            "python3 -m venv (Python 3 with venv and pip is needed)",
        );
        must(
            Command::new(dir.join("bin/pip"))
                .args(["install", "--no-input", "--disable-pip-version-check", "-r"])
                .arg(&req),
            "pip install of the pinned kubernetes client (PyPI must be reachable)",
        );
    });
    venv.join("bin/python")
}

/// A directory with the pinned JavaScript client in `node_modules` (and the scenario).
fn js_client() -> PathBuf {
    let src = clients_dir().join("js");
    let files = [src.join("package.json"), src.join("package-lock.json")];
    let dir = cached_install("js-client-node", &files, |dir| {
        for f in &files {
            std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
        }
        must(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir),
            "npm ci of the pinned @kubernetes/client-node (Node 20 and the npm registry are needed)",
        );
    });
    // The script is copied each time (it is not part of the key): node resolves its imports
    // from the node_modules beside it.
    std::fs::copy(src.join("scenario.mjs"), dir.join("scenario.mjs")).unwrap();
    dir.join("scenario.mjs")
}

/// Runs one client's scenario against a fresh server, in its own namespace, and checks that
/// every step passed.
fn run_scenario(client: &str, program: &Path, script: &Path) {
    let server = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&server);
    let ns = format!("{client}-client");
    k.ok(&["create", "namespace", &ns]);
    let o = Command::new("timeout")
        .arg("300")
        .arg(program)
        .arg(script)
        .arg(&server.kubeconfig)
        .arg(&ns)
        .arg(IMAGE)
        .output()
        .expect("run the scenario");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{client} scenario:\n{out}{err}");
    let missing: Vec<_> = STEPS
        .iter()
        .filter(|s| !out.lines().any(|l| l.starts_with(&format!("ok {s}:"))))
        .collect();
    assert!(
        o.status.success() && missing.is_empty() && out.lines().any(|l| l == "PASS"),
        "the {client} client's scenario failed ({}); steps not passed: {missing:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}\n--- server log ---\n{}",
        o.status,
        server.log_tail(40)
    );
    // Nothing of the scenario is left behind.
    let left = k.ok(&["get", "deploy,rs,pods", "-n", &ns, "-o", "name"]);
    assert!(left.trim().is_empty(), "left in {ns}: {left}");
}

#[test]
fn python_client_scenario() {
    let python = python_client();
    run_scenario("python", &python, &clients_dir().join("python/scenario.py"));
}

#[test]
fn javascript_client_scenario() {
    let script = js_client();
    run_scenario("js", Path::new("node"), &script);
}
