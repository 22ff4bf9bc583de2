//! End-to-end benchmark (issue 7): Postfix's `smtp-source` drives messages through a private
//! loopback Postfix (the e2e harness, `tests/support/postfix.rs`) into `smtp-sink`, with
//!
//!   (a) no milter,
//!   (b) a no-op indymilter (`examples/noop_milter.rs`, its own process),
//!   (c) bsm-milter: the release binary `target/release/bsm-milter serve`, its own process,
//!       parties registered through the CLI (admin API),
//!
//! in alternating rounds (a, b, c, a, b, c, ...) for two workloads:
//!
//!   buyer->seller  10 KB plain messages (`smtp-source -l 10240`), MAIL FROM a registered
//!                  buyer, RCPT TO the seller alias;
//!   seller->buyer  a ~20 KB tracker-laden marketing HTML message (`benches/data/
//!                  tracker-newsletter.eml`, sent with `smtp-source -F`), MAIL FROM and From:
//!                  an approved seller address, RCPT TO the pair alias.
//!
//! A round is timed from the start of smtp-source until the sink holds all N messages (the
//! sink directory is counted, files still open in smtp-sink excluded; nothing is parsed while
//! the clock runs). After each round the delivered envelopes are checked (N messages, and for
//! (c) rewritten to the aliases / real addresses), the queue must be empty and the sink is
//! emptied (its files are moved aside until the end of the run). Per round it prints msg/s,
//! the CPU time each party used (Postfix = every process of the instance, from /proc) and
//! bsm-milter's CPU ms per message (utime+stime from /proc/PID/stat). Then: bsm-milter's peak RSS (VmHWM) with 100
//! concurrent sessions, and the extra memory for one message with a 10 MiB attachment (on
//! a fresh bsm-milter process). Finally the targets with PASS/FAIL.
//!
//! The machine must be otherwise idle: before each round the benchmark waits (`--quiet-wait`)
//! until CPU time not accounted to its own processes is below 5 % of the machine, and each
//! round prints that share (other%) and is marked when it reached 5 %. Everything (Postfix
//! queues, sinks, bsm-milter's store and archive) lives in one temp dir: set TMPDIR to
//! measure on another file system.
//!
//! Needs root and Postfix (scripts/install-deps.sh). Run it with scripts/bench-e2e.sh, which
//! builds bsm-milter and the no-op milter in release first; or by hand:
//!
//!     cargo build --release --locked --bin bsm-milter --example noop_milter
//!     cargo run --release --locked --example e2e_bench -- [--messages 500] [--rounds 5] ...
//!
//! `--help` lists the options.

#[path = "../tests/support/postfix.rs"]
mod postfix;

use postfix::{PostfixRelay, RelayOptions};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOMAIN: &str = "marketplace.example.com";
const SELLER: &str = "S100";
const SELLER_NAME: &str = "Hanok Pottery";
const SERVICE_ADDRESS: &str = "cs@hanok-pottery.example";
const APPROVED: &str = "minsu@hanok-pottery.example";
const BUYER: &str = "B200";
const BUYER_EMAIL: &str = "jane.doe@buyer-mail.example";
const BUYER_NAME: &str = "Jane Doe";
const ORDER: &str = "114-1234567-1234567";
const NEWSLETTER: &str = include_str!("../benches/data/tracker-newsletter.eml");
const ALIAS_PLACEHOLDER: &str = "@@PAIR_ALIAS@@";
const SMTP_SOURCE: &[&str] = &["/usr/sbin/smtp-source", "/usr/lib/postfix/sbin/smtp-source"];
const MIB: f64 = 1024.0 * 1024.0;

// Targets of issue 7.
const T_B2S_CA: f64 = 0.80;
const T_B2S_CB: f64 = 0.90;
const T_S2B_CA: f64 = 0.70;
const T_CPU_B2S_MS: f64 = 0.3;
const T_CPU_S2B_MS: f64 = 1.0;
const T_PEAK_RSS_MIB: f64 = 64.0;
const T_ATTACH_FACTOR: f64 = 3.0;

// ---------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------

struct Args {
    messages: usize,
    rounds: usize,
    sessions: usize,
    warmup: usize,
    peak_sessions: usize,
    peak_messages: usize,
    attachment_mib: usize,
    workloads: Vec<Workload>,
    bsm_milter: PathBuf,
    noop_milter: PathBuf,
    quiet_wait: Duration,
    keep: bool,
}

const USAGE: &str = "\
usage: e2e_bench [options]
  --messages N        messages per round (default 500)
  --rounds R          rounds per variant and workload, alternating a,b,c (default 5)
  --sessions S        concurrent smtp-source sessions in the rounds (default 10)
  --warmup W          untimed warm-up messages per variant and workload (default 100)
  --peak-sessions P   sessions for the peak-RSS run (default 100)
  --peak-messages M   messages per workload in the peak-RSS run (default 1000)
  --attachment-mib A  attachment size for the memory run, MiB (default 10; 0 skips it)
  --workload W        buyer-seller | seller-buyer | both (default both)
  --bsm-milter PATH   bsm-milter binary (default: target/release/bsm-milter next to this example)
  --noop-milter PATH  no-op milter binary (default: noop_milter next to this example)
  --quiet-wait SECS   before each round, wait up to SECS (default 120) until other work on the
                      machine uses < 5% of its CPU (the other% column shows what remained)
  --keep              keep the work directory (stores, archives, milter logs)";

