//! End-to-end test support: a private, throw-away Postfix relay on loopback.
//!
//! Topology of one [`PostfixRelay`]:
//!
//! ```text
//!   test (Smtp client) --> smtpd 127.0.0.1:<smtp_port>  --(smtpd_milters)--> unix:<milter_socket>
//!                              |  cleanup (header_checks: /^Received:/ IGNORE)
//!                              v
//!                          qmgr -> smtp client --> smtp-sink 127.0.0.1:<sink port> (one file per message)
//! ```
//!
//! Every instance lives in its own temp dir (config, queue, data dir, sink dir, log), uses its
//! own ports and is torn down in `Drop`, so any number of them can run in parallel test threads.
//!
//! Requirements: root, Postfix installed (`/usr/sbin/postfix`, `/usr/lib/postfix/sbin/master`,
//! `smtp-sink`, `postqueue`), and the dev-dependencies `tempfile` and `libc`.
//!
//! Set `POSTFIX_HARNESS_KEEP=1` to keep the temp dirs after the test for post-mortem inspection,
//! `POSTFIX_HARNESS_VERBOSE=1` to print each instance's ports, dir and start-up time.
//!
//! Notes on behaviour that tests may care about:
//! * `smtpd` runs as the `postfix` user (it refuses to run as root), so the milter socket must be
//!   reachable by that user: search (x) permission for "other" on every parent directory and
//!   write permission on the socket itself (e.g. mode 0666). `tempfile::tempdir()` is 0700 - use
//!   [`milter_socket_dir`] instead. Otherwise smtpd logs "Permission denied" and applies
//!   `default_action`. [`PostfixRelay::start`] prints a warning when an existing socket is not
//!   reachable.
//! * The readiness probe at start-up connects from 127.0.0.2, for which `smtpd_milter_maps`
//!   disables milters: the milter under test never sees the probe connection (it does show in
//!   the maillog as "connect from unknown[127.0.0.2]").
//! * Postfix ignores a main.cf modified within the last ~2 seconds (it sleeps in 300 ms steps
//!   until the file is old enough), so the harness back-dates the files it writes.
//! * Postfix adds `Message-Id:`/`Date:` (and `From:` if missing) to mail from 127.0.0.1, because
//!   that client is in `local_header_rewrite_clients` (Postfix default `permit_inet_interfaces`).
//!   Pass `("local_header_rewrite_clients", "")` to [`PostfixRelay::start_with`] to turn that off.
//! * smtp-sink stores messages with LF line endings and drops bare CRs; [`SinkMessage::raw`]
//!   is converted back to the wire form (CRLF line endings).
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

const POSTFIX_DAEMON_DIR: &str = "/usr/lib/postfix/sbin";
const SINK_CANDIDATES: &[&str] = &["/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"];
const POSTQUEUE: &str = "/usr/sbin/postqueue";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const SMTP_IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Source address of the readiness probe; milters are disabled for it via smtpd_milter_maps.
const PROBE_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

static INSTANCE: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------------------------
// PostfixRelay
// ---------------------------------------------------------------------------------------------

/// Options for [`PostfixRelay::start`].
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Path of the milter's unix socket. An EMPTY path means "no smtpd_milters at all".
    /// The socket need not exist (milter down => `default_action` applies).
    pub milter_socket: PathBuf,
    /// Value for `relay_domains`.
    pub relay_domain: String,
    /// `default_action` of the milter entry, e.g. "tempfail" (empty => "tempfail").
    pub milter_default_action: String,
}

impl RelayOptions {
    /// Options with the given milter socket, relay domain `relay.example` and `tempfail`.
    pub fn with_milter(milter_socket: impl Into<PathBuf>) -> RelayOptions {
        RelayOptions {
            milter_socket: milter_socket.into(),
            relay_domain: "relay.example".to_string(),
            milter_default_action: "tempfail".to_string(),
        }
    }

    /// Options without any milter (plain relay), relay domain `relay.example`.
    pub fn without_milter() -> RelayOptions {
        RelayOptions::with_milter(PathBuf::new())
    }
}

/// A running private Postfix instance plus its smtp-sink downstream. Stopped on drop.
pub struct PostfixRelay {
    id: String,
    myhostname: String,
    dir: PathBuf,
    conf_dir: PathBuf,
    queue_dir: PathBuf,
    sink_dir: PathBuf,
    /// `sink_dir` with symlinks resolved, as it appears in /proc/<pid>/fd links.
    sink_dir_canon: PathBuf,
    log_file: PathBuf,
    smtp_port: u16,
    sink_port: u16,
    master: Option<Child>,
    sink: Option<Child>,
    // Dropped last (after Drop::drop has stopped every process).
    tmp: Option<tempfile::TempDir>,
}

impl PostfixRelay {
    /// Creates and starts a private Postfix instance in a fresh temp dir (see module docs).
    pub fn start(opts: RelayOptions) -> PostfixRelay {
        PostfixRelay::start_with(opts, &[])
    }

