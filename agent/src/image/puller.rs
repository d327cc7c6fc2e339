//! What the pod worker asks of the image store: "is this container's image ready?" — answered at
//! once, without blocking, as kubelet's image manager does. Pulls run in background tasks, one
//! per (reference, credentials); a failed pull is retried with kubelet's back-off (10 s doubling
//! to 5 min) and reported as `ErrImagePull`, then `ImagePullBackOff`, each carrying the
//! registry's message. Also remembers which images pods asked for recently, so that garbage
//! collection never removes an image a pod is about to (re)start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use super::auth::CredentialSet;
use super::error::ImageError;
use super::pull::PullOptions;
use super::reference::Reference;
use super::registries::RegistriesConfig;
use super::store::{Image, ImageStore};

/// First back-off after a failed pull; doubles up to [`MAX_BACKOFF`] (kubelet's values).
const BASE_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// An image a pod asked for within this long counts as in use.
pub(crate) const RECENT_USE: Duration = Duration::from_secs(600);

/// A container's image, as the pod worker wants it.
#[derive(Debug, Clone)]
pub struct ImageWanted {
    /// The reference as written in the pod spec.
    pub reference: String,
    /// `imagePullPolicy`: Always, IfNotPresent or Never.
    pub policy: String,
    /// Credentials from the pod's imagePullSecrets.
    pub credentials: CredentialSet,
    /// For `Always`: only a pull that finished after this time counts (the container's last
    /// exit, so that every start pulls, as kubelet does). `None`: any pull since skiff started.
    pub pulled_after: Option<SystemTime>,
    /// Who wants it, for the log ("namespace/pod container").
    pub who: String,
}

/// The answer.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// The image is in the store.
    Ready(Box<Image>),
    /// Not yet: the container waits with this reason and message.
    Waiting {
        /// `ContainerCreating` (pulling), `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`,
        /// `InvalidImageName`.
        reason: &'static str,
        /// What to tell the user (the registry's message for failures).
        message: String,
    },
}

#[derive(Debug, Default)]
struct Entry {
    in_flight: bool,
    last_success: Option<(SystemTime, String)>,
    last_error: Option<String>,
    failures: u32,
    retry_at: Option<Instant>,
    error_shown: bool,
}

/// Pull state, shared by every clone of a [`Puller`].
#[derive(Debug, Default)]
struct State {
    entries: Mutex<HashMap<String, Entry>>,
    recent: Mutex<HashMap<String, Instant>>,
    registries: Mutex<Option<PathBuf>>,
    default_endpoint_disabled: AtomicBool,
    gc_started: AtomicBool,
}

/// Pulls images into an [`ImageStore`], from the registries configuration in force; answers
/// the pod worker's "is this image ready?". Clones share their state.
#[derive(Debug, Clone)]
pub struct Puller {
    store: ImageStore,
    state: Arc<State>,
}

impl Puller {
    /// A puller into `store`, with no registries configuration.
    pub fn new(store: ImageStore) -> Self {
        Puller {
            store,
            state: Default::default(),
        }
    }

    /// The store pulls go into.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Image ids pods asked for within [`RECENT_USE`].
    pub fn recently_wanted(&self) -> Vec<String> {
        recently_wanted(&self.state)
    }

    /// Where registries.yaml is read from (on every pull, so edits apply without a restart).
    pub fn with_registries(self, path: PathBuf) -> Self {
        *self.state.registries.lock().expect("not poisoned") = Some(path);
        self
    }

    /// The registries configuration in force (empty when none is configured or the file is
    /// missing).
    pub fn registries(&self) -> Result<RegistriesConfig, ImageError> {
        let path = self.state.registries.lock().expect("not poisoned").clone();
        let mut config = match path {
            Some(path) => RegistriesConfig::load(&path)?,
            None => RegistriesConfig::default(),
        };
        config.default_endpoint_disabled = self
            .state
            .default_endpoint_disabled
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(config)
    }

    /// Never pull from a registry's own endpoint unless it is on loopback: only mirrors.
    pub fn without_default_registry_endpoint(self, disabled: bool) -> Self {
        self.state
            .default_endpoint_disabled
            .store(disabled, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Pulls `reference` into the store (see [`super::pull::pull`]).
    pub async fn pull(&self, reference: &str, options: &PullOptions) -> Result<Image, ImageError> {
        super::pull::pull(&self.store, reference, options).await
    }

    /// Answers at once whether `wanted` is ready, starting (or retrying, after its back-off) a
    /// background pull when its policy calls for one. Must be called inside a tokio runtime.
    pub fn ensure(&self, wanted: &ImageWanted) -> Readiness {
        self.start_gc_once();
        let parsed = match Reference::parse(&wanted.reference) {
            Ok(p) => p,
            Err(e) => {
                return Readiness::Waiting {
                    reason: "InvalidImageName",
                    message: e.to_string(),
                }
            }
        };
        if let Some(answer) = self.answer_without_pull(wanted) {
            return answer;
        }
        let key = format!("{parsed}|{}", credentials_hash(&wanted.credentials));
        let mut entries = self.state.entries.lock().expect("not poisoned");
        let entry = entries.entry(key.clone()).or_default();
        if wanted.policy == "Always" {
            if let Some((at, id)) = &entry.last_success {
                if wanted.pulled_after.is_none_or(|after| *at >= after) {
                    if let Ok(Some(image)) = self.store.resolve(id) {
                        return self.used(image);
                    }
                }
            }
        }
        let (waiting, start) = pull_readiness(entry, &wanted.reference, Instant::now());
        drop(entries);
        if start {
            self.spawn_pull(wanted.clone(), key);
        }
        waiting
    }

    /// The answer when the pull policy settles it from the store alone: `Never` always,
    /// `IfNotPresent` when the image is there.
    fn answer_without_pull(&self, wanted: &ImageWanted) -> Option<Readiness> {
        match wanted.policy.as_str() {
            "Never" => Some(match self.present(wanted) {
                Some(image) => self.used(image),
                None => Readiness::Waiting {
                    reason: "ErrImageNeverPull",
                    message: format!(
                        "Container image {:?} is not present with pull policy of Never",
                        wanted.reference
                    ),
                },
            }),
            "Always" => None,
            _ => self.present(wanted).map(|image| self.used(image)),
        }
    }

    /// The image in the store, if it is there.
    fn present(&self, wanted: &ImageWanted) -> Option<Image> {
        match self.store.resolve(&wanted.reference) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(image = %wanted.reference, %error, "reading the image store");
                None
            }
        }
    }

