//! bsm-milter: a Postfix milter that relays buyer–seller mail through
//! anonymous aliases on a marketplace's domain.
//!
//! `main.rs` is a thin CLI; the daemon lives here so tests run it in-process.

pub mod address;
pub mod admin;
pub mod alias;
pub mod auth;
pub mod clock;
pub mod config;
pub mod content;
pub mod dkim;
pub mod metrics;
pub mod milter;
pub mod policy;
pub mod relay;
pub mod rewrite;
pub mod store;

mod coalesce;
mod listener;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Socket};
use crate::listener::{BoundListener, Gate};
use crate::milter::InFlight;
use crate::relay::Relay;
use crate::store::archive::Archive;
use crate::store::{RedbStore, Store};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::{error, info, warn};

/// How long SIGTERM waits for messages in flight before closing sessions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {socket}")]
    Bind { socket: Socket, source: std::io::Error },
    #[error("milter failed")]
    Milter(#[source] std::io::Error),
    #[error("{0}")]
    Dkim(String),
    #[error("{0}")]
    Auth(String),
}

/// The configuration in force; swapped whole on reload, read as a snapshot.
#[derive(Clone)]
pub struct SharedConfig {
    current: Arc<RwLock<Arc<Config>>>,
    path: Option<PathBuf>,
}

impl SharedConfig {
    pub fn new(config: Config, path: Option<PathBuf>) -> Self {
        SharedConfig { current: Arc::new(RwLock::new(Arc::new(config))), path }
    }

    pub fn snapshot(&self) -> Arc<Config> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the file. A bad file keeps the old config and says why;
    /// settings that need a restart say so.
    pub fn reload(&self) {
        let Some(path) = &self.path else { return };
        match Config::load(path) {
            Ok(new) => {
                let old = self.snapshot();
                for (what, changed) in [
                    ("milter.socket", old.milter.socket != new.milter.socket),
                    ("admin.socket", old.admin.socket != new.admin.socket),
                    ("store.path", old.store.path != new.store.path),
                ] {
                    if changed {
                        warn!("config reload: {what} changed; restart needed for it to take effect");
                    }
                }
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                info!("config reloaded from {}", path.display());
            }
            Err(e) => error!("config reload failed, keeping the old config: {}", error_chain(&e)),
        }
    }
}

/// A bound daemon: sockets listening, store open. `run` serves until shutdown.
pub struct Daemon {
    config: SharedConfig,
    store: Arc<dyn Store>,
    /// Archived copies, and the store's journal.
    archive: Arc<Archive>,
    clock: Arc<dyn Clock>,
    milter: BoundListener,
    admin: BoundListener,
    dkim: Option<Arc<dkim::Dkim>>,
    verifier: Option<Arc<auth::Verifier>>,
    /// The `Authentication-Results` cleaner's socket (`trust-authres`).
    cleaner: Option<BoundListener>,
}

impl Daemon {
    pub async fn bind(config: SharedConfig) -> Result<Daemon, ServeError> {
        let snap = config.snapshot();
        let dkim = match &snap.dkim {
            Some(d) => Some(Arc::new(dkim::Dkim::load(d, snap.relay.domain.as_str()).map_err(ServeError::Dkim)?)),
            None => None,
        };
        // The resolver is built once: `auth.dns_servers` take effect on restart.
        let verifier = match snap.auth.has(config::AuthMethod::Verify) {
            true => Some(Arc::new(auth::Verifier::new(&snap.auth).map_err(ServeError::Auth)?)),
            false => None,
        };
        let cache = snap.store.cache_mb as usize * 1024 * 1024;
        // The archive is also the store's journal: opening the store replays it.
        let archive = Arc::new(Archive::new(snap.archive.dir.clone()));
        // The milter awaits the archive's flush before it answers (milter::end_of_message).
        let store = RedbStore::open_with_cache(&snap.store.path, cache, archive.clone())?.with_deferred_sync();
        let store: Arc<dyn Store> = Arc::new(store);
        let milter = BoundListener::bind(&snap.milter.socket, snap.milter.socket_mode.0)
            .await
            .map_err(|source| ServeError::Bind { socket: snap.milter.socket.clone(), source })?;
        let admin = BoundListener::bind(&snap.admin.socket, snap.admin.socket_mode.0)
            .await
            .map_err(|source| ServeError::Bind { socket: snap.admin.socket.clone(), source })?;
        let cleaner = match &snap.auth.cleaner_socket {
            Some(socket) => Some(
                BoundListener::bind(socket, snap.milter.socket_mode.0)
                    .await
                    .map_err(|source| ServeError::Bind { socket: socket.clone(), source })?,
            ),
            None => None,
        };
        Ok(Daemon { config, store, archive, clock: Arc::new(SystemClock), milter, admin, dkim, verifier, cleaner })
    }

