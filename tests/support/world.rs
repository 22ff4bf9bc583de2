//! The end-to-end world: the real `bsm-milter` binary (unix socket) in front
//! of a private loopback Postfix, with two sellers and two buyers registered
//! through the CLI.

use super::postfix::{PostfixRelay, RelayOptions, SinkMessage};
use super::process::{Served, ok, write_config};
use mail_parser::MessageParser;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct World {
    pub _dir: tempfile::TempDir,
    pub milter: Option<Served>,
    pub postfix: PostfixRelay,
    pub config: std::path::PathBuf,
    pub seller_alias: String,
    /// Pair aliases of (S1,B1) and (S1,B2).
    pub s1b1: String,
    pub s1b2: String,
}

pub fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap()
}

impl World {
    pub fn start() -> World {
        Self::start_with("")
    }

    /// `extra` is appended to the milter's config (e.g. a `[policy]` table).
    pub fn start_with(extra: &str) -> World {
        Self::start_full(extra, |_, _| Vec::new())
    }

    /// Like `start_with`, with main.cf settings for Postfix made from the
    /// world's directory and the milter's socket.
    pub fn start_full(
        extra: &str,
        main_cf: impl FnOnce(&std::path::Path, &std::path::Path) -> Vec<(String, String)>,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        // Postfix's smtpd runs as `postfix`: it must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let milter = Served::start_with(dir.path(), write_config(dir.path(), extra));
        let c = milter.config.clone();
        let s1 = json(&ok(
            &c,
            &[
                "seller",
                "add",
                "S1",
                "--name",
                "Shop One",
                "--service-address",
                "cs@seller-corp.example",
                "--approve",
                "alice@seller-corp.example",
                "--json",
            ],
        ));
        ok(
            &c,
            &[
                "seller",
                "add",
                "S2",
                "--name",
                "Shop Two",
                "--service-address",
                "cs@shop2.example",
                "--approve",
                "sales@shop2.example",
            ],
        );
        ok(&c, &["buyer", "add", "B1", "--email", "bob@buyer-mail.example", "--name", "Bob Buyer"]);
        ok(&c, &["buyer", "add", "B2", "--email", "carol@carol-mail.example"]);
        let pair = |b: &str| {
            json(&ok(&c, &["alias", "get", "--seller", "S1", "--buyer", b, "--json"]))["alias"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (s1b1, s1b2) = (pair("B1"), pair("B2"));
        let main_cf = main_cf(dir.path(), &milter.milter_socket);
        let main_cf: Vec<(&str, &str)> = main_cf.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let postfix = PostfixRelay::start_with(
            RelayOptions {
                milter_socket: milter.milter_socket.clone(),
                relay_domain: "m.example.com".into(),
                milter_default_action: "tempfail".into(),
            },
            &main_cf,
        );
        World {
            _dir: dir,
            milter: Some(milter),
            postfix,
            config: c,
            seller_alias: s1["alias"].as_str().unwrap().into(),
            s1b1,
            s1b2,
        }
    }

    pub fn port(&self) -> u16 {
        self.postfix.smtp_port()
    }
}

pub fn message(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut m = String::new();
    for (n, v) in headers {
        m.push_str(&format!("{n}: {v}\r\n"));
    }
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

pub fn header(msg: &SinkMessage, name: &str) -> Option<String> {
    let parsed = MessageParser::new().parse(&msg.raw).unwrap();
    parsed.header_raw(name).map(|v| v.trim().to_string())
}

/// No trace of `needles` in the raw message, nor in any decoded header value
/// (RFC 2047, display names), nor in any decoded body part.
pub fn assert_no_trace(msg: &SinkMessage, needles: &[&str]) {
    let raw = String::from_utf8_lossy(&msg.raw).to_lowercase();
    let parsed = MessageParser::new().parse(&msg.raw).unwrap();
    let mut decoded = String::new();
    for h in parsed.headers() {
        decoded.push_str(&format!("{}: {:?}\n", h.name(), h.value()));
    }
    for i in 0..parsed.text_body_count().max(1) {
        if let Some(t) = parsed.body_text(i) {
            decoded.push_str(&t);
        }
    }
    let decoded = decoded.to_lowercase();
    for n in needles {
        assert!(!raw.contains(n), "{n:?} found in raw message:\n{raw}");
        assert!(!decoded.contains(n), "{n:?} found after decoding:\n{decoded}");
    }
}