    /// Like [`start`](Self::start), with extra main.cf settings appended after the harness's own
    /// (a later setting overrides an earlier one), e.g. `&[("milter_command_timeout", "5s")]`.
    pub fn start_with(opts: RelayOptions, extra_main_cf: &[(&str, &str)]) -> PostfixRelay {
        let t0 = Instant::now();
        let ids = ids();
        let n = INSTANCE.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{}", std::process::id(), n);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("postfix-relay-{id}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("postfix harness: cannot create temp dir: {e}"));
        let dir = tmp.path().to_path_buf();
        let mut relay = PostfixRelay {
            myhostname: format!("relay-{id}.test"),
            id,
            conf_dir: dir.join("etc"),
            queue_dir: dir.join("queue"),
            sink_dir: dir.join("sink"),
            sink_dir_canon: PathBuf::new(),
            log_file: dir.join("log").join("maillog"),
            dir,
            smtp_port: 0,
            sink_port: 0,
            master: None,
            sink: None,
            tmp: Some(tmp),
        };
        // From here on, a panic drops `relay`, which stops whatever was started.
        relay.prepare_dirs(ids);
        relay.sink_dir_canon = fs::canonicalize(&relay.sink_dir)
            .unwrap_or_else(|e| panic!("postfix harness: canonicalize {}: {e}", relay.sink_dir.display()));
        if !opts.milter_socket.as_os_str().is_empty() {
            warn_if_unreachable(&opts.milter_socket, ids);
        }
        relay.start_sink();
        relay.start_postfix(&opts, extra_main_cf);
        if std::env::var_os("POSTFIX_HARNESS_VERBOSE").is_some() {
            eprintln!(
                "postfix harness: relay {} ready in {:.3}s (smtp {}, sink {}, dir {})",
                relay.id,
                t0.elapsed().as_secs_f64(),
                relay.smtp_port,
                relay.sink_port,
                relay.dir.display()
            );
        }
        relay
    }

    /// Port of the instance's smtpd on 127.0.0.1.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Port of the smtp-sink (the relayhost) on 127.0.0.1.
    pub fn sink_port(&self) -> u16 {
        self.sink_port
    }

    /// `myhostname` of this instance (appears in the SMTP greeting, Message-Ids, ...).
    pub fn hostname(&self) -> &str {
        &self.myhostname
    }

    /// The instance's temp dir (etc/, queue/, data/, sink/, log/ live below it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The instance's Postfix configuration directory (for `postconf -c`, `postqueue -c`, ...).
    pub fn config_dir(&self) -> &Path {
        &self.conf_dir
    }

    /// Waits (polling, up to `timeout`) until at least `n` messages are in the sink, and returns
    /// all of them sorted by arrival. Panics on timeout, with the maillog in the message.
    pub fn wait_delivered(&self, n: usize, timeout: Duration) -> Vec<SinkMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.delivered();
            if msgs.len() >= n {
                return msgs;
            }
            if Instant::now() >= deadline {
                panic!(
                    "postfix harness: timed out after {:?} waiting for {} message(s) in the sink, got {}.\n\
                     queue: {}\n--- maillog ---\n{}",
                    timeout,
                    n,
                    msgs.len(),
                    self.queue_summary(),
                    self.maillog()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The messages completely received by the sink right now, sorted by arrival.
    pub fn delivered(&self) -> Vec<SinkMessage> {
        // Order matters: list the directory first, then look at what smtp-sink still has open.
        // A file that was listed and is not open any more has been closed for good, either
        // complete (after the final ".") or unlinked (aborted transaction: reading it fails).
        let mut names: Vec<PathBuf> = match fs::read_dir(&self.sink_dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) => panic!("postfix harness: cannot read sink dir {}: {e}", self.sink_dir.display()),
        };
        names.retain(|p| p.is_file());
        let open = self.sink_open_files();
        let mut found: Vec<(SystemTime, PathBuf, SinkMessage)> = Vec::new();
        for path in names {
            let Some(name) = path.file_name() else {
                continue;
            };
            if open.contains(&self.sink_dir_canon.join(name)) {
                continue;
            }
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let Ok(bytes) = fs::read(&path) else { continue };
            let msg = SinkMessage::parse(&bytes).unwrap_or_else(|e| {
                panic!(
                    "postfix harness: cannot parse sink file {}: {e}\n--- file ---\n{}",
                    path.display(),
                    String::from_utf8_lossy(&bytes)
                )
            });
            found.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), path, msg));
        }
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        found.into_iter().map(|(_, _, m)| m).collect()
    }

    /// Contents of Postfix's log file (empty if nothing was logged yet).
    pub fn maillog(&self) -> String {
        match fs::read(&self.log_file) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => String::new(),
        }
    }

    fn maillog_since(&self, offset: usize) -> String {
        match fs::read(&self.log_file) {
            Ok(b) => String::from_utf8_lossy(b.get(offset..).unwrap_or(&[])).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// Polls the maillog until it contains `needle`; returns the log, panics on timeout.
    pub fn wait_maillog_contains(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.maillog();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() >= deadline {
                panic!(
                    "postfix harness: maillog did not contain {needle:?} within {timeout:?}\n--- maillog ---\n{log}"
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `postqueue -c DIR -f`: attempt delivery of all queued (e.g. deferred) mail now.
    pub fn flush(&self) {
        let out = Command::new(POSTQUEUE)
            .arg("-c")
            .arg(&self.conf_dir)
            .arg("-f")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("postfix harness: cannot run {POSTQUEUE}: {e}"));
        if !out.status.success() {
            panic!(
                "postfix harness: postqueue -f failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// True if there are no files under the queue's active/deferred/incoming/maildrop dirs.
    pub fn queue_is_empty(&self) -> bool {
        ["active", "deferred", "incoming", "maildrop"].iter().all(|q| count_files(&self.queue_dir.join(q)) == 0)
    }

    /// Polls until [`queue_is_empty`](Self::queue_is_empty); panics on timeout.
    pub fn wait_queue_empty(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.queue_is_empty() {
            if Instant::now() >= deadline {
                panic!(
                    "postfix harness: queue not empty after {timeout:?}: {}\n--- maillog ---\n{}",
                    self.queue_summary(),
                    self.maillog()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Output of `postqueue -c DIR -p` (the mailq listing), for diagnostics.
    pub fn mailq(&self) -> String {
        match Command::new(POSTQUEUE).arg("-c").arg(&self.conf_dir).arg("-p").stdin(Stdio::null()).output() {
            Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            Err(e) => format!("(postqueue -p failed: {e})"),
        }
    }

    fn queue_summary(&self) -> String {
        ["incoming", "active", "deferred", "hold", "maildrop"]
            .iter()
            .map(|q| format!("{q}={}", count_files(&self.queue_dir.join(q))))
            .collect::<Vec<_>>()
            .join(" ")
    }

    // --- start-up ----------------------------------------------------------------------------

    fn prepare_dirs(&self, ids: &Ids) {
        // The temp dir is 0700 root; the postfix user must be able to traverse it.
        set_mode(&self.dir, 0o755);
        for d in [&self.conf_dir, &self.queue_dir, &self.sink_dir, &self.dir.join("log"), &self.dir.join("data")] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("postfix harness: mkdir {}: {e}", d.display()));
        }
        set_mode(&self.queue_dir, 0o755);
        chown(&self.dir.join("data"), ids.postfix_uid, ids.postfix_gid);
        set_mode(&self.dir.join("data"), 0o700);
        chown(&self.sink_dir, ids.postfix_uid, ids.postfix_gid);
        set_mode(&self.sink_dir, 0o755);
        // Queue sub-directories, as in /etc/postfix/postfix-files (what `post-install
        // create-missing`, run by `postfix start`, would create - but in 0.4s less).
        for (name, mode, group) in [
            ("active", 0o700, None),
            ("bounce", 0o700, None),
            ("corrupt", 0o700, None),
            ("defer", 0o700, None),
            ("deferred", 0o700, None),
            ("flush", 0o700, None),
            ("hold", 0o700, None),
            ("incoming", 0o700, None),
            ("private", 0o700, None),
            ("saved", 0o700, None),
            ("trace", 0o700, None),
            ("maildrop", 0o730, Some(ids.postdrop_gid)),
            ("public", 0o710, Some(ids.postdrop_gid)),
        ] {
            let p = self.queue_dir.join(name);
            fs::create_dir(&p).unwrap_or_else(|e| panic!("postfix harness: mkdir {}: {e}", p.display()));
            chown(&p, ids.postfix_uid, group.unwrap_or(0));
            set_mode(&p, mode);
        }
        let pid_dir = self.queue_dir.join("pid");
        fs::create_dir(&pid_dir).unwrap_or_else(|e| panic!("postfix harness: mkdir {}: {e}", pid_dir.display()));
        set_mode(&pid_dir, 0o755);
    }

    fn start_sink(&mut self) {
        let sink_bin = SINK_CANDIDATES
            .iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("postfix harness: smtp-sink not found in {SINK_CANDIDATES:?}"));
        let sink_host = format!("sink-{}.test", self.id);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut attempts = Vec::new();
        for _attempt in 0..5 {
            let port = free_port();
            let log = self.dir.join("sink.log");
            let out = fs::OpenOptions::new().create(true).append(true).open(&log).expect("sink.log");
            let template = format!("{}/%Y%m%d%H%M%S.", self.sink_dir.display());
            let mut child = Command::new(sink_bin)
                .args(["-u", "postfix", "-h", &sink_host, "-d", &template])
                .arg(format!("127.0.0.1:{port}"))
                .arg("256")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("postfix harness: cannot spawn {sink_bin}: {e}"));
            // Ready once it greets us with its own hostname.
            loop {
                if let Some(st) = child.try_wait().expect("try_wait smtp-sink") {
                    attempts.push(format!("port {port}: smtp-sink exited with {st}"));
                    break;
                }
                if let Some(greeting) = probe_greeting(None, port) {
                    if greeting.contains(&sink_host) {
                        self.sink_port = port;
                        self.sink = Some(child);
                        return;
                    }
                    // Somebody else owns this port: try another one.
                    attempts.push(format!("port {port}: foreign greeting {greeting:?}"));
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "postfix harness: smtp-sink on port {port} not ready within {START_TIMEOUT:?}; log:\n{}",
                        read_lossy(&self.dir.join("sink.log"))
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!(
            "postfix harness: could not start smtp-sink: {attempts:?}; log:\n{}",
            read_lossy(&self.dir.join("sink.log"))
        );
    }

    fn start_postfix(&mut self, opts: &RelayOptions, extra_main_cf: &[(&str, &str)]) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut attempts = Vec::new();
        fs::write(self.conf_dir.join("header_checks"), "/^Received:/ IGNORE\n").expect("write header_checks");
        fs::write(self.conf_dir.join("milter_maps"), format!("{PROBE_ADDR}/32 DISABLE\n")).expect("write milter_maps");
        for _attempt in 0..5 {
            let port = free_port();
            self.write_config(port, opts, extra_main_cf);
            // Only look at what this attempt logs (a previous attempt may have died on bind).
            let log_start = fs::metadata(&self.log_file).map(|m| m.len()).unwrap_or(0) as usize;
            let out_path = self.dir.join("master.out");
            let out = fs::OpenOptions::new().create(true).append(true).open(&out_path).expect("master.out");
            // Run master in the foreground as our child (it still becomes a session and process
            // group leader). This is what `postfix start` ends up doing, minus the shell-script
            // checks (and without needing a tty).
            let mut child = Command::new(Path::new(POSTFIX_DAEMON_DIR).join("master"))
                .arg("-c")
                .arg(&self.conf_dir)
                .arg("-s")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("postfix harness: cannot spawn postfix master: {e}"));
            let pgid = child.id() as i32;
            loop {
                if let Some(st) = child.try_wait().expect("try_wait master") {
                    attempts.push(format!("port {port}: master exited with {st}"));
                    break;
                }
                if let Some(greeting) = probe_greeting(Some(PROBE_ADDR), port) {
                    if greeting.starts_with("220") && greeting.contains(&self.myhostname) {
                        self.smtp_port = port;
                        self.master = Some(child);
                        return;
                    }
                    // Either a foreign server owns the port (our master will die on bind), or
                    // smtpd is unhappy; keep polling until the master exits or we time out.
                    let note = format!("port {port}: greeting {greeting:?}");
                    if attempts.last() != Some(&note) {
                        attempts.push(note);
                    }
                }
                // A daemon that dies on its configuration will never answer: fail fast.
                let log = self.maillog_since(log_start);
                let broken = log.contains("bad command startup")
                    || (log.contains("fatal: ") && !log.contains("Address already in use"));
                if broken || Instant::now() >= deadline {
                    self.master = Some(child); // so that Drop stops it
                    panic!(
                        "postfix harness: Postfix on port {port} {} ({attempts:?})\n\
                         --- master output ---\n{}\n--- maillog ---\n{}\n--- postfix check ---\n{}",
                        if broken {
                            "failed: a daemon died at start-up (see maillog)".to_string()
                        } else {
                            format!("not ready within {START_TIMEOUT:?}")
                        },
                        read_lossy(&self.dir.join("master.out")),
                        self.maillog(),
                        self.postfix_check()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Master died. Port taken by someone else? Then retry with another port.
            wait_group_gone(Some(pgid), Duration::from_secs(2));
            let log = self.maillog_since(log_start) + &read_lossy(&self.dir.join("master.out"));
            let port_taken = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err();
            if !port_taken && !log.contains("Address already in use") {
                panic!(
                    "postfix harness: Postfix master failed to start ({attempts:?})\n\
                     --- master output ---\n{}\n--- maillog ---\n{}\n--- postfix check ---\n{}",
                    read_lossy(&self.dir.join("master.out")),
                    self.maillog(),
                    self.postfix_check()
                );
            }
        }
        panic!("postfix harness: could not start Postfix: {attempts:?}\n--- maillog ---\n{}", self.maillog());
    }

    fn postfix_check(&self) -> String {
        match Command::new("/usr/sbin/postfix").arg("-c").arg(&self.conf_dir).arg("check").output() {
            Ok(o) => {
                format!("{}: {}{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
            }
            Err(e) => format!("(cannot run postfix check: {e})"),
        }
    }

    fn write_config(&self, smtp_port: u16, opts: &RelayOptions, extra: &[(&str, &str)]) {
        let d = self.dir.display();
        let mut main = format!(
            "# generated by the e2e test harness (tests/support/postfix.rs)\n\
             compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             myhostname = {host}\n\
             mydomain = test\n\
             myorigin = $myhostname\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             relay_domains = {relay_domain}\n\
             relayhost = [127.0.0.1]:{sink}\n\
             message_size_limit = 52428800\n\
             mailbox_size_limit = 0\n\
             header_checks = regexp:{d}/etc/header_checks\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             smtp_dns_support_level = disabled\n\
             smtpd_error_sleep_time = 0\n\
             in_flow_delay = 0\n\
             biff = no\n\
             maillog_file = {log}\n\
             maillog_file_prefixes = {d}/log\n\
             milter_protocol = 6\n",
            host = self.myhostname,
            relay_domain = opts.relay_domain,
            sink = self.sink_port,
            log = self.log_file.display(),
        );
        if !opts.milter_socket.as_os_str().is_empty() {
            let action =
                if opts.milter_default_action.is_empty() { "tempfail" } else { opts.milter_default_action.as_str() };
            main.push_str(&format!(
                "smtpd_milters = {{ unix:{}, default_action={action} }}\n\
                 smtpd_milter_maps = cidr:{d}/etc/milter_maps\n",
                opts.milter_socket.display()
            ));
        }
        for (k, v) in extra {
            main.push_str(&format!("{k} = {v}\n"));
        }
        fs::write(self.conf_dir.join("main.cf"), main).expect("write main.cf");
        fs::write(self.conf_dir.join("master.cf"), master_cf(smtp_port)).expect("write master.cf");
        // Postfix refuses to read a main.cf (or table) modified within the last couple of seconds
        // ("file is too new", it sleeps in 300ms steps until it is older): back-date everything.
        for name in ["main.cf", "master.cf", "header_checks", "milter_maps"] {
            backdate(&self.conf_dir.join(name));
        }
    }

    /// Absolute paths of the files smtp-sink currently has open (capture files in progress).
    fn sink_open_files(&self) -> HashSet<PathBuf> {
        let pid = match &self.sink {
            Some(c) => c.id(),
            None => return HashSet::new(),
        };
        let fd_dir = format!("/proc/{pid}/fd");
        let rd = fs::read_dir(&fd_dir)
            .unwrap_or_else(|e| panic!("postfix harness: smtp-sink (pid {pid}) is gone? {fd_dir}: {e}"));
        rd.filter_map(|e| e.ok())
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter(|p| p.starts_with(&self.sink_dir_canon))
            .collect()
    }

    fn stop(&mut self) {
        if let Some(mut master) = self.master.take() {
            let pgid = master.id() as i32;
            // SIGTERM to the master: it signals its process group and exits ("postfix abort").
            unsafe {
                libc::kill(pgid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match master.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = master.kill();
                        let _ = master.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // Children (smtpd, qmgr, ...) got SIGTERM too; wait for them so that nothing writes
            // into the temp dir while it is being removed.
            wait_group_gone(Some(pgid), Duration::from_secs(5));
        }
        if let Some(mut sink) = self.sink.take() {
            let _ = sink.kill();
            let _ = sink.wait();
        }
    }
}

impl Drop for PostfixRelay {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("POSTFIX_HARNESS_KEEP").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            let kept = tmp.keep();
            eprintln!("postfix harness: keeping {}", kept.display());
        }
    }
}

/// master.cf: /etc/postfix/master.cf (or a built-in copy) with every `inet` service removed,
/// chroot = n everywhere (the queue is private), a postlog service, and our smtpd.
fn master_cf(smtp_port: u16) -> String {
    let base = fs::read_to_string("/etc/postfix/master.cf").unwrap_or_else(|_| BUILTIN_MASTER_CF.to_string());
    let mut out = String::from("# generated by the e2e test harness from /etc/postfix/master.cf\n");
    let mut skipping = false;
    let mut have_postlog = false;
    for line in base.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            skipping = false;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if fields[1] == "inet" {
            skipping = true;
            continue;
        }
        skipping = false;
        if fields[0] == "postlog" {
            have_postlog = true;
        }
        let mut f = fields.clone();
        f[4] = "n";
        out.push_str(&f.join("  "));
        out.push('\n');
    }
    if !have_postlog {
        out.push_str("postlog   unix-dgram n  -       n       -       1       postlogd\n");
    }
    // private=n, unpriv=default (runs as mail_owner; smtpd refuses root), chroot=n.
    out.push_str(&format!("127.0.0.1:{smtp_port} inet  n  -  n  -  -  smtpd\n"));
    out
}

const BUILTIN_MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

// ---------------------------------------------------------------------------------------------
// Sink messages
// ---------------------------------------------------------------------------------------------

/// One message captured by smtp-sink.
#[derive(Debug, Clone)]
pub struct SinkMessage {
    /// Envelope sender from smtp-sink's `X-Mail-Args:` without angle brackets ("" for `<>`).
    pub mail_from: String,
    /// Envelope recipients from the `X-Rcpt-Args:` lines, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message as delivered (headers + body) in wire form (CRLF line endings), without
    /// smtp-sink's X-* lines, its own Received: header and its end-of-data artifact.
    pub raw: Vec<u8>,
}

impl SinkMessage {
    /// The header section only (up to, not including, the empty line), lossy UTF-8, CRLF endings.
    pub fn header_block(&self) -> String {
        if self.raw.starts_with(b"\r\n") {
            return String::new();
        }
        let end = find(&self.raw, b"\r\n\r\n").map(|i| i + 2).unwrap_or(self.raw.len());
        String::from_utf8_lossy(&self.raw[..end]).into_owned()
    }

    /// The body (everything after the empty line), lossy UTF-8, CRLF endings.
    pub fn body(&self) -> String {
        match find(&self.raw, b"\r\n\r\n") {
            Some(i) => String::from_utf8_lossy(&self.raw[i + 4..]).into_owned(),
            None => String::new(),
        }
    }

    /// Unfolded values (leading whitespace trimmed) of every header named `name`
    /// (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let block = self.header_block();
        let mut out = Vec::new();
        let mut current: Option<String> = None;
        for line in block.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(c) = current.as_mut() {
                    c.push_str("\r\n");
                    c.push_str(line);
                }
                continue;
            }
            if let Some(c) = current.take() {
                out.push(c);
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                current = Some(v.trim_start().to_string());
            }
        }
        if let Some(c) = current.take() {
            out.push(c);
        }
        out.into_iter().map(|v| v.replace("\r\n", "")).collect()
    }

    /// The first header named `name` (see [`headers`](Self::headers)).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Parses one smtp-sink capture file (`smtp-sink -d` format). Public for unit tests.
    pub fn parse(file: &[u8]) -> Result<SinkMessage, String> {
        let mut rest = file;
        let mut mail_from: Option<String> = None;
        let mut rcpt_to = Vec::new();
        // smtp-sink's own records, then its 3-line Received: header, then the message.
        loop {
            let (line, next) = split_line(rest).ok_or("truncated smtp-sink header")?;
            let text = String::from_utf8_lossy(line);
            if let Some(v) = text.strip_prefix("X-Mail-Args:") {
                mail_from = Some(angle_addr(v));
            } else if let Some(v) = text.strip_prefix("X-Rcpt-Args:") {
                rcpt_to.push(angle_addr(v));
            } else if text.starts_with("X-Client-Addr:")
                || text.starts_with("X-Client-Proto:")
                || text.starts_with("X-Helo-Args:")
            {
            } else if text.starts_with("Received: ") {
                rest = next;
                // "\tby HOST (smtp-sink) with PROTO id ID;" and "\tDATE".
                for _ in 0..2 {
                    let (l, n) = split_line(rest).ok_or("truncated smtp-sink Received: header")?;
                    if !l.starts_with(b"\t") {
                        return Err("unexpected smtp-sink Received: header layout".into());
                    }
                    rest = n;
                }
                break;
            } else {
                return Err(format!("unexpected smtp-sink header line {text:?}"));
            }
            rest = next;
        }
        let mail_from = mail_from.ok_or("no X-Mail-Args line")?;
        // The final "." line leaves a lone "\n" at the end (the "." and CRs are not stored).
        let content = rest.strip_suffix(b"\n").unwrap_or(rest);
        let mut raw = Vec::with_capacity(content.len() + content.len() / 32);
        for &b in content {
            if b == b'\n' {
                raw.push(b'\r');
            }
            raw.push(b);
        }
        Ok(SinkMessage { mail_from, rcpt_to, raw })
    }
}

fn split_line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = buf.iter().position(|&b| b == b'\n')?;
    Some((&buf[..i], &buf[i + 1..]))
}

/// "<a@b> SIZE=12 BODY=8BITMIME" -> "a@b"; "<>" -> "".
fn angle_addr(args: &str) -> String {
    let args = args.trim();
    if let Some(start) = args.find('<')
        && let Some(len) = args[start + 1..].find('>')
    {
        return args[start + 1..start + 1 + len].to_string();
    }
    args.split_whitespace().next().unwrap_or("").to_string()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// SMTP client
// ---------------------------------------------------------------------------------------------

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text of all lines (after "NNN-"/"NNN "), joined with "\n"; includes the enhanced code.
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text.replace('\n', " / "))
    }
}

/// Minimal blocking SMTP client returning every reply.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    greeting: Reply,
    ehlo: Reply,
}

impl Smtp {
    /// Connects to 127.0.0.1:`port`, reads the greeting and sends `EHLO client.test`.
    pub fn connect(port: u16) -> Smtp {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("smtp client: connect to {addr}: {e}"));
        stream.set_read_timeout(Some(SMTP_IO_TIMEOUT)).expect("set_read_timeout");
        stream.set_write_timeout(Some(SMTP_IO_TIMEOUT)).expect("set_write_timeout");
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().expect("clone TcpStream");
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
            writer,
            greeting: Reply { code: 0, text: String::new() },
            ehlo: Reply { code: 0, text: String::new() },
        };
        smtp.greeting = smtp.read_reply("(greeting)");
        smtp.ehlo = smtp.command("EHLO client.test");
        smtp
    }

    /// The server's greeting (normally 220).
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// The reply to `EHLO client.test`.
    pub fn ehlo_reply(&self) -> &Reply {
        &self.ehlo
    }

    /// `MAIL FROM:<addr>` ("" -> `<>`).
    pub fn mail_from(&mut self, addr: &str) -> Reply {
        self.command(&format!("MAIL FROM:<{addr}>"))
    }

    /// `RCPT TO:<addr>`.
    pub fn rcpt_to(&mut self, addr: &str) -> Reply {
        self.command(&format!("RCPT TO:<{addr}>"))
    }

    /// DATA; if the reply is 354, sends the CRLF-normalised, dot-stuffed message and "." and
    /// returns the final reply, else returns the DATA reply.
    pub fn data(&mut self, message: &[u8]) -> Reply {
        let r = self.command("DATA");
        if r.code != 354 {
            return r;
        }
        let payload = dot_stuff(message);
        self.writer
            .write_all(&payload)
            .and_then(|_| self.writer.flush())
            .unwrap_or_else(|e| panic!("smtp client: writing message data: {e}"));
        self.read_reply("(end of data)")
    }

    /// Writes raw bytes without waiting for a reply (e.g. part of a message after `354`; the
    /// caller does the dot-stuffing and the final `.`). Read the reply with [`reply`](Self::reply).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .and_then(|_| self.writer.flush())
            .unwrap_or_else(|e| panic!("smtp client: writing raw data: {e}"));
    }

    /// Reads the next reply (`what` names it in panics).
    pub fn reply(&mut self, what: &str) -> Reply {
        self.read_reply(what)
    }

    pub fn rset(&mut self) -> Reply {
        self.command("RSET")
    }

    pub fn noop(&mut self) -> Reply {
        self.command("NOOP")
    }

    /// Sends any command line (without CRLF) and returns the reply.
    pub fn command(&mut self, line: &str) -> Reply {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|_| self.writer.flush())
            .unwrap_or_else(|e| panic!("smtp client: sending {line:?}: {e}"));
        self.read_reply(line)
    }

    /// QUIT (errors ignored: the server may already have closed the connection).
    pub fn quit(mut self) {
        if self.writer.write_all(b"QUIT\r\n").is_ok() {
            let mut line = String::new();
            let _ = self.reader.read_line(&mut line);
        }
    }

    fn read_reply(&mut self, what: &str) -> Reply {
        let mut code = None;
        let mut texts = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .unwrap_or_else(|e| panic!("smtp client: reading reply to {what:?}: {e}"));
            if n == 0 {
                panic!(
                    "smtp client: connection closed while waiting for the reply to {what:?} (got so far: {texts:?})"
                );
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                panic!("smtp client: malformed reply line to {what:?}: {line:?}");
            }
            let c: u16 = line[..3].parse().unwrap();
            if *code.get_or_insert(c) != c {
                panic!("smtp client: inconsistent multi-line reply to {what:?}: {line:?}");
            }
            texts.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Reply { code: c, text: texts.join("\n") };
            }
        }
    }
}

