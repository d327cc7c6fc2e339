//! `skiff image pull|rm|prune`: the command-line face of the store's pull and removal, with a
//! progress bar when stderr is a terminal and plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::gc::Removed;
use super::pull::{PullOptions, PullProgress};
use super::registries::RegistriesConfig;
use super::store::ImageStore;
use super::{gc, pull};

/// `skiff image pull REF`.
pub fn pull(
    reference: &str,
    registries: &Path,
    platform: Option<&str>,
    data_dir: &Path,
) -> Result<()> {
    let store = ImageStore::open(data_dir).context("opening the image store")?;
    let registries = RegistriesConfig::load(registries)?;
    let platform = match platform {
        None => None,
        Some(p) => {
            let parts: Vec<&str> = p.split('/').collect();
            match parts.as_slice() {
                [os, arch] => Some((os.to_string(), arch.to_string(), None)),
                [os, arch, variant] => {
                    Some((os.to_string(), arch.to_string(), Some(variant.to_string())))
                }
                _ => bail!("--platform {p:?}: expected os/arch[/variant]"),
            }
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let view = Arc::new(Mutex::new(View {
        terminal,
        layers: HashMap::new(),
        total: 0,
        last_draw: None,
        started: Instant::now(),
    }));
    let progress = {
        let view = view.clone();
        Arc::new(move |event: &PullProgress| view.lock().expect("not poisoned").event(event))
    };
    let options = PullOptions {
        registries,
        platform,
        progress: Some(progress),
        max_concurrent_downloads: 3,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let image = rt.block_on(pull::pull(&store, reference, &options));
    if terminal {
        eprintln!();
    }
    let image = image?;
    let names = if image.names.is_empty() {
        reference.to_string()
    } else {
        image.names.join(", ")
    };
    println!("pulled {} {names}", image.id);
    Ok(())
}

struct View {
    terminal: bool,
    layers: HashMap<String, (u64, u64)>,
    total: u64,
    last_draw: Option<Instant>,
    started: Instant,
}

impl View {
    fn event(&mut self, event: &PullProgress) {
        match event {
            PullProgress::Resolved {
                endpoint,
                digest,
                layers,
                to_download,
            } => {
                self.total = *to_download;
                if self.terminal {
                    eprintln!(
                        "{endpoint}: manifest {digest}, {layers} layer(s), {} to download",
                        mb(*to_download)
                    );
                } else {
                    eprintln!(
                        "resolved {digest} from {endpoint}: {layers} layer(s), {} to download",
                        mb(*to_download)
                    );
                }
            }
            PullProgress::Downloading {
                digest,
                done,
                total,
            } => {
                let finished = done == total;
                let was_finished = self.layers.get(digest).is_some_and(|(d, t)| d == t);
                self.layers.insert(digest.clone(), (*done, *total));
                if self.terminal {
                    if finished
                        || self
                            .last_draw
                            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
                    {
                        self.draw();
                    }
                } else if finished && !was_finished {
                    eprintln!("downloaded {digest} ({})", mb(*total));
                }
            }
            PullProgress::Unpacking => {
                if self.terminal {
                    self.draw();
                    eprint!("  unpacking…");
                } else {
                    eprintln!("verifying and unpacking");
                }
            }
            PullProgress::Done { .. } => {
                if !self.terminal {
                    eprintln!("done in {:.1}s", self.started.elapsed().as_secs_f64());
                }
            }
        }
    }

    fn draw(&mut self) {
        self.last_draw = Some(Instant::now());
        let done: u64 = self.layers.values().map(|(d, _)| d).sum();
        let total = self.total.max(1);
        let width = 30;
        let filled = ((done.min(total) as f64 / total as f64) * width as f64) as usize;
        let complete = self.layers.values().filter(|(d, t)| d == t).count();
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {} / {}  {} layer(s) done  {:.1}s\x1b[K",
            "#".repeat(filled),
            " ".repeat(width - filled),
            mb(done),
            mb(self.total),
            complete,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `skiff image rm REF`.
pub fn rm(reference: &str, data_dir: &Path) -> Result<()> {
    let store = ImageStore::open(data_dir).context("opening the image store")?;
    let removed = gc::remove(&store, reference)?;
    report(&removed);
    Ok(())
}

/// `skiff image prune`.
pub fn prune(data_dir: &Path) -> Result<()> {
    let store = ImageStore::open(data_dir).context("opening the image store")?;
    let removed = gc::prune(&store)?;
    report(&removed);
    Ok(())
}

fn report(removed: &Removed) {
    for name in &removed.untagged {
        println!("untagged {name}");
    }
    for id in &removed.images {
        println!("deleted {id}");
    }
    println!(
        "removed {} image(s), {} layer(s), {} blob(s)",
        removed.images.len(),
        removed.layers,
        removed.blobs
    );
}
