//! Charts as Helm loads them: a directory or a `.tgz`, `Chart.yaml` (apiVersion v1 or v2),
//! `values.yaml`, `templates/`, other files (`.Files`), `charts/` subcharts (directories or
//! archives), `.helmignore`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::values::{parse_values, Table};
use crate::Error;

/// One entry of `dependencies:` in Chart.yaml (or requirements.yaml for apiVersion v1).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub condition: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub alias: String,
    #[serde(default, rename = "import-values")]
    pub import_values: Option<serde_yaml_ng::Value>,
}

impl Dependency {
    /// `import-values` as (child path, parent path) pairs; a string `x` is
    /// (`exports.x`, the parent's root). `None` marks an entry of another shape.
    pub fn import_values(&self) -> Vec<Option<(String, String)>> {
        use serde_yaml_ng::Value as Y;
        let Some(Y::Sequence(items)) = &self.import_values else {
            return Vec::new();
        };
        items
            .iter()
            .map(|iv| match iv {
                Y::String(s) => Some((format!("exports.{s}"), String::new())),
                Y::Mapping(m) => {
                    let get = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
                    Some((get("child")?, get("parent")?))
                }
                _ => None,
            })
            .collect()
    }
}

/// Chart.yaml. Unknown fields are ignored, as Helm ignores them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kube_version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "type")]
    pub chart_type: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub home: String,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub maintainers: Vec<Maintainer>,
    #[serde(default)]
    pub icon: String,
    #[serde(default)]
    pub app_version: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub condition: String,
    #[serde(default)]
    pub tags: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Maintainer {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub url: String,
}

impl Metadata {
    pub fn app_version(&self) -> String {
        match &self.app_version {
            None | Some(serde_yaml_ng::Value::Null) => String::new(),
            Some(serde_yaml_ng::Value::String(s)) => s.clone(),
            Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
            Some(other) => serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

/// A loaded chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub metadata: Metadata,
    /// values.yaml, parsed.
    pub values: Table,
    /// `templates/...` paths (relative to the chart) and their text, sorted by path.
    pub templates: Vec<(String, String)>,
    /// Every other file (`.Files`), by path relative to the chart.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Subcharts found in `charts/`.
    pub subcharts: Vec<Chart>,
    /// `values.schema.json`, as written (checked against the chart's values at render).
    pub schema: Option<Vec<u8>>,
}

impl Chart {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn is_library(&self) -> bool {
        self.metadata.chart_type == "library"
    }
}

/// Load a chart from a directory or a `.tgz` archive.
pub fn load(path: &Path) -> Result<Chart, Error> {
    if path.is_dir() {
        let mut files = BTreeMap::new();
        read_dir(path, path, &mut files)?;
        from_files(files, &path.display().to_string())
    } else {
        let bytes =
            std::fs::read(path).map_err(|e| Error::Chart(format!("{}: {e}", path.display())))?;
        load_archive(&bytes, &path.display().to_string())
    }
}

fn read_dir(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::Chart(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Chart(format!("{}: {e}", dir.display())))?;
        let p = entry.path();
        // Follows symlinks as Helm's loader does for directories and files.
        if p.is_dir() {
            read_dir(root, &p, out)?;
        } else if !p.exists() {
            // A dangling symlink (e.g. a LICENSE link out of a repository checkout).
            continue;
        } else {
            let rel = p
                .strip_prefix(root)
                .map_err(|e| Error::Chart(e.to_string()))?
                .to_string_lossy()
                .replace('\\', "/");
            let data =
                std::fs::read(&p).map_err(|e| Error::Chart(format!("{}: {e}", p.display())))?;
            out.insert(rel, data);
        }
    }
    Ok(())
}

/// A chart directory packed as a `.tgz`, as `helm package` lays it out (every file under
/// `<folder name>/`; `.helmignore` is applied when it is loaded, as for any archive): files
/// in name order, no timestamps, mode 0644 — the same directory always packs to the same
/// bytes, so to the same digest. Refused past the loader's bound on unpacked size.
pub fn pack_dir(path: &Path) -> Result<Vec<u8>, Error> {
    let mut files = BTreeMap::new();
    read_dir(path, path, &mut files)?;
    let total: u64 = files.values().map(|d| d.len() as u64).sum();
    if total > MAX_ARCHIVE_BYTES {
        return Err(Error::Chart(format!(
            "{}: the chart's files are more than {MAX_ARCHIVE_BYTES} bytes",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "chart".into());
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (rel, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{name}/{rel}"), data.as_slice())
            .map_err(|e| Error::Chart(format!("{}: packing {rel}: {e}", path.display())))?;
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| Error::Chart(format!("{}: packing: {e}", path.display())))
}

/// Most an archive may unpack to (Helm's loader limits decompressed size too).
pub const MAX_ARCHIVE_BYTES: u64 = 100 << 20;

/// Load a chart from `.tgz` bytes; the archive's first path component is the chart folder.
pub fn load_archive(bytes: &[u8], origin: &str) -> Result<Chart, Error> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut ar = tar::Archive::new(gz.take(MAX_ARCHIVE_BYTES + 1));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let entries = ar
        .entries()
        .map_err(|e| Error::Chart(format!("{origin}: not a gzipped tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Chart(format!("{origin}: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| Error::Chart(format!("{origin}: {e}")))?
            .to_string_lossy()
            .replace('\\', "/");
        if path.split('/').any(|c| c == "..") {
            return Err(Error::Chart(format!(
                "{origin}: path {path:?} leaves the chart"
            )));
        }
        let Some((_, rel)) = path.split_once('/') else {
            return Err(Error::Chart(format!(
                "{origin}: file {path:?} is outside a chart folder"
            )));
        };
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| Error::Chart(format!("{origin}: {path}: {e}")))?;
        total += data.len() as u64;
        if total > MAX_ARCHIVE_BYTES {
            return Err(Error::Chart(format!(
                "{origin}: archive unpacks to more than {MAX_ARCHIVE_BYTES} bytes"
            )));
        }
        files.insert(rel.to_string(), data);
    }
    from_files(files, origin)
}

/// `.helmignore` rules (gitignore-like: globs on the path or on any name, `dir/`, `!`).
struct Ignore {
    rules: Vec<(bool, bool, glob::Pattern)>, // (negate, dir_only, pattern)
}

impl Ignore {
    fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (neg, l) = match l.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, l),
            };
            let (dir_only, l) = match l.strip_suffix('/') {
                Some(r) => (true, r),
                None => (false, l),
            };
            let l = l.trim_start_matches("./").trim_start_matches('/');
            if let Ok(p) = glob::Pattern::new(l) {
                rules.push((neg, dir_only, p));
            }
        }
        Ignore { rules }
    }

    fn ignored(&self, path: &str) -> bool {
        let mut ignored = false;
        // A path is ignored when it or any of its parent folders matches.
        let parts: Vec<&str> = path.split('/').collect();
        for (neg, dir_only, p) in &self.rules {
            for i in 0..parts.len() {
                let is_dir = i + 1 < parts.len();
                if *dir_only && !is_dir {
                    continue;
                }
                let sub = parts[..=i].join("/");
                let hit = if p.as_str().contains('/') {
                    p.matches(&sub)
                } else {
                    p.matches(parts[i])
                };
                if hit {
                    ignored = !neg;
                }
            }
        }
        ignored
    }
}