/// CRLF-normalises (bare LF -> CRLF), dot-stuffs, ensures a final CRLF and appends ".\r\n".
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One transaction on a fresh connection: (MAIL reply, RCPT replies, DATA reply or None if no
/// recipient was accepted). RCPTs are sent even if MAIL was refused (their replies show it).
pub fn send(port: u16, from: &str, rcpts: &[&str], message: &[u8]) -> (Reply, Vec<Reply>, Option<Reply>) {
    let mut smtp = Smtp::connect(port);
    let mail = smtp.mail_from(from);
    let rcpt: Vec<Reply> = rcpts.iter().map(|r| smtp.rcpt_to(r)).collect();
    let data = if rcpt.iter().any(|r| r.code / 100 == 2) { Some(smtp.data(message)) } else { None };
    smtp.quit();
    (mail, rcpt, data)
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// A fresh temp dir (mode 0755) for a milter socket that Postfix's smtpd (user `postfix`) can
/// reach. The socket itself must also be writable by `postfix` (e.g. mode 0666).
pub fn milter_socket_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("milter-sock-")
        .tempdir()
        .unwrap_or_else(|e| panic!("postfix harness: cannot create temp dir: {e}"));
    set_mode(d.path(), 0o755);
    d
}

/// Warns (stderr) if `sock` exists but the postfix user could not connect to it.
fn warn_if_unreachable(sock: &Path, ids: &Ids) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(sock) else { return };
    let mut problems = Vec::new();
    let can = |m: &fs::Metadata, bit: u32| -> bool {
        let mode = m.mode();
        if m.uid() == ids.postfix_uid {
            mode & (bit << 6) != 0
        } else if m.gid() == ids.postfix_gid {
            mode & (bit << 3) != 0
        } else {
            mode & bit != 0
        }
    };
    if !can(&meta, 0o2) {
        problems.push(format!("socket mode {:o} is not writable by postfix", meta.mode() & 0o7777));
    }
    let mut dir = sock.parent();
    while let Some(d) = dir {
        if let Ok(m) = fs::metadata(d)
            && !can(&m, 0o1)
        {
            problems.push(format!("{} (mode {:o}) is not searchable by postfix", d.display(), m.mode() & 0o7777));
        }
        dir = d.parent();
    }
    if !problems.is_empty() {
        eprintln!(
            "postfix harness: WARNING: milter socket {} is not reachable by smtpd (user postfix): {}; \
             smtpd will apply the milter default_action",
            sock.display(),
            problems.join("; ")
        );
    }
}