    /// Ready, and remembered as recently used.
    fn used(&self, image: Image) -> Readiness {
        self.state
            .recent
            .lock()
            .expect("not poisoned")
            .insert(image.id.clone(), Instant::now());
        Readiness::Ready(Box::new(image))
    }

    fn spawn_pull(&self, wanted: ImageWanted, key: String) {
        let puller = self.clone();
        tracing::info!(image = %wanted.reference, who = %wanted.who, "pulling image");
        tokio::spawn(async move {
            let started = Instant::now();
            let result = match puller.registries() {
                Ok(registries) => {
                    let options = PullOptions {
                        registries,
                        credentials: wanted.credentials.clone(),
                        max_concurrent_downloads: 3,
                        ..Default::default()
                    };
                    puller.pull(&wanted.reference, &options).await
                }
                Err(e) => Err(e),
            };
            let mut entries = puller.state.entries.lock().expect("not poisoned");
            let entry = entries.entry(key).or_default();
            entry.in_flight = false;
            match result {
                Ok(image) => {
                    tracing::info!(image = %wanted.reference, id = %image.id, took = ?started.elapsed(),
                        "successfully pulled image");
                    entry.last_success = Some((SystemTime::now(), image.id));
                    entry.failures = 0;
                    entry.last_error = None;
                    entry.retry_at = None;
                }
                Err(error) => {
                    entry.failures += 1;
                    let delay = BASE_BACKOFF
                        .saturating_mul(1 << (entry.failures - 1).min(8))
                        .min(MAX_BACKOFF);
                    tracing::warn!(image = %wanted.reference, who = %wanted.who, retry_in = ?delay,
                        "failed to pull image: {error}");
                    entry.last_error = Some(format!(
                        "failed to pull image {:?}: {error}",
                        wanted.reference
                    ));
                    entry.retry_at = Some(Instant::now() + delay);
                    entry.error_shown = false;
                }
            }
        });
    }

    /// Starts the disk-pressure garbage collector the first time pods ask for images.
    fn start_gc_once(&self) {
        if self.state.gc_started.swap(true, Ordering::SeqCst) {
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            let state = self.state.clone();
            tokio::spawn(super::gc::run(self.store.clone(), move || {
                recently_wanted(&state)
            }));
        }
    }
}

fn recently_wanted(state: &State) -> Vec<String> {
    let now = Instant::now();
    let mut recent = state.recent.lock().expect("not poisoned");
    recent.retain(|_, t| now.duration_since(*t) < RECENT_USE);
    recent.keys().cloned().collect()
}

fn credentials_hash(credentials: &CredentialSet) -> String {
    let mut hasher = Sha256::new();
    for (host, c) in credentials {
        hasher.update(host.as_bytes());
        for part in [&c.username, &c.password, &c.token, &c.identity_token] {
            hasher.update([0]);
            hasher.update(part.as_deref().unwrap_or_default().as_bytes());
        }
    }
    hex::encode(&hasher.finalize()[..8])
}
/// While an image is not in the store: what to tell, given its pull state, and whether to
/// start a pull now (marked in flight). A pull that failed is retried after its back-off; its
/// error is shown once as `ErrImagePull`, then as `ImagePullBackOff`.
fn pull_readiness(entry: &mut Entry, reference: &str, now: Instant) -> (Readiness, bool) {
    let back_off = |entry: &Entry| Readiness::Waiting {
        reason: "ImagePullBackOff",
        message: format!(
            "Back-off pulling image {:?}: ErrImagePull: {}",
            reference,
            entry.last_error.clone().unwrap_or_default()
        ),
    };
    let pulling = || Readiness::Waiting {
        reason: "ContainerCreating",
        message: format!("Pulling image {:?}", reference),
    };
    if entry.in_flight {
        let waiting = if entry.failures > 0 {
            back_off(entry)
        } else {
            pulling()
        };
        return (waiting, false);
    }
    if entry.failures > 0 && entry.retry_at.is_some_and(|t| t > now) {
        if !entry.error_shown {
            entry.error_shown = true;
            let shown = Readiness::Waiting {
                reason: "ErrImagePull",
                message: entry.last_error.clone().unwrap_or_default(),
            };
            return (shown, false);
        }
        return (back_off(entry), false);
    }
    entry.in_flight = true;
    let waiting = if entry.failures > 0 {
        back_off(entry)
    } else {
        pulling()
    };
    (waiting, true)
}
