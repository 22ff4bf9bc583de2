//! SMTP AUTH end to end (`[auth] methods = ["sasl"]`): a real Postfix with
//! SASL enabled asks a real, private Dovecot auth server (passwd-file) over
//! its socket, and passes the login to the real binary as `{auth_authen}`.
//! A seller passes only when logged in as one of its mapped logins.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::postfix::{Reply, Smtp, send, wait_group_gone};
use support::process::ok;
use support::world::{WAIT, World, assert_no_trace, header, message};

const DOVECOT: &str = "/usr/sbin/dovecot";

/// A private Dovecot that only serves authentication, from a temp dir; stopped on drop.
struct Dovecot {
    child: Option<Child>,
    /// The auth-client socket Postfix connects to (mode 0666).
    socket: PathBuf,
    log: PathBuf,
    // Dropped after Drop::drop has stopped the processes.
    _dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts Dovecot with a passwd-file of `users` (login, password) and
    /// waits until its auth server offers PLAIN and LOGIN on the socket.
    fn start(users: &[(&str, &str)]) -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} not found: this test needs the Debian package dovecot-core (scripts/install-deps.sh installs it)"
        );
        let version = Command::new(DOVECOT).arg("--version").output().expect("dovecot --version");
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        assert!(version.starts_with("2.3."), "dovecot {version:?}: the dovecot.conf written here is in 2.3 syntax");
        // Dovecot's auth process (user dovecot) reads the passwd-file and
        // Postfix's smtpd (user postfix) reaches the socket: 0755 all the way.
        let dir = tempfile::Builder::new().prefix("dovecot-sasl-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        let passwd = d.join("passwd");
        let lines: String = users.iter().map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n")).collect();
        std::fs::write(&passwd, lines).unwrap();
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
        let socket = d.join("auth");
        let log = d.join("dovecot.log");
        let conf = d.join("dovecot.conf");
        // No protocols: no IMAP/POP3 listener, only the auth service. Plain
        // text passwords without TLS: it is loopback. No failure delay, so a
        // refused password costs no time.
        std::fs::write(
            &conf,
            format!(
                "base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = bsm-test-{pid}\n\
                 protocols =\nssl = no\nlog_path = {log}\n\
                 auth_mechanisms = plain login\ndisable_plaintext_auth = no\n\
                 auth_verbose = yes\nauth_failure_delay = 0\n\
                 passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}}\n\
                 service auth {{\n  unix_listener {socket} {{\n    mode = 0666\n  }}\n}}\n",
                d = d.display(),
                pid = std::process::id(),
                log = log.display(),
                passwd = passwd.display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let out = std::fs::File::create(d.join("dovecot.out")).unwrap();
        // In the foreground, as our child, in its own process group (which Drop stops).
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {DOVECOT}: {e}"));
        let mut dovecot = Dovecot { child: Some(child), socket, log, _dir: dir };
        let mechs = dovecot.wait_ready();
        assert!(mechs.contains(&"PLAIN".to_string()) && mechs.contains(&"LOGIN".to_string()), "{mechs:?}");
        dovecot
    }

    /// Waits until the auth server answers on the socket; its mechanisms.
    fn wait_ready(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dovecot exited with {status}:\n{}", self.diagnostics());
            }
            if let Some(mechs) = self.handshake() {
                return mechs;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dovecot's auth server did not answer on {} within 20s:\n{}",
                    self.socket.display(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's side of the auth-client handshake (`MECH` lines up to
    /// `DONE`), or None if nobody answers yet.
    fn handshake(&self) -> Option<Vec<String>> {
        let stream = UnixStream::connect(&self.socket).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut mechs = Vec::new();
        for line in BufReader::new(stream).lines() {
            let line = line.ok()?;
            if line == "DONE" {
                return Some(mechs);
            }
            if let Some(m) = line.strip_prefix("MECH\t") {
                mechs.push(m.split('\t').next().unwrap_or_default().to_string());
            }
        }
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let out = std::fs::read_to_string(self.log.with_file_name("dovecot.out")).unwrap_or_default();
        format!("--- dovecot output ---\n{out}\n--- dovecot log ---\n{}", self.log_text())
    }

    /// Polls the Dovecot log until it contains `needle`; returns it.
    fn wait_log_contains(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "dovecot log without {needle:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pgid = child.id() as i32;
        // SIGTERM: the master stops its services and exits; then make sure
        // nothing of the group is left (SIGKILL after 5s).
        unsafe {
            libc::kill(pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        wait_group_gone(Some(pgid), Duration::from_secs(5));
    }
}

fn auth_plain(smtp: &mut Smtp, user: &str, password: &str) -> Reply {
    smtp.command(&format!("AUTH PLAIN {}", B64.encode(format!("\0{user}\0{password}"))))
}

fn auth_login(smtp: &mut Smtp, user: &str, password: &str) -> Reply {
    let user64 = B64.encode(user);
    for (step, prompt) in [("AUTH LOGIN", "VXNlcm5hbWU6"), (user64.as_str(), "UGFzc3dvcmQ6")] {
        let r = smtp.command(step);
        assert_eq!((r.code, r.text.as_str()), (334, prompt), "AUTH LOGIN as {user}");
    }
    smtp.command(&B64.encode(password))
}

/// MAIL, RCPT, and DATA even after a refused RCPT (Postfix then refuses
/// DATA: nothing can get in): (RCPT reply, DATA reply).
fn transaction(smtp: &mut Smtp, from: &str, rcpt: &str, msg: &[u8]) -> (Reply, Reply) {
    let mail = smtp.mail_from(from);
    assert_eq!(mail.code, 250, "MAIL FROM:<{from}>: {mail}");
    let rcpt = smtp.rcpt_to(rcpt);
    let data = smtp.data(msg);
    (rcpt, data)
}

/// The milter's refusal of a seller without a mapped login, and Postfix's
/// refusal of the DATA that follows.
fn assert_needs_auth(what: &str, (rcpt, data): &(Reply, Reply)) {
    assert_eq!(rcpt.code, 550, "{what}: {rcpt}");
    assert!(rcpt.text.starts_with("5.7.1 Seller mail must be submitted with SMTP authentication"), "{what}: {rcpt}");
    assert_eq!(data.code, 554, "{what}: DATA after the refused recipient: {data}");
}

#[test]
fn seller_mail_passes_only_with_a_mapped_login_checked_by_dovecot() {
    let dovecot = Dovecot::start(&[("shop1-cs", "s1-secret"), ("shop2-cs", "s2-secret"), ("intern", "i-secret")]);
    let socket = dovecot.socket.display().to_string();
    let w = World::start_full("[auth]\nmethods = [\"sasl\"]\n", |_, _| {
        [
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_sasl_type", "dovecot"),
            ("smtpd_sasl_path", socket.as_str()),
            ("smtpd_tls_auth_only", "no"),
            ("smtpd_sasl_security_options", "noanonymous"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    });
    // Postfix hands the milter the login at MAIL FROM by default.
    let macros = Command::new("/usr/sbin/postconf")
        .arg("-c")
        .arg(w.postfix.config_dir())
        .args(["-h", "milter_mail_macros"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&macros.stdout).contains("{auth_authen}"), "{macros:?}");
    // shop1-cs submits as S1, shop2-cs as S2; intern is a Dovecot user mapped to nobody.
    ok(&w.config, &["seller", "map-login", "S1", "shop1-cs"]);
    ok(&w.config, &["seller", "map-login", "S2", "shop2-cs"]);
    let (alice, bob) = ("alice@seller-corp.example", "bob@buyer-mail.example");
    let seller_mail = |subject: &str| {
        message(
            &[("From", &format!("Alice <{alice}>")), ("To", &w.s1b1), ("Subject", subject)],
            "Your parcel ships on Friday.\r\n",
        )
    };

    // 1. Logged in as S1's login: delivered to the buyer, anonymised.
    let mut smtp = Smtp::connect(w.port());
    assert!(smtp.ehlo_reply().text.lines().any(|l| l == "AUTH PLAIN LOGIN"), "EHLO: {}", smtp.ehlo_reply());
    let r = auth_plain(&mut smtp, "shop1-cs", "s1-secret");
    assert_eq!(r.code, 235, "{r}");
    let (rcpt, data) = transaction(&mut smtp, alice, &w.s1b1, &seller_mail("Shipped"));
    assert_eq!((rcpt.code, data.code), (250, 250), "{rcpt} / {data}");
    smtp.quit();
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    assert_eq!(got.rcpt_to, [bob]);
    assert_eq!(got.mail_from, w.seller_alias);
    assert_eq!(header(&got, "From").unwrap(), format!("\"Shop One\" <{}>", w.seller_alias));
    assert_eq!(header(&got, "Subject").unwrap(), "Shipped");
    assert_no_trace(&got, &["alice", "seller-corp", "shop1-cs"]);
    w.postfix.wait_maillog_contains("sasl_method=PLAIN, sasl_username=shop1-cs", WAIT);

    // 2. The same seller and approved address without AUTH.
    let mut smtp = Smtp::connect(w.port());
    assert_needs_auth("no AUTH", &transaction(&mut smtp, alice, &w.s1b1, &seller_mail("No login")));
    smtp.quit();

    // 3. Logged in, but not as one of S1's logins: S2's (with AUTH LOGIN), and an unmapped one.
    let mut smtp = Smtp::connect(w.port());
    let r = auth_login(&mut smtp, "shop2-cs", "s2-secret");
    assert_eq!(r.code, 235, "{r}");
    assert_needs_auth("S2's login", &transaction(&mut smtp, alice, &w.s1b1, &seller_mail("Other login")));
    smtp.quit();
    let mut smtp = Smtp::connect(w.port());
    let r = auth_plain(&mut smtp, "intern", "i-secret");
    assert_eq!(r.code, 235, "{r}");
    assert_needs_auth("unmapped login", &transaction(&mut smtp, alice, &w.s1b1, &seller_mail("Unmapped")));
    smtp.quit();

    // 5. A buyer cannot log in and needs not: delivered to the seller.
    let q = message(&[("From", bob), ("To", &w.seller_alias), ("Subject", "Question")], "Is it blue?\r\n");
    let (_, rcpts, data) = send(w.port(), bob, &[&w.seller_alias], &q);
    assert_eq!((rcpts[0].code, data.map(|d| d.code)), (250, Some(250)), "{rcpts:?}");
    let got = w.postfix.wait_delivered(2, WAIT).remove(1);
    assert_eq!(got.rcpt_to, ["cs@seller-corp.example"]);
    assert_eq!(header(&got, "Subject").unwrap(), "Question");

    // 4. (Last: Dovecot may slow down a client address after a failure.) A
    // wrong password: Dovecot says no, Postfix answers 535, and the session
    // stays unauthenticated.
    let mut smtp = Smtp::connect(w.port());
    let r = auth_plain(&mut smtp, "shop1-cs", "not-the-secret");
    assert_eq!(r.code, 535, "{r}");
    assert!(r.text.starts_with("5.7.8 "), "{r}");
    let log = dovecot.wait_log_contains("Password mismatch");
    assert!(
        log.lines().any(|l| l.contains("passwd-file(shop1-cs,127.0.0.1") && l.ends_with("Password mismatch")),
        "{log}"
    );
    assert_needs_auth("wrong password", &transaction(&mut smtp, alice, &w.s1b1, &seller_mail("Wrong password")));
    smtp.quit();

    // Only the two messages above got through; the four refusals are logged
    // as such.
    assert_eq!(w.postfix.delivered().len(), 2);
    w.postfix.wait_queue_empty(WAIT);
    let log = w.milter.as_ref().unwrap().log_text();
    assert_eq!(log.matches("recipient refused: seller not authenticated").count(), 4, "{log}");
}
