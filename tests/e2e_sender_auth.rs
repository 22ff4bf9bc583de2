//! Sender authentication end to end (issue 6): a real Postfix, the real
//! binary, and a real DNS server on loopback (dnsmasq) holding the SPF, DKIM
//! and DMARC records of the parties' domains. DKIM signatures are made by an
//! independent implementation (Python's dkimpy).

mod support;

use std::path::Path;
use std::process::Command;
use support::dns::Dns;
use support::postfix::{Reply, send};
use support::process::ok;
use support::world::{WAIT, World, json, message};

/// An Ed25519 DKIM key: (private seed for dkimpy, `_domainkey` TXT record).
fn dkim_key() -> (String, String) {
    let script = "import base64, nacl.signing\nk = nacl.signing.SigningKey.generate()\n\
                  print(base64.b64encode(bytes(k)).decode())\n\
                  print('v=DKIM1; k=ed25519; p=' + base64.b64encode(bytes(k.verify_key)).decode())";
    let o = Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let mut lines = out.lines();
    (lines.next().unwrap().to_string(), lines.next().unwrap().to_string())
}

/// `message` signed by dkimpy for `domain` with selector `sel`.
fn dkim_sign(message: &[u8], domain: &str, seed: &str, dir: &Path) -> Vec<u8> {
    let file = dir.join("to-sign.eml");
    std::fs::write(&file, message).unwrap();
    let script = "import sys, dkim\nmsg = open(sys.argv[1], 'rb').read()\n\
                  sig = dkim.sign(msg, b'sel', sys.argv[2].encode(), sys.argv[3].encode(),\n\
                  signature_algorithm=b'ed25519-sha256', include_headers=[b'from', b'to', b'subject', b'date'])\n\
                  sys.stdout.buffer.write(sig + msg)";
    let o = Command::new("python3").arg("-c").arg(script).arg(&file).arg(domain).arg(seed).output().unwrap();
    assert!(o.status.success(), "dkimpy: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

fn data_reply(r: (Reply, Vec<Reply>, Option<Reply>)) -> Reply {
    assert!(r.1.iter().all(|r| r.code == 250), "RCPT: {:?}", r.1);
    r.2.expect("DATA was sent")
}

fn mail(from: &str, to: &str, subject: &str) -> Vec<u8> {
    message(
        &[("From", from), ("To", to), ("Subject", subject), ("Date", "Mon, 23 Nov 2026 10:00:00 +0000")],
        "Hello, about my order.\r\n",
    )
}

#[test]
fn verify_checks_spf_dkim_and_dmarc_against_a_real_dns_server() {
    let (seed, record) = dkim_key();
    let dns = Dns::start(
        &[
            // The seller's mail leaves from its authorised server (loopback here).
            ("seller-corp.example", "v=spf1 ip4:127.0.0.1 -all"),
            ("_dmarc.seller-corp.example", "v=DMARC1; p=reject"),
            // The buyer's provider sends from elsewhere and signs with DKIM.
            ("buyer-mail.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("sel._domainkey.buyer-mail.example", &record),
            ("_dmarc.buyer-mail.example", "v=DMARC1; p=none"),
            // Seller S2's domain: nobody at loopback may use it, and it says reject.
            ("shop2.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("_dmarc.shop2.example", "v=DMARC1; p=reject"),
        ],
        &["carol-mail.example"],
    );
    let w = World::start_with(&format!(
        "[auth]\nmethods = [\"verify\"]\ndns_servers = [\"{}\"]\ndns_timeout_secs = 1\n",
        dns.addr
    ));
    let s2b1 = json(&ok(&w.config, &["alias", "get", "--seller", "S2", "--buyer", "B1", "--json"]))["alias"]
        .as_str()
        .unwrap()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let bob = "bob@buyer-mail.example";

    // SPF pass, aligned: the seller's message goes through.
    let r = data_reply(send(
        w.port(),
        "alice@seller-corp.example",
        &[&w.s1b1],
        &mail("alice@seller-corp.example", &w.s1b1, "Your order shipped"),
    ));
    assert_eq!(r.code, 250, "{r:?}");

    // SPF fails for the buyer's provider, DKIM passes aligned: through.
    let signed = dkim_sign(&mail(bob, &w.seller_alias, "Question"), "buyer-mail.example", &seed, tmp.path());
    let r = data_reply(send(w.port(), bob, &[&w.seller_alias], &signed));
    assert_eq!(r.code, 250, "{r:?}");
    let delivered = w.postfix.wait_delivered(2, WAIT);

    // Unsigned from the buyer's domain: SPF fails, nothing passes.
    let r = data_reply(send(w.port(), bob, &[&w.seller_alias], &mail(bob, &w.seller_alias, "Unsigned")));
    assert_eq!(
        (r.code, r.text.as_str()),
        (
            550,
            "5.7.1 Sender authentication failed (spf=fail dkim=none dmarc=fail).\n5.7.1 Send through your domain's authorised servers, with DKIM for your From: domain."
        )
    );

    // Signed, then altered on the way: the body hash no longer matches
    // (mail-auth reports a body hash mismatch as `neutral`).
    let mut tampered = dkim_sign(&mail(bob, &w.seller_alias, "Tampered"), "buyer-mail.example", &seed, tmp.path());
    tampered.extend_from_slice(b"Send the money to another account.\r\n");
    let r = data_reply(send(w.port(), bob, &[&w.seller_alias], &tampered));
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text.contains("spf=fail dkim=neutral dmarc=fail"), "{r:?}");

    // An approved seller address, spoofed from a host its domain does not
    // authorise; the domain publishes p=reject.
    let r = data_reply(send(
        w.port(),
        "sales@shop2.example",
        &[&s2b1],
        &mail("sales@shop2.example", &s2b1, "Spoofed seller"),
    ));
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text.starts_with("5.7.26 Unauthenticated mail (spf=fail dkim=none dmarc=fail (p=reject))"), "{r:?}");

    // The DNS of the sender's domain does not answer: try again later.
    let carol = "carol@carol-mail.example";
    let r = data_reply(send(w.port(), carol, &[&w.seller_alias], &mail(carol, &w.seller_alias, "Slow DNS")));
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.text.starts_with("4.7.1 "), "{r:?}");

    // Only the two authenticated messages arrived; the failures are recorded
    // with their reason, the DNS trouble is not (its retry will be).
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(w.postfix.delivered().len(), 2);
    assert_eq!(delivered.len(), 2);
    let list = json(&ok(&w.config, &["archive", "list", "--json"]));
    let refused: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == "refused")
        .map(|r| (r["subject"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(refused.len(), 3, "{list}");
    for (subject, reason) in &refused {
        let expected = match subject.as_str() {
            "Unsigned" => "sender authentication failed: spf=fail dkim=none dmarc=fail",
            "Tampered" => "sender authentication failed: spf=fail dkim=neutral dmarc=fail",
            "Spoofed seller" => "sender authentication failed: spf=fail dkim=none dmarc=fail (p=reject)",
            other => panic!("unexpected refusal of {other}"),
        };
        assert_eq!(reason, expected);
    }
    let log = w.milter.as_ref().unwrap().log_text();
    assert_eq!(log.matches("sender authenticated by verify").count(), 2, "{log}");
}

/// A stand-in for an upstream verifier milter (OpenDMARC, rspamd) running
/// before bsm-milter in the same Postfix: it inserts its own
/// `Authentication-Results` at the top, with the verdict the test asks for
/// in `X-Test-Verdict` (none: it adds nothing).
fn start_upstream_verifier(socket: &Path) {
    use indymilter::{Actions, Callbacks, Context, ContextActions, EomContext, NegotiateContext, Status};
    #[derive(Default)]
    struct Seen {
        verdict: Option<String>,
        from_domain: String,
    }
    let callbacks = Callbacks::<Seen>::new()
        .on_negotiate(|cx: &mut NegotiateContext<Seen>, actions, _| {
            Box::pin(async move {
                cx.requested_actions = actions & Actions::ADD_HEADER;
                Status::Continue
            })
        })
        .on_mail(|cx: &mut Context<Seen>, _| {
            Box::pin(async move {
                cx.data = Some(Seen::default());
                Status::Continue
            })
        })
        .on_header(|cx: &mut Context<Seen>, name, value| {
            Box::pin(async move {
                let (name, value) = (name.to_string_lossy(), value.to_string_lossy());
                let seen = cx.data.get_or_insert_with(Seen::default);
                if name.eq_ignore_ascii_case("X-Test-Verdict") {
                    seen.verdict = Some(value.trim().to_string());
                } else if name.eq_ignore_ascii_case("From") {
                    let domain = value.rsplit('@').next().unwrap_or_default();
                    seen.from_domain = domain.trim().trim_end_matches('>').to_string();
                }
                Status::Continue
            })
        })
        .on_eom(|cx: &mut EomContext<Seen>| {
            Box::pin(async move {
                let Some(seen) = cx.data.take() else { return Status::Continue };
                if let Some(verdict) = seen.verdict {
                    let comment = if verdict == "fail" { " (p=reject dis=none)" } else { "" };
                    let value = format!("mx.relay.test; dmarc={verdict}{comment} header.from={}", seen.from_domain);
                    cx.actions.insert_header(0, "Authentication-Results", value).await.unwrap();
                }
                Status::Continue
            })
        });
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            indymilter::run(listener, callbacks, Default::default(), std::future::pending::<()>()).await.unwrap();
        });
    });
}

