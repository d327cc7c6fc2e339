//! `skiff check-config`: reads the configuration as `skiff server` would (the same flags and
//! `config.yaml`), then registries.yaml and every file of the manifests folder — parsed and
//! validated document by document exactly as the folder's apply does (`folder::apply::prepare`),
//! objects declared twice in one file included — and says what is wrong, file by file, without
//! starting anything or touching the data directory. Exit status 1 when anything is wrong.
//! What only the running cluster can say (a namespace created with kubectl, a host port taken)
//! is checked when the folder applies.

use std::collections::HashMap;

use anyhow::{bail, Result};
use skiff_controller::folder::{self, apply};
use skiff_controller::model::store::ObjectKey;

use crate::config::ServerArgs;

pub fn run(args: ServerArgs) -> Result<()> {
    let config = args.resolve()?;
    println!("config: ok (data dir {})", config.data_dir.display());
    let mut problems = 0;
    if config.registries.exists() {
        match skiff_agent::image::registries::RegistriesConfig::load(&config.registries) {
            Ok(_) => println!("{}: ok", config.registries.display()),
            Err(e) => {
                problems += 1;
                println!("{}: {e}", config.registries.display());
            }
        }
    }
    let dir = &config.manifests;
    let listing = match folder::scan::scan(dir) {
        Ok(l) => l,
        Err(e) => bail!("the manifests folder {}: {e}", dir.display()),
    };
    for rel in &listing.files {
        let path = dir.join(rel);
        let source = rel.display().to_string();
        let errors = check_file(&path, &source);
        if errors.is_empty() {
            println!("{source}: ok");
        } else {
            problems += 1;
            for e in errors {
                println!("{source}: {e}");
            }
        }
    }
    println!(
        "{} manifest file(s) in {}",
        listing.files.len(),
        dir.display()
    );
    if problems > 0 {
        bail!("{problems} file(s) with errors");
    }
    Ok(())
}

/// What is wrong with one manifest file (nothing when the folder would apply it).
fn check_file(path: &std::path::Path, source: &str) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("cannot be read: {e}")],
    };
    let docs = match folder::parse_documents(&text) {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    let mut errors = Vec::new();
    let mut seen: HashMap<ObjectKey, usize> = HashMap::new();
    for doc in &docs {
        match apply::prepare(doc, source) {
            Ok(obj) => {
                let key = ObjectKey::of(&obj);
                if let Some(first) = seen.insert(key.clone(), doc.index) {
                    let doc = doc.index;
                    errors.push(apply::ApplyError::Duplicate { doc, first, key }.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors
}
