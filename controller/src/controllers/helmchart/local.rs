//! The chart fetcher for what needs no network: `chartContent` and paths under the charts
//! folder. Chart repositories and OCI registries are another fetcher's (the daemon puts it
//! beside this one); without it they are refused with that said.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use skiff_helm::source::{ChartFetcher, ChartSource, FetchError, FetchFuture, Fetched};

/// Fetches `Content` and `Local` sources; hands `Repo` and `Url` to `remote`, if any.
pub struct LocalFetcher {
    /// The fetcher of chart repositories and OCI references.
    pub remote: Option<Arc<dyn ChartFetcher>>,
}

/// At most this much of a local chart archive is read (skiff-helm's unpacked limit).
const MAX_ARCHIVE: u64 = 100 << 20;

impl ChartFetcher for LocalFetcher {
    fn fetch<'a>(&'a self, source: &'a ChartSource) -> FetchFuture<'a> {
        Box::pin(async move {
            let archive = match source {
                ChartSource::Content(bytes) => bytes.clone(),
                ChartSource::Local(path) => {
                    let meta = tokio::fs::metadata(path).await.map_err(|e| {
                        FetchError(format!("the chart {}: {e}", path.display()))
                    })?;
                    if meta.is_dir() {
                        archive_of_dir(path).await?
                    } else if meta.len() > MAX_ARCHIVE {
                        return Err(FetchError(format!(
                            "the chart {} is larger than {MAX_ARCHIVE} bytes",
                            path.display()
                        )));
                    } else {
                        tokio::fs::read(path).await.map_err(|e| {
                            FetchError(format!("reading the chart {}: {e}", path.display()))
                        })?
                    }
                }
                ChartSource::Repo { .. } | ChartSource::Url { .. } => match &self.remote {
                    Some(r) => return r.fetch(source).await,
                    None => {
                        return Err(FetchError(
                            "chart repositories and OCI registries are not available in this build of skiff: use spec.chartContent or a chart under <data-dir>/charts/".into(),
                        ))
                    }
                },
            };
            let chart = skiff_helm::chart::load_archive(&archive, "the chart")
                .map_err(|e| FetchError(e.to_string()))?;
            Ok(Fetched {
                digest: format!("sha256:{}", hex::encode(Sha256::digest(&archive))),
                version: chart.metadata.version,
                archive,
            })
        })
    }
}

/// A chart directory as a `.tgz` (so that a directory and an archive reach the renderer, the
/// digest and the release record the same way).
async fn archive_of_dir(dir: &std::path::Path) -> Result<Vec<u8>, FetchError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, FetchError> {
        let chart = skiff_helm::load(&dir).map_err(|e| FetchError(e.to_string()))?;
        let name = chart.name().to_string();
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        tar.append_dir_all(&name, &dir)
            .map_err(|e| FetchError(format!("packing {}: {e}", dir.display())))?;
        let gz = tar
            .into_inner()
            .map_err(|e| FetchError(format!("packing {}: {e}", dir.display())))?;
        gz.finish()
            .map_err(|e| FetchError(format!("packing {}: {e}", dir.display())))
    })
    .await
    .map_err(|e| FetchError(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[tokio::test]
    async fn a_chart_directory_and_its_archive_fetch_alike() {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("web");
        write(
            &chart,
            "Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.2.3\n",
        );
        write(&chart, "values.yaml", "a: 1\n");
        write(&chart, "templates/cm.yaml", "kind: ConfigMap\n");
        let f = LocalFetcher { remote: None };
        let from_dir = f.fetch(&ChartSource::Local(chart.clone())).await.unwrap();
        assert_eq!(from_dir.version, "1.2.3");
        assert!(from_dir.digest.starts_with("sha256:"));
        let loaded = skiff_helm::chart::load_archive(&from_dir.archive, "t").unwrap();
        assert_eq!(loaded.templates.len(), 1, "{:?}", loaded.templates);
        // The same bytes as chartContent: the same digest.
        let content = f
            .fetch(&ChartSource::Content(from_dir.archive.clone()))
            .await
            .unwrap();
        assert_eq!(content.digest, from_dir.digest);
        let e = f
            .fetch(&ChartSource::Local(dir.path().join("missing")))
            .await
            .unwrap_err();
        assert!(e.0.contains("missing"), "{e}");
        let e = f
            .fetch(&ChartSource::Repo {
                url: "https://charts.example/".into(),
                chart: "web".into(),
                version: String::new(),
                access: Default::default(),
            })
            .await
            .unwrap_err();
        assert!(e.0.contains("not available in this build"), "{e}");
        let e = f
            .fetch(&ChartSource::Content(b"not a tgz".to_vec()))
            .await
            .unwrap_err();
        assert!(!e.0.is_empty());
    }
}
