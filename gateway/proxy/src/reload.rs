//! Reloading the PKS files, vocabulary, policies, block list and sanctions: on SIGHUP, when
//! one of those files changes on disk, and on the admin API's call. A reload parses and
//! validates everything and swaps the snapshot atomically; in-flight requests finish on the
//! old one. A broken edit keeps the running set, is logged with file and line, and counted.
//! Before the swap the candidate is reviewed (`gerbang_assure::review`): rules that changed
//! must still prove every invariant of `policies/invariants/` (else the reload is refused
//! like a broken file), and what the edit changes for whom is summarised in the log line,
//! the admin API's answer and the decision log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use gerbang_core::{Config, ConfigErrors, SanctionEditError};
use gerbang_policy::{Authenticator, Snapshot, reload_snapshot, reload_snapshot_with};

use crate::metrics::Metrics;

/// How long the files must stay quiet after a change before reloading: an editor's save or
/// a `cp` of many files is several events.
const SETTLE: Duration = Duration::from_millis(100);

/// What a successful reload loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadSummary {
    pub policy_hash: String,
    pub pks: usize,
    pub users: usize,
    pub sanctions: usize,
    /// PKS files parsed again (the others' content had not changed).
    pub files_parsed: usize,
    /// Whether the Cedar entities were updated in place of being built again.
    pub entities_updated: bool,
    pub duration_ms: u64,
    /// What the edit changes, in one line ("3 User IDs of 1 Pengguna gain ALAMAT").
    pub changes: String,
    /// What was proved of the rules ("14 invariants proved (cvc5 1.0.3, 900 ms)").
    pub proof: String,
}

/// Builds and swaps snapshots; one reload at a time.
pub struct Reloader {
    config: Config,
    snapshot: Arc<ArcSwap<Snapshot>>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    /// The Web Portal's sessions: those a new snapshot invalidates are ended with it.
    portal_sessions: Option<Arc<dyn gerbang_shared::SessionStore>>,
    /// Serialises reloads and edits of the sanctions file.
    lock: Mutex<()>,
    /// Where each reload that changed something is recorded, and this instance's name.
    audit: Option<(Arc<gerbang_audit::AuditLog>, String)>,
    /// The client listener's certificate, read again at every reload.
    cert: Option<Arc<crate::certs::ServedCert>>,
    /// The sanctions several instances share, in force besides the file's; the admin API
    /// adds and lifts them there instead of in the file.
    shared_sanctions: Option<Arc<dyn gerbang_shared::SanctionStore>>,
    /// The shared set the running snapshot was built with (`None`: none yet, as at start).
    shared_applied: Mutex<Option<Arc<gerbang_shared::SanctionSet>>>,
}

impl Reloader {
    pub fn new(
        config: Config,
        snapshot: Arc<ArcSwap<Snapshot>>,
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.set_policy(&snapshot.load());
        Self {
            config,
            snapshot,
            auth,
            metrics,
            portal_sessions: None,
            lock: Mutex::new(()),
            audit: None,
            cert: None,
            shared_sanctions: None,
            shared_applied: Mutex::new(None),
        }
    }

    /// Puts the sanctions of `store` in force besides the file's at every reload, and makes
    /// the admin API add and lift sanctions there.
    pub(crate) fn sharing_sanctions(
        mut self,
        store: Option<Arc<dyn gerbang_shared::SanctionStore>>,
    ) -> Self {
        self.shared_sanctions = store;
        self
    }

    /// The shared sanctions' store, if sanctions are shared.
    pub(crate) fn shared_sanctions(&self) -> Option<&Arc<dyn gerbang_shared::SanctionStore>> {
        self.shared_sanctions.as_ref()
    }