/// Build a chart from its files (paths relative to the chart folder).
pub fn from_files(mut files: BTreeMap<String, Vec<u8>>, origin: &str) -> Result<Chart, Error> {
    if let Some(ig) = files.get(".helmignore") {
        let ig = Ignore::parse(&String::from_utf8_lossy(ig));
        files.retain(|p, _| p == "Chart.yaml" || !ig.ignored(p));
    }
    let chart_yaml = files
        .remove("Chart.yaml")
        .ok_or_else(|| Error::Chart(format!("{origin}: Chart.yaml file is missing")))?;
    let mut metadata: Metadata = serde_yaml_ng::from_slice(&chart_yaml)
        .map_err(|e| Error::Chart(format!("{origin}: Chart.yaml: {e}")))?;
    match metadata.api_version.as_str() {
        "v2" => {}
        "v1" | "" => {
            metadata.api_version = "v1".into();
            if let Some(req) = files.remove("requirements.yaml") {
                #[derive(Deserialize)]
                struct Req {
                    #[serde(default)]
                    dependencies: Vec<Dependency>,
                }
                let r: Req = serde_yaml_ng::from_slice(&req)
                    .map_err(|e| Error::Chart(format!("{origin}: requirements.yaml: {e}")))?;
                metadata.dependencies = r.dependencies;
            }
            files.remove("requirements.lock");
        }
        other => {
            return Err(Error::Chart(format!(
                "{origin}: Chart.yaml: apiVersion {other:?} is not supported (v1 or v2)"
            )))
        }
    }
    if metadata.name.is_empty() {
        return Err(Error::Chart(format!(
            "{origin}: Chart.yaml: name is required"
        )));
    }
    if metadata.version.is_empty() {
        return Err(Error::Chart(format!(
            "{origin}: Chart.yaml: version is required"
        )));
    }
    if !matches!(metadata.chart_type.as_str(), "" | "application" | "library") {
        return Err(Error::Chart(format!(
            "{origin}: Chart.yaml: type {:?} is not valid (application or library)",
            metadata.chart_type
        )));
    }
    for d in &metadata.dependencies {
        for iv in d.import_values() {
            if iv.is_none() {
                return Err(Error::Chart(format!(
                    "{origin}: Chart.yaml: dependency {:?}: import-values entries are a string or a map with child and parent",
                    d.name
                )));
            }
        }
    }
    let values = match files.remove("values.yaml") {
        Some(v) => parse_values(
            &String::from_utf8_lossy(&v),
            &format!("{origin}/values.yaml"),
        )?,
        None => Table::new(),
    };
    let schema = files.remove("values.schema.json");
    files.remove("Chart.lock");

    let mut templates = Vec::new();
    let mut sub_files: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut sub_archives = Vec::new();
    let mut rest = BTreeMap::new();
    for (path, data) in files {
        if path.starts_with("templates/") {
            let text = String::from_utf8(data).map_err(|_| {
                Error::Chart(format!("{origin}/{path}: template is not valid UTF-8"))
            })?;
            templates.push((path, text));
        } else if let Some(sub) = path.strip_prefix("charts/") {
            match sub.split_once('/') {
                Some((dir, inner)) => {
                    sub_files
                        .entry(dir.to_string())
                        .or_default()
                        .insert(inner.to_string(), data);
                }
                None if sub.ends_with(".tgz") || sub.ends_with(".tar.gz") => {
                    sub_archives.push((sub.to_string(), data));
                }
                None => {}
            }
        } else {
            rest.insert(path, data);
        }
    }
    let mut subcharts = Vec::new();
    for (dir, files) in sub_files {
        subcharts.push(from_files(files, &format!("{origin}/charts/{dir}"))?);
    }
    for (name, data) in sub_archives {
        subcharts.push(load_archive(&data, &format!("{origin}/charts/{name}"))?);
    }
    Ok(Chart {
        metadata,
        values,
        templates,
        files: rest,
        subcharts,
        schema,
    })
}
