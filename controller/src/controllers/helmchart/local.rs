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