    /// Whether the shared sanctions in force differ from the set the running snapshot was
    /// built with (at start: whether there are any), so that a start reloads only when it
    /// must.
    pub(crate) fn shared_sanctions_changed(&self) -> bool {
        let Some(store) = &self.shared_sanctions else {
            return false;
        };
        let current = store.current();
        match &*self
            .shared_applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(applied) => applied.entries != current.entries,
            None => !current.entries.is_empty(),
        }
    }

    /// The snapshot the files on disk (and the shared sanctions) make now.
    /// With the shared set it was built with, recorded once it is swapped in.
    fn candidate(
        &self,
        running: &Snapshot,
    ) -> Result<(Snapshot, Option<Arc<gerbang_shared::SanctionSet>>), ConfigErrors> {
        let Some(store) = &self.shared_sanctions else {
            return reload_snapshot(&self.config, running).map(|snap| (snap, None));
        };
        let set = store.current();
        let (shared, problems) = gerbang_core::Sanctions::shared(&set.entries);
        for problem in problems {
            tracing::error!(
                problem = problem.as_str(),
                "a shared sanction in Redis is not valid and is not in force"
            );
        }
        reload_snapshot_with(&self.config, running, shared).map(|snap| (snap, Some(set)))
    }

    /// Records every reload that changes something in the decision log (action `Reload`,
    /// the summary as its reason).
    pub fn with_audit(
        mut self,
        log: Option<Arc<gerbang_audit::AuditLog>>,
        instance: String,
    ) -> Self {
        self.audit = log.map(|log| (log, instance));
        self
    }

    /// What a reload would change now, without swapping anything: the candidate read from
    /// disk, reviewed against the running set (for `gerbang policy diff --running`).
    pub fn preview(&self) -> Result<gerbang_assure::Review, ConfigErrors> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = self.snapshot.load_full();
        let (candidate, _) = self.candidate(&running)?;
        gerbang_assure::review(&running, &candidate, &self.config.policy_dir, today(), None)
    }

    /// Ends, at every reload, the portal sessions the new snapshot invalidates (a changed
    /// password, a deactivated or removed User ID).
    pub fn ending_portal_sessions(
        mut self,
        sessions: Arc<dyn gerbang_shared::SessionStore>,
    ) -> Self {
        self.portal_sessions = Some(sessions);
        self
    }

    /// Reads the client listener's certificate and key again at every reload (a renewal
    /// takes effect without a restart).
    pub(crate) fn renewing_cert(mut self, cert: Option<Arc<crate::certs::ServedCert>>) -> Self {
        self.cert = cert;
        self
    }

    /// Loads everything again and swaps it in, or keeps the running set and says why.
    /// Blocking (it reads and checks every file): call it off the async threads.
    pub fn reload(&self, cause: &str) -> Result<ReloadSummary, ConfigErrors> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.reload_locked(cause)
    }

    /// [`Self::reload`] before the gateway serves: nothing is told to systemd, which hears
    /// `READY=1` once the listeners run.
    pub(crate) fn reload_before_serving(&self, cause: &str) -> Result<ReloadSummary, ConfigErrors> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.reload_once(cause)
    }

    /// [`Self::reload_once`] between `RELOADING=1` and `READY=1` to systemd: serving again,
    /// on the new set or on the one that stayed.
    fn reload_locked(&self, cause: &str) -> Result<ReloadSummary, ConfigErrors> {
        gerbang_core::systemd::reloading();
        let reloaded = self.reload_once(cause);
        self.reload_cert(cause);
        gerbang_core::systemd::ready(&crate::server::status(&self.snapshot.load()));
        reloaded
    }

    /// The certificate on its own: a pair that does not load leaves the running one in force.
    fn reload_cert(&self, cause: &str) {
        let Some(cert) = &self.cert else {
            return;
        };
        match cert.reload() {
            Ok(()) => tracing::info!(
                cause,
                "TLS certificate and key read again; new connections use them"
            ),
            Err(e) => tracing::error!(
                cause,
                error = crate::server::with_causes(&e).as_str(),
                "TLS certificate NOT reloaded; the running one stays in force"
            ),
        }
    }

    fn reload_once(&self, cause: &str) -> Result<ReloadSummary, ConfigErrors> {
        let started = std::time::Instant::now();
        // What did not change is taken from the running set; an owned handle, not a guard,
        // as the reload takes a while.
        let running = self.snapshot.load_full();
        let loaded = self.candidate(&running).and_then(|(snap, shared)| {
            let review = gerbang_assure::review(
                &running,
                &snap,
                &self.config.policy_dir,
                today(),
                Some(gerbang_assure::RELOAD_DIFF_USERS),
            )?;
            Ok((snap, shared, review))
        });
        drop(running);
        match loaded {
            Ok((snap, shared, review)) => {
                if shared.is_some() {
                    *self
                        .shared_applied
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = shared;
                }
                let summary = ReloadSummary {
                    policy_hash: snap.engine().hash().to_string(),
                    pks: snap.agreements().len(),
                    users: snap.user_count(),
                    sanctions: snap.sanctions().entries.len(),
                    files_parsed: snap.reuse().files_parsed,
                    entities_updated: snap.reuse().entities_updated,
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    changes: review.diff.summary.clone(),
                    proof: review.proof.to_string(),
                };
                self.metrics.set_policy(&snap);
                let new = Arc::new(snap);
                let old = self.snapshot.swap(Arc::clone(&new));
                if let Some(sessions) = &self.portal_sessions {
                    end_portal_sessions(sessions, &crate::portal::changed_users(&old, &new));
                }
                // Freeing 50,000 User IDs' entities takes a tenth of a reload; the new set
                // is already in force, so the old one goes away off this path.
                std::thread::spawn(move || drop(old));
                self.auth.keep_valid(&new);
                self.metrics.policy_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    cause,
                    pks.count = summary.pks,
                    users.count = summary.users,
                    sanctions.count = summary.sanctions,
                    pks.parsed = summary.files_parsed,
                    entities.updated = summary.entities_updated,
                    policy.hash = summary.policy_hash.as_str(),
                    duration_ms = summary.duration_ms,
                    changes = summary.changes.as_str(),
                    proof = summary.proof.as_str(),
                    "reloaded PKS files, policies and sanctions"
                );
                if let gerbang_assure::Proof::Skipped { why } = &review.proof {
                    tracing::warn!(
                        reason = why.as_str(),
                        "the new rules are in force WITHOUT their invariants proved"
                    );
                }
                self.record(cause, &review.diff, &summary);
                Ok(summary)
            }
            Err(errors) => {
                self.metrics
                    .policy_reloads
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(
                    cause,
                    "reload refused, the previous PKS set stays in force:\n{errors}"
                );
                Err(errors)
            }
        }
    }

    /// Writes a reload that changed something to the decision log: action `Reload`, the
    /// cause and the summary as the reason, the new set's hash. A reload that changed
    /// nothing is not recorded (the watcher reloads on every save).
    fn record(&self, cause: &str, diff: &gerbang_assure::Diff, summary: &ReloadSummary) {
        let Some((log, instance)) = &self.audit else {
            return;
        };
        let unchanged = matches!(diff.rules, gerbang_assure::RulesChange::Unchanged { .. })
            && diff.agreements.is_empty()
            && diff.users.is_empty()
            && diff.networks.is_empty();
        if unchanged {
            return;
        }
        let now = chrono::Utc::now();
        let record = gerbang_audit::Record {
            time: now,
            instance: instance.clone(),
            request_id: format!("{instance}-reload-{}", now.timestamp_micros()),
            user_id: None,
            pengguna: None,
            pks: None,
            peer_ip: std::net::IpAddr::from([0, 0, 0, 0]),
            channel: Some("admin".into()),
            action: Some("Reload".into()),
            decision: gerbang_audit::Decision::Allow,
            reason: Some(bounded(&format!("{cause}: {}", summary.changes))),
            policy_ids: Vec::new(),
            policy_hash: summary.policy_hash.clone(),
            nik_digest: None,
            elements: Vec::new(),
            balikan: None,
            upstream_status: None,
            latency_us: 0,
            quota_used: None,
            quota_limit: None,
        };
        if let Err(e) = log.append(&record) {
            tracing::error!(error = %e, "the reload is in force but its decision-log record was not written");
        }
    }

    /// Rewrites the sanctions file with `edit` and reloads. If the result does not load (a
    /// sanction naming an unknown User ID, say), the previous file is put back and the
    /// running set stays: the file on disk never holds a set the gateway refused.
    pub fn edit_sanctions<T>(
        &self,
        edit: impl FnOnce(&str) -> Result<(String, T), SanctionEditError>,
    ) -> Result<(T, ReloadSummary), SanctionFileError> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(path) = self.config.sanctions.clone() else {
            return Err(SanctionFileError::NotConfigured);
        };
        let old = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(SanctionFileError::Read { path, source }),
        };
        let (new, out) = edit(&old)?;
        write_atomically(&path, &new).map_err(|source| SanctionFileError::Write {
            path: path.clone(),
            source,
        })?;
        match self.reload_locked("sanction") {
            Ok(summary) => Ok((out, summary)),
            Err(errors) => {
                if let Err(e) = write_atomically(&path, &old) {
                    tracing::error!(file = %path.display(), error = %e, "could not restore the sanctions file");
                }
                Err(SanctionFileError::Refused(errors))
            }
        }
    }

    /// The directories whose changes trigger a reload, and the files in them that matter.
    /// Paths are made absolute, as the watcher reports them.
    fn watched(&self) -> Vec<(PathBuf, Watched)> {
        let c = &self.config;
        let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = vec![
            (absolute(&c.pks_dir), Watched::Extension("toml")),
            (absolute(&c.policy_dir), Watched::Extension("cedar")),
            (absolute(&c.policy_dir), Watched::Extension("cedarschema")),
        ];
        for file in [&c.vocabulary, &c.blocklist, &c.sanctions]
            .into_iter()
            .flatten()
        {
            let file = absolute(file);
            if let Some(dir) = file.parent() {
                out.push((dir.to_path_buf(), Watched::File(file.clone())));
            }
        }
        out
    }
}