#[test]
fn trust_authres_believes_only_the_verifier_of_this_hop() {
    // Postfix calls the cleaner, then the verifier, then the relay.
    let sockets = support::postfix::milter_socket_dir();
    let cleaner = sockets.path().join("cleaner.sock");
    let chain = |socket: &Path, bsm: &Path| {
        let verifier = socket.with_file_name("verifier.sock");
        start_upstream_verifier(&verifier);
        [socket, verifier.as_path(), bsm]
            .iter()
            .map(|s| format!("{{ unix:{}, default_action=tempfail }}", s.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = format!(
        "[auth]\nmethods = [\"trust-authres\"]\nauthserv_id = \"mx.relay.test\"\ncleaner_socket = \"unix:{}\"\n",
        cleaner.display()
    );
    let w = World::start_full(&config, |_, bsm| vec![("smtpd_milters".into(), chain(&cleaner, bsm))]);
    let alice = "alice@seller-corp.example";
    let forged = [
        ("Authentication-Results", "mx.relay.test; dmarc=pass header.from=seller-corp.example"),
        ("Authentication-Results", "\"mx.relay.test\"; dmarc=pass header.from=seller-corp.example"),
        ("Authentication-Results", "MX.Relay.Test (trusted) ; dmarc=pass\r\n\theader.from=seller-corp.example"),
    ];
    let with = |verdict: Option<&str>, subject: &str| {
        let mut h: Vec<(&str, &str)> = forged.to_vec();
        h.extend([("From", alice), ("To", w.s1b1.as_str()), ("Subject", subject)]);
        if let Some(v) = verdict {
            h.push(("X-Test-Verdict", v));
        }
        message(&h, "Your parcel leaves today.\r\n")
    };

    // The verifier of this hop says pass: delivered, with no
    // Authentication-Results of any kind left in the copy.
    let r = data_reply(send(w.port(), alice, &[&w.s1b1], &with(Some("pass"), "Verified")));
    assert_eq!(r.code, 250, "{r:?}");
    let delivered = w.postfix.wait_delivered(1, WAIT);
    assert!(delivered[0].headers("Authentication-Results").is_empty(), "{}", delivered[0].header_block());

    // It says fail for a p=reject domain; the forged passes below change nothing.
    let r = data_reply(send(w.port(), alice, &[&w.s1b1], &with(Some("fail"), "Failed")));
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text.starts_with("5.7.26 "), "{r:?}");

    // It adds nothing (not configured for this domain): only forged headers remain.
    let r = data_reply(send(w.port(), alice, &[&w.s1b1], &with(None, "Nothing")));
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text.starts_with("5.7.1 Sender authentication failed (no Authentication-Results from mx.relay.test)"));

    // A buyer is held to the same rule.
    let bob = "bob@buyer-mail.example";
    let q = message(&[("From", bob), ("Subject", "Question"), ("X-Test-Verdict", "pass")], "Hi\r\n");
    let r = data_reply(send(w.port(), bob, &[&w.seller_alias], &q));
    assert_eq!(r.code, 250, "{r:?}");
    w.postfix.wait_delivered(2, WAIT);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(w.postfix.delivered().len(), 2);
}