fn parse_args() -> Args {
    let exe = std::env::current_exe().expect("current_exe");
    let examples_dir = exe.parent().expect("exe dir").to_path_buf();
    let profile_dir = examples_dir.parent().expect("profile dir").to_path_buf();
    let mut a = Args {
        messages: 500,
        rounds: 5,
        sessions: 10,
        warmup: 100,
        peak_sessions: 100,
        peak_messages: 1000,
        attachment_mib: 10,
        workloads: vec![Workload::BuyerToSeller, Workload::SellerToBuyer],
        bsm_milter: profile_dir.join("bsm-milter"),
        noop_milter: examples_dir.join("noop_milter"),
        quiet_wait: Duration::from_secs(120),
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| die(&format!("{flag} needs a value\n{USAGE}")));
        let num = |v: String| v.parse::<usize>().unwrap_or_else(|_| die(&format!("{flag}: not a number: {v}")));
        match flag.as_str() {
            "--messages" => a.messages = num(value()),
            "--rounds" => a.rounds = num(value()),
            "--sessions" => a.sessions = num(value()),
            "--warmup" => a.warmup = num(value()),
            "--peak-sessions" => a.peak_sessions = num(value()),
            "--peak-messages" => a.peak_messages = num(value()),
            "--attachment-mib" => a.attachment_mib = num(value()),
            "--workload" => {
                a.workloads = match value().as_str() {
                    "buyer-seller" => vec![Workload::BuyerToSeller],
                    "seller-buyer" => vec![Workload::SellerToBuyer],
                    "both" => vec![Workload::BuyerToSeller, Workload::SellerToBuyer],
                    other => die(&format!("--workload: unknown workload {other:?}")),
                }
            }
            "--bsm-milter" => a.bsm_milter = PathBuf::from(value()),
            "--noop-milter" => a.noop_milter = PathBuf::from(value()),
            "--quiet-wait" => a.quiet_wait = Duration::from_secs(num(value()) as u64),
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown option {other}\n{USAGE}")),
        }
    }
    if a.messages == 0 || a.rounds == 0 || a.sessions == 0 {
        die("--messages, --rounds and --sessions must be at least 1");
    }
    for (what, p) in [("bsm-milter", &a.bsm_milter), ("noop_milter", &a.noop_milter)] {
        if !p.is_file() {
            die(&format!(
                "{what} binary not found at {}: build it first \
                 (cargo build --release --locked --bin bsm-milter --example noop_milter), or run scripts/bench-e2e.sh",
                p.display()
            ));
        }
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("e2e_bench: {msg}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

fn clk_tck() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Fields of /proc/PID/stat after the command name: [0] = state (field 3), [2] = pgrp,
/// [11] = utime, [12] = stime, [13] = cutime, [14] = cstime.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    let mut fields = vec![0];
    fields.extend(after.split_whitespace().skip(1).map(|f| f.parse::<i64>().unwrap_or(0) as u64));
    Some(fields)
}

/// Our own utime+stime and our reaped children's (cutime+cstime), in ticks.
fn self_ticks() -> (u64, u64) {
    stat_fields("self").map_or((0, 0), |f| (f[11] + f[12], f[13] + f[14]))
}

/// CPU ticks found in one pass over /proc.
struct ProcScan {
    /// utime+stime of every process in each of the process groups asked for, plus what the
    /// group leader has reaped (cutime+cstime): exited members are counted too.
    groups: Vec<u64>,
    /// (utime, stime) of each of the pids asked for.
    pids: Vec<(u64, u64)>,
    /// Kernel threads (kthreadd and its children): writeback, journal, workqueues.
    kthreads: u64,
}

fn scan_proc(pgids: &[i32], pids: &[i32]) -> ProcScan {
    let mut scan = ProcScan { groups: vec![0; pgids.len()], pids: vec![(0, 0); pids.len()], kthreads: 0 };
    let Ok(rd) = fs::read_dir("/proc") else { return scan };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Some(f) = stat_fields(&pid.to_string()) else { continue };
        if pid == 2 || f[1] == 2 {
            scan.kthreads += f[11] + f[12];
            continue;
        }
        if let Some(i) = pgids.iter().position(|&g| g == f[2] as i32) {
            scan.groups[i] += f[11] + f[12];
            if pid == pgids[i] {
                scan.groups[i] += f[13] + f[14];
            }
        }
        if let Some(i) = pids.iter().position(|&p| p == pid) {
            scan.pids[i] = (f[11], f[12]);
        }
    }
    scan
}

/// A value in kB from /proc/PID/status (VmRSS, VmHWM, ...).
fn status_kb(pid: i32, key: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux >= 4.0).
fn reset_peak_rss(pid: i32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |rd| rd.count())
}

/// System-wide CPU ticks, all cores (first line of /proc/stat).
#[derive(Default, Clone, Copy)]
struct SysCpu {
    /// Everything but idle and iowait (includes irq, softirq and steal).
    busy: u64,
    iowait: u64,
    /// irq + softirq (loopback TCP is mostly softirq) + steal.
    irq: u64,
    total: u64,
}

fn sys_cpu() -> SysCpu {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return SysCpu { total: 1, ..Default::default() };
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v[..8].iter().sum();
    SysCpu { busy: total - v[3] - v[4], iowait: v[4], irq: v[5] + v[6] + v[7], total }
}

/// The pid of our child whose comm is `comm` and whose command line contains `needle`.
fn find_child(comm: &str, needle: &str) -> i32 {
    let me = std::process::id().to_string();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if &stat[open + 1..close] != comm || stat[close + 1..].split_whitespace().nth(1) != Some(me.as_str()) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            return pid.parse().unwrap();
        }
    }
    panic!("no child process {comm} with {needle:?} in its command line");
}

// ---------------------------------------------------------------------------------------------
// milter processes
// ---------------------------------------------------------------------------------------------

struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    config: Option<PathBuf>,
}