/// Today's WIB day: what a reload's diff decides grants for.
fn today() -> chrono::NaiveDate {
    gerbang_core::wib_day(chrono::Utc::now())
}

/// The longest reason a reload's record carries; a summary of thousands of changes is cut.
const MAX_RECORD_REASON: usize = 4_000;

fn bounded(text: &str) -> String {
    if text.len() <= MAX_RECORD_REASON {
        return text.to_string();
    }
    let mut end = MAX_RECORD_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut; `gerbang policy diff` shows all)", &text[..end])
}

/// A file or a kind of file whose change means a reload.
#[derive(Debug, Clone)]
enum Watched {
    Extension(&'static str),
    File(PathBuf),
}

impl Watched {
    fn matches(&self, dir: &Path, path: &Path) -> bool {
        match self {
            Self::Extension(ext) => {
                path.parent() == Some(dir) && path.extension().is_some_and(|x| x == *ext)
            }
            Self::File(f) => path == f,
        }
    }
}

/// Ends the portal sessions of `users` in the session store, waiting until it is done so
/// that the reload is in force for the portal when it returns. The store is async (Redis
/// for several instances) and a reload runs on a blocking thread or none at all, so the
/// ends run on a small runtime of their own. With the store unreachable the sessions could
/// not be ended; they are refused anyway while it is (a session cannot be confirmed), and
/// each instance's own reload tries again.
fn end_portal_sessions(sessions: &Arc<dyn gerbang_shared::SessionStore>, users: &[String]) {
    if users.is_empty() {
        return;
    }
    let ended = std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                for user in users {
                    sessions.end_user(user).await.map_err(|e| e.0)?;
                }
                Ok::<_, String>(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the thread ending them panicked".into()))
    });
    let count = users.len();
    match ended {
        Ok(()) => {
            tracing::info!(target: "gerbang::portal", user_ids = count, "portal sessions ended: their User ID's password, status or IP LAN changed")
        }
        Err(e) => {
            tracing::warn!(target: "gerbang::portal", user_ids = count, error = e.as_str(), "portal sessions of changed User IDs not ended: the session store is unreachable")
        }
    }
}

