//! The real `bsm-milter` binary as a child process, on unix sockets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bsm-milter");

pub struct Served {
    pub config: PathBuf,
    pub milter_socket: PathBuf,
    pub admin_socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// Writes a config whose sockets, store and archive live in `dir`; `extra` is
/// appended (e.g. a `[policy]` table).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let mut text = super::daemon::config_text(
        dir,
        &format!("unix:{}/milter.sock", dir.display()),
        &format!("unix:{}/admin.sock", dir.display()),
    );
    text.push_str(extra);
    let path = dir.join("bsm-milter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--config").arg(config).args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a CLI command that must succeed; returns its stdout.
pub fn ok(config: &Path, args: &[&str]) -> String {
    let o = cli(config, args);
    assert!(o.status.success(), "bsm-milter {args:?} failed: {}", stderr(&o));
    stdout(&o)
}

/// Runs a CLI command that must fail with one clear line on stderr; returns it.
pub fn fails(config: &Path, args: &[&str]) -> String {
    let o = cli(config, args);
    assert!(!o.status.success(), "bsm-milter {args:?} succeeded: {}", stdout(&o));
    let err = stderr(&o);
    assert!(!err.trim().is_empty(), "bsm-milter {args:?}: empty stderr");
    err
}

impl Served {
    pub fn start(dir: &Path) -> Served {
        let config = write_config(dir, "");
        Self::start_with(dir, config)
    }

    pub fn start_with(dir: &Path, config: PathBuf) -> Served {
        let log = dir.join("bsm-milter.log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info,indymilter=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let served = Served {
            config,
            milter_socket: dir.join("milter.sock"),
            admin_socket: dir.join("admin.sock"),
            log,
            child: Some(child),
        };
        served.wait_ready();
        served
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.admin_socket).is_ok()
                && std::os::unix::net::UnixStream::connect(&self.milter_socket).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("bsm-milter did not start: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        wait_timeout(&mut child, Duration::from_secs(40))
    }

    /// Waits up to `limit` for the process to exit (after a `signal`), and its status.
    pub fn wait(mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_timeout(&mut child, limit)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// SIGKILL: no clean-up at all.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bsm-milter did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