impl Daemon {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait_sockets(&mut self, sockets: &[&Path]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if sockets.iter().all(|s| std::os::unix::net::UnixStream::connect(s).is_ok()) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited with {st}: {}", self.name, fs::read_to_string(&self.log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                panic!("{} not ready: {}", self.name, fs::read_to_string(&self.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// bsm-milter's `bsm_archive_flushes_total`, read from its admin socket (`/metrics`).
    fn archive_flushes(&self) -> Option<u64> {
        use std::io::{Read, Write};
        let sock = self.config.as_ref()?.parent()?.join("admin.sock");
        let mut s = std::os::unix::net::UnixStream::connect(sock).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.lines().find_map(|l| l.strip_prefix("bsm_archive_flushes_total ")).and_then(|v| v.trim().parse().ok())
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real daemon, `bsm-milter --config DIR/bsm-milter.toml serve`, with the default log level
/// (one info line per decision, to DIR/bsm-milter.log).
fn start_bsm_milter(bin: &Path, dir: &Path) -> Daemon {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.display();
    let config = dir.join("bsm-milter.toml");
    fs::write(
        &config,
        format!(
            "[relay]\ndomain = \"{DOMAIN}\"\n\
             [milter]\nsocket = \"unix:{d}/milter.sock\"\nsocket_mode = \"0666\"\n\
             [admin]\nsocket = \"unix:{d}/admin.sock\"\n\
             [store]\npath = \"{d}/store.redb\"\n\
             [archive]\ndir = \"{d}/archive\"\n\
             [policy]\ndaily_limit_base = 100000000\n"
        ),
    )
    .unwrap();
    let log = dir.join("bsm-milter.log");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut daemon = Daemon { name: "bsm-milter", child, log, config: Some(config) };
    daemon.wait_sockets(&[&dir.join("admin.sock"), &dir.join("milter.sock")]);
    daemon
}

fn start_noop_milter(bin: &Path, dir: &Path) -> Daemon {
    let log = dir.join("noop_milter.log");
    let child = Command::new(bin)
        .arg(dir.join("noop.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut daemon = Daemon { name: "noop_milter", child, log, config: None };
    daemon.wait_sockets(&[&dir.join("noop.sock")]);
    daemon
}

/// The aliases of one bsm-milter store.
struct Parties {
    seller_alias: String,
    pair_alias: String,
}

/// Registers the seller, the buyer and an order through the CLI (which calls the admin API).
fn register(bin: &Path, daemon: &Daemon) -> Parties {
    let config = daemon.config.as_ref().expect("bsm-milter config");
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(bin).arg("--config").arg(config).args(args).output().expect("run bsm-milter CLI");
        if !out.status.success() {
            panic!("bsm-milter {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let seller = cli(&[
        "seller",
        "add",
        SELLER,
        "--name",
        SELLER_NAME,
        "--service-address",
        SERVICE_ADDRESS,
        "--approve",
        APPROVED,
        "--json",
    ]);
    cli(&["buyer", "add", BUYER, "--email", BUYER_EMAIL, "--name", BUYER_NAME, "--json"]);
    cli(&["order", "add", ORDER, "--seller", SELLER, "--buyer", BUYER, "--category", "handmade", "--json"]);
    let pair = cli(&["alias", "get", "--seller", SELLER, "--buyer", BUYER, "--json"]);
    Parties {
        seller_alias: seller["alias"].as_str().expect("seller alias").to_string(),
        pair_alias: pair["alias"].as_str().expect("pair alias").to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Postfix instances
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    NoMilter,
    Noop,
    Bsm,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::NoMilter => "a no milter",
            Kind::Noop => "b no-op milter",
            Kind::Bsm => "c bsm-milter",
        }
    }
}

/// One Postfix instance (with its smtp-sink) for one variant, reused across rounds.
struct Instance {
    kind: Kind,
    relay: PostfixRelay,
    sink_dir: PathBuf,
    sink_canon: PathBuf,
    sink_pid: i32,
    postfix_pgid: i32,
}

impl Instance {
    fn start(kind: Kind, milter_socket: Option<PathBuf>) -> Instance {
        let relay = PostfixRelay::start(RelayOptions {
            milter_socket: milter_socket.unwrap_or_default(),
            relay_domain: DOMAIN.to_string(),
            milter_default_action: "tempfail".to_string(),
        });
        let sink_dir = relay.dir().join("sink");
        let sink_canon = fs::canonicalize(&sink_dir).unwrap();
        let sink_pid = find_child("smtp-sink", &sink_dir.display().to_string());
        let master = find_child("master", &relay.config_dir().display().to_string());
        let postfix_pgid = stat_fields(&master.to_string()).expect("master stat")[2] as i32;
        Instance { kind, relay, sink_dir, sink_canon, sink_pid, postfix_pgid }
    }

    /// Entries in the sink directory (complete or in progress); no stat, no parsing.
    fn listed(&self) -> Vec<OsString> {
        fs::read_dir(&self.sink_dir).map(|rd| rd.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
    }

    /// Messages completely received by smtp-sink: listed files it no longer has open.
    fn complete(&self) -> usize {
        let names = self.listed();
        let open: HashSet<PathBuf> = fs::read_dir(format!("/proc/{}/fd", self.sink_pid))
            .map(|rd| rd.flatten().filter_map(|e| fs::read_link(e.path()).ok()).collect())
            .unwrap_or_default();
        names.iter().filter(|n| !open.contains(&self.sink_canon.join(n))).count()
    }

    /// Empties the sink directory after a round (once the queue is empty). The files are moved
    /// aside, not deleted, until the run ends: on an ext4 without a journal (this machine's
    /// root file system) every file creation scans the inodes deleted in the last minutes
    /// (`recently_deleted`), so deleting thousands of files between rounds would make Postfix's
    /// and bsm-milter's own file creations slower than they are.
    fn clear_sink(&self, round: usize) {
        let done = self.relay.dir().join("sink-done");
        fs::create_dir_all(&done).unwrap();
        for n in self.listed() {
            let mut to = OsString::from(format!("{round}-"));
            to.push(&n);
            fs::rename(self.sink_dir.join(&n), done.join(to)).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// workloads and rounds
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    BuyerToSeller,
    SellerToBuyer,
}

impl Workload {
    fn title(self) -> &'static str {
        match self {
            Workload::BuyerToSeller => "buyer->seller, 10 KB plain text (smtp-source -l 10240)",
            Workload::SellerToBuyer => "seller->buyer, 20 KB tracker-laden HTML newsletter (smtp-source -F)",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Workload::BuyerToSeller => "buyer->seller 10 KB",
            Workload::SellerToBuyer => "seller->buyer HTML",
        }
    }
}

/// What smtp-source sends, and what the sink must receive from (c).
struct Load {
    from: String,
    to: String,
    args: Vec<String>,
    /// (c) rewrites the envelope to these.
    bsm_from: String,
    bsm_to: String,
}

fn load(workload: Workload, parties: &Parties, work: &Path) -> Load {
    match workload {
        Workload::BuyerToSeller => Load {
            from: BUYER_EMAIL.into(),
            to: parties.seller_alias.clone(),
            args: vec!["-l".into(), "10240".into(), "-S".into(), format!("Question about order {ORDER}")],
            bsm_from: parties.pair_alias.clone(),
            bsm_to: SERVICE_ADDRESS.into(),
        },
        Workload::SellerToBuyer => {
            let file = work.join("tracker-newsletter.eml");
            fs::write(&file, NEWSLETTER.replace(ALIAS_PLACEHOLDER, &parties.pair_alias)).unwrap();
            Load {
                from: APPROVED.into(),
                to: parties.pair_alias.clone(),
                args: vec!["-F".into(), file.display().to_string()],
                bsm_from: parties.seller_alias.clone(),
                bsm_to: BUYER_EMAIL.into(),
            }
        }
    }
}

/// Every process of ours whose CPU time is accounted: the Postfix instances (process
/// groups), their smtp-sinks and the milters; smtp-source is a child we reap (cutime).
struct Ctx {
    pgids: Vec<i32>,
    pids: Vec<i32>,
}

/// CPU seconds used during a round.
#[derive(Default, Clone, Copy)]
struct Cpu {
    /// This variant's Postfix instance (every process of it).
    postfix: f64,
    sink: f64,
    source: f64,
    /// This benchmark process (polling the sink).
    bench: f64,
    milter_user: f64,
    milter_sys: f64,
    /// Kernel threads, irq and softirq.
    kernel: f64,
    /// Busy CPU not accounted to any of the above nor to our other processes: other work on
    /// the machine (another user's build ...).
    other: f64,
    busy_pct: f64,
    iowait_pct: f64,
    other_pct: f64,
}

impl Cpu {
    fn milter(&self) -> f64 {
        self.milter_user + self.milter_sys
    }
}

struct Snap {
    scan: ProcScan,
    self_own: u64,
    self_children: u64,
    sys: SysCpu,
}

fn snap(ctx: &Ctx) -> Snap {
    let (self_own, self_children) = self_ticks();
    Snap { scan: scan_proc(&ctx.pgids, &ctx.pids), self_own, self_children, sys: sys_cpu() }
}

fn cpu_delta(ctx: &Ctx, inst: Option<&Instance>, milter: Option<&Daemon>, a: &Snap, b: &Snap) -> Cpu {
    let secs = |ticks: u64| ticks as f64 / clk_tck();
    let d = |x: u64, y: u64| y.saturating_sub(x);
    let group =
        |pgid: i32| ctx.pgids.iter().position(|&g| g == pgid).map_or(0, |i| d(a.scan.groups[i], b.scan.groups[i]));
    let pid = |p: i32| {
        ctx.pids
            .iter()
            .position(|&x| x == p)
            .map_or((0, 0), |i| (d(a.scan.pids[i].0, b.scan.pids[i].0), d(a.scan.pids[i].1, b.scan.pids[i].1)))
    };
    let ours: u64 = ctx.pgids.iter().map(|&g| group(g)).sum::<u64>()
        + ctx.pids.iter().map(|&p| pid(p).0 + pid(p).1).sum::<u64>()
        + d(a.self_own, b.self_own)
        + d(a.self_children, b.self_children);
    let kernel = d(a.scan.kthreads, b.scan.kthreads) + d(a.sys.irq, b.sys.irq);
    let busy = d(a.sys.busy, b.sys.busy);
    let other = busy.saturating_sub(ours + kernel);
    let total = d(a.sys.total, b.sys.total).max(1) as f64;
    let (mu, ms) = milter.map_or((0, 0), |m| pid(m.pid()));
    Cpu {
        postfix: secs(inst.map_or(0, |i| group(i.postfix_pgid))),
        sink: secs(inst.map_or(0, |i| pid(i.sink_pid).0 + pid(i.sink_pid).1)),
        source: secs(d(a.self_children, b.self_children)),
        bench: secs(d(a.self_own, b.self_own)),
        milter_user: secs(mu),
        milter_sys: secs(ms),
        kernel: secs(kernel),
        other: secs(other),
        busy_pct: 100.0 * busy as f64 / total,
        iowait_pct: 100.0 * d(a.sys.iowait, b.sys.iowait) as f64 / total,
        other_pct: 100.0 * other as f64 / total,
    }
}

/// Other work on the machine distorts the figures: waits (up to `max_wait`) until the CPU time
/// not accounted to us is below 5 % of the machine over half a second.
fn wait_quiet(ctx: &Ctx, max_wait: Duration) {
    let start = Instant::now();
    let mut said = false;
    loop {
        let a = snap(ctx);
        std::thread::sleep(Duration::from_millis(500));
        let b = snap(ctx);
        let other = cpu_delta(ctx, None, None, &a, &b).other_pct;
        if other < 5.0 {
            if said {
                println!("       (quiet again after {:.0} s)", start.elapsed().as_secs_f64());
            }
            return;
        }
        if !said {
            println!("       (waiting: other work is using {other:.0}% of the machine's CPU)");
            said = true;
        }
        if start.elapsed() > max_wait {
            println!("       (still {other:.0}% after {max_wait:?}: measuring anyway, see the other% column)");
            return;
        }
    }
}

struct RoundResult {
    kind: Kind,
    messages: usize,
    secs: f64,
    accept_secs: f64,
    cpu: Cpu,
    /// Most milter connections open at once (open fds above the idle count), if sampled.
    max_conns: Option<usize>,
    /// bsm-milter's archive flushes during the round.
    flushes: Option<u64>,
}

impl RoundResult {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.secs
    }
    fn milter_ms_per_msg(&self) -> f64 {
        1000.0 * self.cpu.milter() / self.messages as f64
    }
    fn flushes_per_msg(&self) -> Option<f64> {
        self.flushes.map(|f| f as f64 / self.messages as f64)
    }
}

fn smtp_source() -> &'static str {
    SMTP_SOURCE.iter().copied().find(|p| Path::new(p).exists()).unwrap_or_else(|| die("smtp-source not found"))
}

/// Sends `n` messages with `sessions` parallel smtp-source sessions through `inst` and waits
/// until the sink holds all of them; checks them; empties the sink.
#[allow(clippy::too_many_arguments)]
fn run_round(
    ctx: &Ctx,
    inst: &Instance,
    milter: Option<&Daemon>,
    load: &Load,
    n: usize,
    sessions: usize,
    work: &Path,
    sample_conns: bool,
    quiet_wait: Duration,
) -> RoundResult {
    wait_quiet(ctx, quiet_wait);
    assert!(inst.listed().is_empty() && inst.relay.queue_is_empty(), "round must start with an empty sink and queue");
    let idle_fds = milter.map(|m| open_fds(m.pid()));
    let mut max_fds = idle_fds.unwrap_or(0);
    let source_log = work.join("smtp-source.log");
    let flushes_before = milter.and_then(Daemon::archive_flushes);
    let before = snap(ctx);
    let t0 = Instant::now();
    let mut child = Command::new(smtp_source())
        .args(["-s", &sessions.to_string(), "-m", &n.to_string(), "-M", "client.bench.example"])
        .args(["-f", &load.from, "-t", &load.to])
        .args(&load.args)
        .arg(format!("127.0.0.1:{}", inst.relay.smtp_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&source_log).unwrap())
        .spawn()
        .expect("spawn smtp-source");
    let deadline = t0 + Duration::from_secs(120) + Duration::from_millis(100 * n as u64);
    let mut accepted: Option<f64> = None;
    let mut status = None;
    let secs = loop {
        if status.is_none()
            && let Some(st) = child.try_wait().expect("wait smtp-source")
        {
            accepted = Some(t0.elapsed().as_secs_f64());
            status = Some(st);
        }
        if sample_conns && let Some(m) = milter {
            max_fds = max_fds.max(open_fds(m.pid()));
        }
        if inst.listed().len() >= n && inst.complete() >= n {
            break t0.elapsed().as_secs_f64();
        }
        if let Some(st) = status
            && !st.success()
        {
            fail_round(inst, milter, &source_log, &format!("smtp-source failed ({st})"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            fail_round(
                inst,
                milter,
                &source_log,
                &format!("only {} of {n} messages delivered in time", inst.complete()),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = match status {
        Some(s) => s,
        None => child.wait().expect("wait smtp-source"),
    };
    let accept_secs = accepted.unwrap_or_else(|| t0.elapsed().as_secs_f64());
    let after = snap(ctx);
    if !status.success() {
        fail_round(inst, milter, &source_log, &format!("smtp-source failed ({status})"));
    }
    let flushes = flushes_before.zip(milter.and_then(Daemon::archive_flushes)).map(|(b, a)| a - b);
    verify_and_clear(inst, load, n);
    RoundResult {
        kind: inst.kind,
        messages: n,
        secs,
        accept_secs,
        cpu: cpu_delta(ctx, Some(inst), milter, &before, &after),
        max_conns: if sample_conns { idle_fds.map(|i| max_fds.saturating_sub(i)) } else { None },
        flushes,
    }
}

fn fail_round(inst: &Instance, milter: Option<&Daemon>, source_log: &Path, why: &str) -> ! {
    let log = inst.relay.maillog();
    let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    panic!(
        "{}: {why}\n--- smtp-source ---\n{}\n--- maillog (tail) ---\n{}\n--- milter log (tail) ---\n{}",
        inst.kind.label(),
        fs::read_to_string(source_log).unwrap_or_default(),
        tail.join("\n"),
        milter.map(Daemon::log_tail).unwrap_or_default()
    );
}

/// Exactly `n` messages with the expected envelopes (rewritten by (c)); then empties the sink.
fn verify_and_clear(inst: &Instance, load: &Load, n: usize) {
    inst.relay.wait_queue_empty(Duration::from_secs(60));
    let msgs = inst.relay.delivered();
    assert_eq!(msgs.len(), n, "{}: sink holds {} messages, expected {n}", inst.kind.label(), msgs.len());
    let (from, to) = match inst.kind {
        Kind::Bsm => (&load.bsm_from, &load.bsm_to),
        _ => (&load.from, &load.to),
    };
    for m in &msgs {
        assert!(
            &m.mail_from == from && m.rcpt_to.len() == 1 && &m.rcpt_to[0] == to,
            "{}: unexpected envelope MAIL FROM:<{}> RCPT TO:{:?} (expected <{from}> <{to}>)",
            inst.kind.label(),
            m.mail_from,
            m.rcpt_to
        );
    }
    if inst.kind == Kind::Bsm {
        let header_from = msgs[0].header("From").unwrap_or_default();
        assert!(header_from.contains(from.as_str()), "From: not rewritten: {header_from}");
        let ids: HashSet<String> = msgs.iter().filter_map(|m| m.header("Message-ID")).collect();
        assert_eq!(ids.len(), n, "relay Message-IDs are not distinct: each message must be a new one");
    }
    static ROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    inst.clear_sink(ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    assert!(inst.listed().is_empty(), "sink not empty after clearing");
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

const ROUND_HEADER: &str = "\
round  variant         msgs   secs   msg/s  acc/s | busy% other% iow% | CPU s: postfix  sink source bench kernel other | milter CPU s usr+sys, ms/msg";

/// One line per round. msg/s: until the sink holds every message; acc/s: until smtp-source
/// is done (every message accepted by Postfix). busy/other/iow: % of the machine (all cores).
fn print_round(label: &str, r: &RoundResult) {
    let c = &r.cpu;
    let milter = if r.kind == Kind::NoMilter {
        "-".to_string()
    } else {
        let flushes = r.flushes_per_msg().map(|f| format!(", {f:.2} flush/msg")).unwrap_or_default();
        format!("{:.2}+{:.2}, {:.3}{flushes}", c.milter_user, c.milter_sys, r.milter_ms_per_msg())
    };
    println!(
        "{label:<6} {:<15} {:>4} {:>6.2} {:>7.1} {:>6.1} | {:>5.0} {:>6.1} {:>4.1} |        {:>6.2} {:>5.2} {:>6.2} {:>5.2} {:>6.2} {:>5.2} | {milter}{}",
        r.kind.label(),
        r.messages,
        r.secs,
        r.rate(),
        r.messages as f64 / r.accept_secs,
        c.busy_pct,
        c.other_pct,
        c.iowait_pct,
        c.postfix,
        c.sink,
        c.source,
        c.bench,
        c.kernel,
        c.other,
        if c.other_pct >= 5.0 { "  <- disturbed by other load" } else { "" },
    );
}

/// Results of one workload.
struct Summary {
    workload: Workload,
    rates: [Vec<f64>; 3],
    ca: Vec<f64>,
    cb: Vec<f64>,
    bsm_cpu_ms: Vec<f64>,
    noop_cpu_ms: Vec<f64>,
    bsm_flushes: Vec<f64>,
    hwm_kb: u64,
    rss_kb: u64,
    /// Rounds during which other work used >= 5 % of the machine.
    disturbed: usize,
    /// Indexes of the rounds in which none of a, b, c was disturbed.
    clean: Vec<usize>,
}

fn idx(k: Kind) -> usize {
    match k {
        Kind::NoMilter => 0,
        Kind::Noop => 1,
        Kind::Bsm => 2,
    }
}

// ---------------------------------------------------------------------------------------------
// 10 MiB attachment
// ---------------------------------------------------------------------------------------------

fn base64_lines(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 8);
    for (i, c) in data.chunks(3).enumerate() {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
        if (i + 1) % 19 == 0 {
            out.push_str("\r\n");
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// A buyer's message with one `mib` MiB attachment (incompressible bytes), CRLF line endings.
fn attachment_message(seller_alias: &str, mib: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::with_capacity(mib << 20);
    while data.len() < mib << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(mib << 20);
    let mut m = format!(
        "From: {BUYER_NAME} <{BUYER_EMAIL}>\r\nTo: {SELLER_NAME} <{seller_alias}>\r\n\
         Subject: Photos of the cracked bowl, order {ORDER}\r\nMessage-ID: <attachment-1@buyer-mail.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_bench_boundary\"\r\n\r\n\
         --=_bench_boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello, the bowl arrived cracked. The photos and the video are attached.\r\nJane\r\n\r\n\
         --=_bench_boundary\r\nContent-Type: application/zip; name=\"photos.zip\"\r\n\
         Content-Disposition: attachment; filename=\"photos.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    );
    m.push_str(&base64_lines(&data));
    m.push_str("--=_bench_boundary--\r\n");
    m.into_bytes()
}

struct AttachmentResult {
    rss_before_kb: u64,
    hwm_after_kb: u64,
    rss_after_kb: u64,
    wire_bytes: usize,
    secs: f64,
}

fn run_attachment(args: &Args, work: &Path) -> AttachmentResult {
    let dir = work.join("attachment");
    let bsm = start_bsm_milter(&args.bsm_milter, &dir);
    let parties = register(&args.bsm_milter, &bsm);
    let inst = Instance::start(Kind::Bsm, Some(dir.join("milter.sock")));
    let port = inst.relay.smtp_port();
    // One small message first, so that the process has served a message before the baseline.
    let small = format!(
        "From: {BUYER_EMAIL}\r\nTo: {}\r\nSubject: hello\r\nMessage-ID: <warm-1@buyer-mail.example>\r\n\r\nHello!\r\n",
        parties.seller_alias
    );
    let (_, _, data) = postfix::send(port, BUYER_EMAIL, &[&parties.seller_alias], small.as_bytes());
    assert_eq!(data.map(|d| d.code), Some(250), "warm-up message not accepted");
    inst.relay.wait_delivered(1, Duration::from_secs(60));
    let message = attachment_message(&parties.seller_alias, args.attachment_mib);
    std::thread::sleep(Duration::from_millis(200));
    let pid = bsm.pid();
    let reset = reset_peak_rss(pid);
    let rss_before_kb = status_kb(pid, "VmRSS");
    if !reset {
        println!("  (could not reset VmHWM: the figure below is the process's lifetime peak)");
    }
    let t0 = Instant::now();
    let (_, rcpt, data) = postfix::send(port, BUYER_EMAIL, &[&parties.seller_alias], &message);
    let data = data.unwrap_or_else(|| panic!("attachment: RCPT refused: {rcpt:?}"));
    assert_eq!(data.code, 250, "attachment message not accepted: {data}\n{}", bsm.log_tail());
    while inst.complete() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(300), "attachment message not delivered");
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = t0.elapsed().as_secs_f64();
    let got = inst.relay.delivered().pop().unwrap();
    assert_eq!(got.rcpt_to, vec![SERVICE_ADDRESS.to_string()], "attachment message not rewritten");
    assert_eq!(got.mail_from, parties.pair_alias, "attachment message not rewritten");
    AttachmentResult {
        rss_before_kb,
        hwm_after_kb: status_kb(pid, "VmHWM"),
        rss_after_kb: status_kb(pid, "VmRSS"),
        wire_bytes: message.len(),
        secs,
    }
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_default();
    let mem_kb = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()))
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let postfix = Command::new("postconf")
        .args(["-dh", "mail_version"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {:.1} GiB RAM, Linux {}, Postfix {postfix}", mem_kb as f64 / MIB, kernel.trim())
}

fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("{c}{}", if dirty { " (with uncommitted changes)" } else { "" })
        }
        None => "unknown".into(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn main() {
    let args = parse_args();
    if unsafe { libc::geteuid() } != 0 {
        die("must run as root (Postfix needs it)");
    }
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("bsm-bench-").tempdir().expect("temp dir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let work = tmp.path().to_path_buf();

    println!("== bsm-milter end-to-end benchmark");
    println!("machine:   {}", machine());
    println!("commit:    {}", commit());
    println!("binaries:  {} / {}", args.bsm_milter.display(), args.noop_milter.display());
    println!(
        "rounds:    {} x (a, b, c) per workload, {} messages each, {} concurrent smtp-source sessions, \
         {} untimed warm-up messages per variant",
        args.rounds, args.messages, args.sessions, args.warmup
    );
    println!("work dir:  {}", work.display());

    let bsm_dir = work.join("bsm");
    let bsm = start_bsm_milter(&args.bsm_milter, &bsm_dir);
    let parties = register(&args.bsm_milter, &bsm);
    let noop = start_noop_milter(&args.noop_milter, &work);
    let instances = [
        Instance::start(Kind::NoMilter, None),
        Instance::start(Kind::Noop, Some(work.join("noop.sock"))),
        Instance::start(Kind::Bsm, Some(bsm_dir.join("milter.sock"))),
    ];
    let ctx = Ctx {
        pgids: instances.iter().map(|i| i.postfix_pgid).collect(),
        pids: instances.iter().map(|i| i.sink_pid).chain([bsm.pid(), noop.pid()]).collect(),
    };
    let milter_of = |k: Kind| match k {
        Kind::NoMilter => None,
        Kind::Noop => Some(&noop),
        Kind::Bsm => Some(&bsm),
    };
    println!(
        "bsm-milter pid {} (seller alias {}, pair alias {}), noop_milter pid {}; Postfix smtpd ports a {} b {} c {}",
        bsm.pid(),
        parties.seller_alias,
        parties.pair_alias,
        noop.pid(),
        instances[0].relay.smtp_port(),
        instances[1].relay.smtp_port(),
        instances[2].relay.smtp_port()
    );

    let mut summaries = Vec::new();
    for &workload in &args.workloads {
        let load = load(workload, &parties, &work);
        println!("\n== {}", workload.title());
        println!("{ROUND_HEADER}");
        if args.warmup > 0 {
            for inst in &instances {
                let r = run_round(
                    &ctx,
                    inst,
                    milter_of(inst.kind),
                    &load,
                    args.warmup,
                    args.sessions,
                    &work,
                    false,
                    args.quiet_wait,
                );
                print_round("warmup", &r);
            }
        }
        let mut s = Summary {
            workload,
            rates: [vec![], vec![], vec![]],
            ca: vec![],
            cb: vec![],
            bsm_cpu_ms: vec![],
            noop_cpu_ms: vec![],
            bsm_flushes: vec![],
            hwm_kb: 0,
            rss_kb: 0,
            disturbed: 0,
            clean: vec![],
        };
        for round in 1..=args.rounds {
            let mut rates = [0.0; 3];
            let mut triple_disturbed = false;
            for inst in &instances {
                let r = run_round(
                    &ctx,
                    inst,
                    milter_of(inst.kind),
                    &load,
                    args.messages,
                    args.sessions,
                    &work,
                    false,
                    args.quiet_wait,
                );
                if r.cpu.other_pct >= 5.0 {
                    s.disturbed += 1;
                    triple_disturbed = true;
                }
                print_round(&round.to_string(), &r);
                rates[idx(r.kind)] = r.rate();
                s.rates[idx(r.kind)].push(r.rate());
                match r.kind {
                    Kind::Bsm => {
                        s.bsm_cpu_ms.push(r.milter_ms_per_msg());
                        s.bsm_flushes.extend(r.flushes_per_msg());
                    }
                    Kind::Noop => s.noop_cpu_ms.push(r.milter_ms_per_msg()),
                    Kind::NoMilter => {}
                }
            }
            s.ca.push(rates[2] / rates[0]);
            s.cb.push(rates[2] / rates[1]);
            if !triple_disturbed {
                s.clean.push(round - 1);
            }
        }
        s.hwm_kb = status_kb(bsm.pid(), "VmHWM");
        s.rss_kb = status_kb(bsm.pid(), "VmRSS");
        let m = [median(&s.rates[0]), median(&s.rates[1]), median(&s.rates[2])];
        println!(
            "median msg/s: a {:.1}, b {:.1}, c {:.1}; c/a {:.3} (median of the per-round ratios; ratio of medians {:.3}), \
             c/b {:.3} (ratio of medians {:.3})",
            m[0],
            m[1],
            m[2],
            median(&s.ca),
            m[2] / m[0],
            median(&s.cb),
            m[2] / m[1]
        );
        println!(
            "bsm-milter CPU per message: median {:.3} ms (rounds: {}); no-op milter: median {:.3} ms",
            median(&s.bsm_cpu_ms),
            s.bsm_cpu_ms.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", "),
            median(&s.noop_cpu_ms)
        );
        if !s.bsm_flushes.is_empty() {
            println!(
                "bsm-milter archive flushes (fdatasync rounds) per message: median {:.2} (rounds: {})",
                median(&s.bsm_flushes),
                s.bsm_flushes.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ")
            );
        }
        if s.disturbed > 0 {
            println!(
                "NOTE: {} of {} rounds ran while other work used >= 5% of the machine (other% column); \
                 the figures above and the targets use every round",
                s.disturbed,
                3 * args.rounds
            );
            let pick = |v: &[f64]| s.clean.iter().map(|&i| v[i]).collect::<Vec<_>>();
            if s.clean.is_empty() {
                println!("      no round (a, b, c) was undisturbed");
            } else {
                println!(
                    "      the {} undisturbed round(s) {:?} alone: median msg/s a {:.1}, b {:.1}, c {:.1}; c/a {:.3}, c/b {:.3}; \
                     bsm-milter {:.3} ms/msg",
                    s.clean.len(),
                    s.clean.iter().map(|i| i + 1).collect::<Vec<_>>(),
                    median(&pick(&s.rates[0])),
                    median(&pick(&s.rates[1])),
                    median(&pick(&s.rates[2])),
                    median(&pick(&s.ca)),
                    median(&pick(&s.cb)),
                    median(&pick(&s.bsm_cpu_ms))
                );
            }
        }
        println!(
            "bsm-milter memory so far: VmHWM {:.1} MiB, VmRSS {:.1} MiB",
            s.hwm_kb as f64 / 1024.0,
            s.rss_kb as f64 / 1024.0
        );
        summaries.push((s, load));
    }

    // Peak RSS with many concurrent sessions.
    let mut peak: Vec<(Workload, f64, RoundResult)> = Vec::new();
    if args.peak_sessions > 0 && args.peak_messages > 0 {
        println!(
            "\n== peak memory: {} concurrent sessions, {} messages per workload, bsm-milter (c)",
            args.peak_sessions, args.peak_messages
        );
        println!("{ROUND_HEADER}");
        for (s, load) in &summaries {
            let reset = reset_peak_rss(bsm.pid());
            let r = run_round(
                &ctx,
                &instances[2],
                Some(&bsm),
                load,
                args.peak_messages,
                args.peak_sessions,
                &work,
                true,
                args.quiet_wait,
            );
            print_round("peak", &r);
            let hwm = status_kb(bsm.pid(), "VmHWM") as f64 / 1024.0;
            println!(
                "  {}: bsm-milter VmHWM {:.1} MiB during the run{} (at most {} milter connections open at once), VmRSS after {:.1} MiB",
                s.workload.short(),
                hwm,
                if reset { "" } else { " (lifetime peak: VmHWM could not be reset)" },
                r.max_conns.unwrap_or(0),
                status_kb(bsm.pid(), "VmRSS") as f64 / 1024.0
            );
            peak.push((s.workload, hwm, r));
        }
    }
    let lifetime_hwm = status_kb(bsm.pid(), "VmHWM") as f64 / 1024.0;

    drop(instances);
    drop(noop);
    drop(bsm);

    let attachment = if args.attachment_mib > 0 {
        println!(
            "\n== memory for one message with a {} MiB attachment (fresh bsm-milter process)",
            args.attachment_mib
        );
        let a = run_attachment(&args, &work);
        let extra = (a.hwm_after_kb.saturating_sub(a.rss_before_kb)) as f64 / 1024.0;
        println!(
            "  message on the wire {:.1} MiB (base64); delivered in {:.2} s; VmRSS before {:.1} MiB, \
             VmHWM after {:.1} MiB => extra {:.1} MiB = {:.2}x the attachment ({:.2}x the message); VmRSS after {:.1} MiB",
            a.wire_bytes as f64 / MIB,
            a.secs,
            a.rss_before_kb as f64 / 1024.0,
            a.hwm_after_kb as f64 / 1024.0,
            extra,
            extra / args.attachment_mib as f64,
            extra * MIB / a.wire_bytes as f64,
            a.rss_after_kb as f64 / 1024.0
        );
        Some(extra / args.attachment_mib as f64)
    } else {
        None
    };

    println!("\n== targets (issue 7)");
    println!("{:<58} {:>10}  {:>10}  result", "figure", "measured", "target");
    let row = |what: &str, measured: String, target: String, ok: bool| {
        println!("{what:<58} {measured:>10}  {target:>10}  {}", verdict(ok));
    };
    // A milter started through a wrapper that forks (perf record, say) shows no CPU of its own.
    let cpu_row = |what: &str, cpu: f64, target: f64| {
        if cpu > 0.0 {
            row(what, format!("{cpu:.3} ms"), format!("<= {target} ms"), cpu <= target);
        } else {
            println!(
                "{what:<58} {:>10}  {:>10}  n/a (no CPU seen: a wrapper's child?)",
                "-",
                format!("<= {target} ms")
            );
        }
    };
    for (s, _) in &summaries {
        let ca = median(&s.ca);
        let cb = median(&s.cb);
        let cpu = median(&s.bsm_cpu_ms);
        match s.workload {
            Workload::BuyerToSeller => {
                row(
                    "buyer->seller 10 KB: c/a throughput (median)",
                    format!("{ca:.3}"),
                    format!(">= {T_B2S_CA:.2}"),
                    ca >= T_B2S_CA,
                );
                row(
                    "buyer->seller 10 KB: c/b throughput (median)",
                    format!("{cb:.3}"),
                    format!(">= {T_B2S_CB:.2}"),
                    cb >= T_B2S_CB,
                );
                cpu_row("buyer->seller 10 KB: bsm-milter CPU per message", cpu, T_CPU_B2S_MS);
            }
            Workload::SellerToBuyer => {
                row(
                    "seller->buyer HTML: c/a throughput (median)",
                    format!("{ca:.3}"),
                    format!(">= {T_S2B_CA:.2}"),
                    ca >= T_S2B_CA,
                );
                println!(
                    "{:<58} {:>10}  {:>10}  (no target)",
                    "seller->buyer HTML: c/b throughput (median)",
                    format!("{cb:.3}"),
                    "-"
                );
                cpu_row("seller->buyer HTML: bsm-milter CPU per message", cpu, T_CPU_S2B_MS);
            }
        }
    }
    if let Some(max) = peak.iter().map(|p| p.1).reduce(f64::max) {
        row(
            &format!("bsm-milter peak RSS, {} sessions (VmHWM)", args.peak_sessions),
            format!("{max:.1} MiB"),
            format!("<= {T_PEAK_RSS_MIB} MiB"),
            max <= T_PEAK_RSS_MIB,
        );
    }
    if let Some(f) = attachment {
        row(
            &format!("{} MiB attachment: extra memory / attachment size", args.attachment_mib),
            format!("{f:.2}x"),
            format!("<= {T_ATTACH_FACTOR}x"),
            f <= T_ATTACH_FACTOR,
        );
    }
    println!("(bsm-milter lifetime VmHWM over all rounds and peak runs: {lifetime_hwm:.1} MiB)");
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    if args.keep {
        println!("kept {}", tmp.keep().display());
    }
}