/// Why the sanctions file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum SanctionFileError {
    #[error("no sanctions file is configured ([policy] sanksi in gerbang.toml)")]
    NotConfigured,
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    Edit(#[from] SanctionEditError),
    /// The edited set does not load; the previous file was put back.
    #[error(transparent)]
    Refused(ConfigErrors),
}

/// Why a file was not replaced (see `write_atomically`).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating, writing or syncing the temporary file beside it.
    #[error(transparent)]
    File(#[from] std::io::Error),
    /// Renaming it over the file.
    #[error(transparent)]
    Rename(#[from] tempfile::PersistError),
    #[error("fsync of the directory {}: {source}", dir.display())]
    SyncDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader (another
/// instance, the watcher, the SAM sidecar) sees the old file or the new one, never half of
/// one; and durably: the file is fsynced before the rename and its directory after it, or
/// a power cut could bring back the old file (a lifted sanction in force again, an applied
/// one gone) although the API said it was done.
fn write_atomically(path: &Path, text: &str) -> Result<(), WriteError> {
    write_atomically_with(path, text, sync_dir)
}

fn write_atomically_with(
    path: &Path,
    text: &str,
    sync: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    use std::io::Write;
    let dir = parent_dir(path);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    sync(dir).map_err(|source| WriteError::SyncDir {
        dir: dir.to_path_buf(),
        source,
    })
}

/// The directory holding `path`: `.` for a bare file name (whose `parent()` is empty, and
/// an empty path cannot be opened to be synced).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The background service: SIGHUP and file changes call [`Reloader::reload`].
pub struct ReloadService(pub Arc<Reloader>);

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let reloader = Arc::clone(&self.0);
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cannot listen for SIGHUP; reload with the admin API or a restart");
            return;
        };
        let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel::<()>();
        // Kept alive for as long as the service runs: dropping it stops the watch.
        let _watcher = if reloader.config.watch {
            watch(&reloader, tx)
        } else {
            None
        };
        let run = |cause: &'static str| {
            let r = Arc::clone(&reloader);
            async move {
                // Errors are logged and counted by `reload`.
                let _ = tokio::task::spawn_blocking(move || r.reload(cause)).await;
            }
        };
        // A change of the shared sanctions (applied or lifted through any instance) is one
        // more cause. The first pass reloads once: what changed between the read before
        // serving and this subscription.
        let mut shared = reloader
            .shared_sanctions
            .as_ref()
            .map(|store| store.changes());
        if shared.is_some() && reloader.shared_sanctions_changed() {
            // Quietly: this runs while the gateway starts, before systemd has heard READY=1.
            let r = Arc::clone(&reloader);
            let _ =
                tokio::task::spawn_blocking(move || r.reload_before_serving("shared sanctions"))
                    .await;
        }
        loop {
            tokio::select! {
                _ = hup.recv() => run("SIGHUP").await,
                // Unless the change is already in force (the admin API that made it here
                // reloads before answering).
                true = sanctions_changed(&mut shared) => {
                    if reloader.shared_sanctions_changed() {
                        run("shared sanctions").await;
                    }
                }
                Some(()) = changes.recv() => {
                    // Let a burst of events settle, then reload once.
                    while let Ok(Some(())) = tokio::time::timeout(SETTLE, changes.recv()).await {}
                    run("file change").await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Waits for the shared sanctions to change: true when they did; never when they are not
/// shared, false once their store has stopped.
async fn sanctions_changed(
    changes: &mut Option<tokio::sync::watch::Receiver<Arc<gerbang_shared::SanctionSet>>>,
) -> bool {
    match changes {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Starts watching the configured files; `None` (logged) when the platform refuses.
fn watch(
    reloader: &Reloader,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let watched = reloader.watched();
    let filter = watched.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = event
            .paths
            .iter()
            .any(|p| filter.iter().any(|(dir, w)| w.matches(dir, p)));
        if relevant {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the configuration files; reload with SIGHUP or the admin API");
            return None;
        }
    };
    let mut dirs: Vec<&PathBuf> = watched.iter().map(|(d, _)| d).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot watch a configuration directory; reload with SIGHUP or the admin API");
        }
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_summary_is_cut_on_a_character_boundary_and_says_so() {
        let short = "3 User IDs of 1 Pengguna gain ALAMAT";
        assert_eq!(bounded(short), short);
        // "→" is three bytes: a cut at a fixed byte count would split one.
        let long = "status aktif → dibekukan; ".repeat(400);
        let cut = bounded(&long);
        assert!(cut.len() < MAX_RECORD_REASON + 60, "{}", cut.len());
        assert!(
            cut.ends_with("… (cut; `gerbang policy diff` shows all)"),
            "{cut}"
        );
        assert!(long.starts_with(cut.trim_end_matches("… (cut; `gerbang policy diff` shows all)")));
    }

    #[test]
    fn a_rewrite_syncs_its_directory_after_the_rename() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sanksi.toml");
        std::fs::write(&path, "# lama\n").expect("old");
        let mut synced = None;
        write_atomically_with(&path, "# baru\n", |d| {
            // Called after the rename: the new content is already in place.
            synced = Some((d.to_path_buf(), std::fs::read_to_string(&path)?));
            sync_dir(d)
        })
        .expect("written");
        assert_eq!(
            synced,
            Some((dir.path().to_path_buf(), "# baru\n".to_string()))
        );
        // A bare file name's directory is the current one, not an empty path.
        assert_eq!(parent_dir(Path::new("sanksi.toml")), Path::new("."));
        assert_eq!(
            parent_dir(Path::new("/etc/g/sanksi.toml")),
            Path::new("/etc/g")
        );
        // A failed directory sync is an error, not a silent success.
        let err = write_atomically_with(&path, "y", |_| Err(std::io::Error::other("disk")))
            .expect_err("reported");
        assert!(
            matches!(&err, WriteError::SyncDir { dir: d, .. } if d == dir.path()),
            "{err:?}"
        );
        assert!(err.to_string().contains("fsync of the directory"), "{err}");
    }
}