struct Ids {
    postfix_uid: u32,
    postfix_gid: u32,
    postdrop_gid: u32,
}

fn ids() -> &'static Ids {
    static IDS: std::sync::OnceLock<Ids> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        if unsafe { libc::geteuid() } != 0 {
            panic!("postfix harness: must run as root (Postfix needs it)");
        }
        let (postfix_uid, postfix_gid) = lookup_user("postfix");
        Ids { postfix_uid, postfix_gid, postdrop_gid: lookup_group("postdrop") }
    })
}

fn lookup_user(name: &str) -> (u32, u32) {
    let cname = std::ffi::CString::new(name).unwrap();
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        panic!("postfix harness: user {name:?} not found (is postfix installed?)");
    }
    (pwd.pw_uid, pwd.pw_gid)
}

fn lookup_group(name: &str) -> u32 {
    let cname = std::ffi::CString::new(name).unwrap();
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 65536];
    let mut result: *mut libc::group = std::ptr::null_mut();
    let rc = unsafe { libc::getgrnam_r(cname.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        panic!("postfix harness: group {name:?} not found (is postfix installed?)");
    }
    grp.gr_gid
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("postfix harness: chown {}: {e}", p.display()));
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("postfix harness: chmod {}: {e}", p.display()));
}

fn backdate(p: &Path) {
    let t = SystemTime::now() - Duration::from_secs(60);
    let f = fs::File::options()
        .write(true)
        .open(p)
        .unwrap_or_else(|e| panic!("postfix harness: open {}: {e}", p.display()));
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap_or_else(|e| panic!("postfix harness: set mtime of {}: {e}", p.display()));
}