    /// The milter's local address (useful with `inet:127.0.0.1:0` in tests).
    pub fn milter_addr(&self) -> Option<std::net::SocketAddr> {
        self.milter.local_addr()
    }

    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.local_addr()
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets messages in
    /// flight finish (up to 30 s), closes sessions and removes its sockets.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Daemon { config, store, archive, clock, milter, admin, dkim, verifier, cleaner } = self;
        // Marks what this process's cleaner saw; unknown to any sender.
        let authres_marker: Arc<str> = alias::random_local(32).into();
        let source_marker = authres_marker.clone();
        let in_flight = Arc::new(InFlight::default());
        let source_config = config.clone();
        let source_store = store.clone();
        let purge_clock = clock.clone();
        let ops = Arc::new(metrics::ops::OpsMetrics::default());
        let source_ops = ops.clone();
        let source_archive = archive.clone();
        let source: milter::RelaySource = Arc::new(move || Relay {
            config: source_config.snapshot(),
            store: source_store.clone(),
            archive: source_archive.clone(),
            clock: clock.clone(),
            ops: source_ops.clone(),
            dkim: dkim.clone(),
            verifier: verifier.clone(),
            authres_marker: source_marker.clone(),
        });
        let gate = Gate::default();
        let milter_cleanup = milter.cleanup_path();
        let admin_cleanup = admin.cleanup_path();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let cleaner_cleanup = cleaner.as_ref().and_then(|c| c.cleanup_path());
        let cleaner_task = cleaner.map(|listener| {
            let id: Arc<str> = config.snapshot().auth.authserv_id.clone().unwrap_or_default().into();
            let callbacks = milter::cleaner::callbacks(id, authres_marker.clone());
            let listener = listener.gated(gate.clone());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let config = indymilter::Config { max_connections: 1000, ..Default::default() };
                indymilter::run(listener, callbacks, config, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            })
        });

        let milter_task = {
            let callbacks = milter::callbacks(source, in_flight.clone());
            let listener = milter.gated(gate.clone());
            let mut stop = stop_rx.clone();
            let milter_config = indymilter::Config { max_connections: 1000, ..Default::default() };
            tokio::spawn(async move {
                indymilter::run(listener, callbacks, milter_config, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            })
        };
        let api_state = admin::api::ApiState { store: store.clone(), config: config.clone(), ops, archive };
        let purge_task = {
            let (st, clock) = (api_state.clone(), purge_clock);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tick.tick().await;
                    let days = st.config.snapshot().archive.retention_days;
                    match admin::messages::run_purge(&st, days, clock.now()).await {
                        Ok((0, 0)) => {}
                        Ok((records, files)) => {
                            info!("archive retention: removed {records} record(s), {files} file(s)")
                        }
                        Err(e) => warn!("archive retention: {}", e.1),
                    }
                }
            })
        };
        let admin_task = {
            let mut stop = stop_rx.clone();
            let app = admin::api::router(api_state);
            tokio::spawn(admin::api::serve(admin, app, async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        };
        info!("bsm-milter serving relay domain {}", config.snapshot().relay.domain);

        shutdown.await;
        info!("shutting down: {} message(s) in flight", in_flight.count());
        gate.close();
        for p in [&milter_cleanup, &admin_cleanup, &cleaner_cleanup].into_iter().flatten() {
            let _ = std::fs::remove_file(p);
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, in_flight.idle()).await.is_err() {
            warn!(
                "shutdown: {} message(s) still in flight after {SHUTDOWN_GRACE:?}; Postfix will tempfail them",
                in_flight.count()
            );
        }
        let _ = stop_tx.send(true);
        let milter_result = milter_task.await.map_err(|e| ServeError::Milter(std::io::Error::other(e)))?;
        let _ = admin_task.await;
        if let Some(t) = cleaner_task {
            let _ = t.await;
        }
        purge_task.abort();
        info!("stopped");
        milter_result.map_err(ServeError::Milter)
    }
}

/// `bsm-milter serve`: bind, then serve until SIGTERM or SIGINT; SIGHUP reloads.
pub async fn serve(config: SharedConfig) -> Result<(), ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    ignore_file_size_signal();
    let daemon = Daemon::bind(config.clone()).await?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Milter)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Milter)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Milter)?;
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = hup.recv() => config.reload(),
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
    };
    daemon.run(shutdown).await
}

/// A write past the file-size limit (`ulimit -f`, systemd `LimitFSIZE=`) must
/// fail like a full disk (`EFBIG`: the message tempfails) instead of killing
/// the daemon with SIGXFSZ.
fn ignore_file_size_signal() {
    // SAFETY: sets the disposition of one signal to SIG_IGN, before any thread
    // of ours could depend on it; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// An error and its causes, one per line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    out
}
