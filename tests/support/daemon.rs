//! The daemon in-process on loopback TCP, with its store in a temp dir, fed
//! through the real admin API.

use bsm_milter::admin::client::Client;
use bsm_milter::clock::{Clock, SystemClock};
use bsm_milter::config::{Config, Socket};
use bsm_milter::{Daemon, SharedConfig};
use hyper::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

pub const DOMAIN: &str = "m.example.com";

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub milter: SocketAddr,
    pub admin: Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), bsm_milter::ServeError>>,
}

/// Two sellers and two buyers, registered through the admin API.
pub struct Parties {
    pub s1_alias: String,
    pub s2_alias: String,
    /// Pair aliases: (S1,B1), (S1,B2), (S2,B1).
    pub s1b1: String,
    pub s1b2: String,
    pub s2b1: String,
}

pub fn config_text(dir: &std::path::Path, milter: &str, admin: &str) -> String {
    format!(
        "[relay]\ndomain = \"{DOMAIN}\"\n[milter]\nsocket = \"{milter}\"\nsocket_mode = \"0666\"\n[admin]\nsocket = \"{admin}\"\n\
         [store]\npath = \"{}/store.redb\"\n[archive]\ndir = \"{}/archive\"\n",
        dir.display(),
        dir.display()
    )
}

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with("", Arc::new(SystemClock)).await
    }

    /// `extra` is appended to the config; `clock` replaces the system clock.
    pub async fn start_with(extra: &str, clock: Arc<dyn Clock>) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(dir.path(), "inet:127.0.0.1:0", "inet:127.0.0.1:0") + extra;
        let config = Config::parse(&text).unwrap();
        let daemon = Daemon::bind(SharedConfig::new(config, None)).await.unwrap().with_clock(clock);
        let milter = daemon.milter_addr().unwrap();
        let admin = Client::new(Socket::Inet(daemon.admin_addr().unwrap()));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(async move {
            let _ = rx.await;
        }));
        TestDaemon { dir, milter, admin, stop: Some(tx), task }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.admin.request(Method::POST, path, Some(body)).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn parties(&self) -> Parties {
        let s1 = self
            .post("/v1/sellers", json!({"id": "S1", "name": "Shop One", "service_address": "cs@shop1.example", "approved_addresses": ["sales@shop1.example"]}))
            .await;
        let s2 = self
            .post("/v1/sellers", json!({"id": "S2", "name": "Shop Two", "service_address": "cs@shop2.example", "approved_addresses": ["sales@shop2.example"]}))
            .await;
        self.post("/v1/buyers", json!({"id": "B1", "email": "bob@buyer.example", "name": "Bob Buyer"})).await;
        self.post("/v1/buyers", json!({"id": "B2", "email": "carol@buyer2.example"})).await;
        let pair = |s: &'static str, b: &'static str| async move {
            self.post("/v1/aliases", json!({"seller": s, "buyer": b})).await["alias"].as_str().unwrap().to_string()
        };
        Parties {
            s1_alias: s1["alias"].as_str().unwrap().into(),
            s2_alias: s2["alias"].as_str().unwrap().into(),
            s1b1: pair("S1", "B1").await,
            s1b2: pair("S1", "B2").await,
            s2b1: pair("S2", "B1").await,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A clock the test sets.
#[derive(Default)]
pub struct TestClock(AtomicU64);

impl TestClock {
    pub fn at(unix: u64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicU64::new(unix)))
    }

    pub fn set(&self, unix: u64) {
        self.0.store(unix, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