fn read_lossy(p: &Path) -> String {
    fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// A port that was free a moment ago (callers retry if it got taken in between).
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Connects (optionally from `source`) to 127.0.0.1:port and returns the complete greeting
/// (all lines), or None if nothing is listening / no greeting yet. Sends QUIT afterwards.
fn probe_greeting(source: Option<Ipv4Addr>, port: u16) -> Option<String> {
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let stream = match source {
        None => TcpStream::connect_timeout(&SocketAddr::V4(target), Duration::from_secs(2)).ok()?,
        Some(src) => connect_from(src, target)?,
    };
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut greeting = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return if greeting.is_empty() { None } else { Some(greeting) };
        }
        greeting.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    let mut w = stream;
    if w.write_all(b"QUIT\r\n").is_ok() {
        let mut rest = Vec::new();
        let _ = reader.get_mut().set_read_timeout(Some(Duration::from_secs(2)));
        let _ = reader.read_to_end(&mut rest);
    }
    Some(greeting)
}

/// TCP connect with an explicit loopback source address (std cannot bind before connect).
fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> Option<TcpStream> {
    fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = a.port().to_be();
        sa.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
        sa
    }
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let stream = TcpStream::from_raw_fd(fd); // closes fd on every early return
        let s = sockaddr(SocketAddrV4::new(src, 0));
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, &s as *const _ as *const libc::sockaddr, len) != 0 {
            return None;
        }
        let d = sockaddr(dst);
        if libc::connect(fd, &d as *const _ as *const libc::sockaddr, len) != 0 {
            return None;
        }
        Some(stream)
    }
}

/// Waits until no live (non-zombie) process is left in process group `pgid`; SIGKILLs the
/// group after `timeout`. Also for other daemons a test runs in their own process group.
pub fn wait_group_gone(pgid: Option<i32>, timeout: Duration) {
    let Some(pgid) = pgid else { return };
    let deadline = Instant::now() + timeout;
    let mut killed = false;
    loop {
        if !group_has_live_members(pgid) {
            return;
        }
        if Instant::now() >= deadline {
            if killed {
                return;
            }
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn group_has_live_members(pgid: i32) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid pgrp ..." - comm may contain spaces/parens: split after the last ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if f.len() >= 3 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X" {
            return true;
        }
    }
    false
}
