//! DKIM signing of what the relay delivers, end to end through a real
//! Postfix, verified by an independent implementation (Python's dkimpy) with
//! the key record a mail admin would publish.

mod support;

use base64::Engine as _;
use std::path::Path;
use std::process::Command;
use support::postfix::{SinkMessage, send};
use support::world::{WAIT, World, message};

fn openssl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// A key file and its `_domainkey` TXT record.
fn key(dir: &Path, kind: &str) -> (String, String) {
    let path = dir.join(format!("{kind}.pem"));
    let p = path.to_str().unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let record = if kind == "ed25519" {
        openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]);
        let spki = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
        format!("v=DKIM1; k=ed25519; p={}", b64(&spki[spki.len() - 32..]))
    } else {
        openssl(&["genrsa", "-traditional", "-out", p, "2048"]);
        let spki = openssl(&["rsa", "-in", p, "-pubout", "-outform", "DER"]);
        format!("v=DKIM1; k=rsa; p={}", b64(&spki))
    };
    (p.to_string(), record)
}

/// dkimpy's verdict on a delivered message, its DNS answered with `record`.
fn verify(m: &SinkMessage, record: &str, dir: &Path) -> String {
    let file = dir.join("delivered.eml");
    std::fs::write(&file, &m.raw).unwrap();
    let script = "import sys, dkim\nmsg = open(sys.argv[1], 'rb').read()\nrec = sys.argv[2].encode()\n\
                  ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec if name == b'sel._domainkey.m.example.com.' else None)\n\
                  print('pass' if ok else 'fail')";
    let o = Command::new("python3").arg("-c").arg(script).arg(&file).arg(record).output().unwrap();
    assert!(o.status.success(), "dkimpy: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn delivered_mail_carries_a_signature_an_independent_verifier_accepts() {
    for kind in ["ed25519", "rsa"] {
        let keys = tempfile::tempdir().unwrap();
        let (path, record) = key(keys.path(), kind);
        let w = World::start_with(&format!("[dkim]\nselector = \"sel\"\nkey_file = \"{path}\"\n"));
        // A buyer message (rebuilt: the footer is added) and a seller message
        // (rewritten headers, body untouched).
        let q = message(
            &[("From", "bob@buyer-mail.example"), ("Subject", "Hello"), ("Date", "Mon, 23 Nov 2026 10:00:00 +0000")],
            "Hi!\r\n",
        );
        send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &q);
        let a = message(&[("From", "alice@seller-corp.example"), ("Subject", "Re: Hello")], "Hello Bob.\r\n");
        send(w.port(), "alice@seller-corp.example", &[&w.s1b1], &a);
        let delivered = w.postfix.wait_delivered(2, WAIT);
        for m in &delivered {
            let sig = m.header("DKIM-Signature").unwrap_or_else(|| panic!("{kind}: unsigned:\n{}", m.header_block()));
            assert!(sig.contains("d=m.example.com") && sig.contains("s=sel"), "{sig}");
            assert_eq!(verify(m, &record, keys.path()), "pass", "{kind}:\n{}", String::from_utf8_lossy(&m.raw));
            // And a tampered copy fails: the verifier is really checking.
            let mut tampered = m.clone();
            let at = tampered.raw.len() - 3;
            tampered.raw[at] ^= 0x20;
            assert_eq!(verify(&tampered, &record, keys.path()), "fail", "{kind}");
        }
    }
}
