//! DKIM signing of everything the relay delivers (issue 6), with a key for the
//! relay domain, so mailbox providers see aligned DKIM for the alias domain.
//! Only headers present in the delivered message are signed: a listed but
//! absent header would be signed as empty, and Postfix may still add `Date`.

use crate::config::DkimConfig;
use crate::rewrite::RawHeader;
use mail_auth::common::crypto::{Algorithm, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::DkimSigner;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// The headers a signature covers, when present.
const SIGNED: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The key, shared by the per-message signers (each signs the headers that
/// its message has).
#[derive(Clone)]
enum SharedKey {
    Ed25519(Arc<Ed25519Key>),
    Rsa(Arc<RsaKey<Sha256>>),
}

impl SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        match self {
            SharedKey::Ed25519(k) => k.sign(input),
            SharedKey::Rsa(k) => k.sign(input),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            SharedKey::Ed25519(k) => k.algorithm(),
            SharedKey::Rsa(k) => k.algorithm(),
        }
    }
}

pub struct Dkim {
    key: SharedKey,
    domain: String,
    selector: String,
}

/// An Ed25519 PKCS#8 key (RFC 8410) ends with its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

impl Dkim {
    /// Loads the PEM key: Ed25519 in PKCS#8 (`openssl genpkey -algorithm ed25519`)
    /// or RSA in PKCS#1 (`openssl genrsa -traditional 2048`).
    pub fn load(config: &DkimConfig, domain: &str) -> Result<Dkim, String> {
        let path = config.key_file.display();
        let bad = |what: &str| format!("dkim.key_file {path}: {what}");
        let pem = std::fs::read(&config.key_file).map_err(|e| bad(&e.to_string()))?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(&format!("not a PEM private key: {e}")))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(p) => {
                let d = p.secret_pkcs8_der();
                match d.strip_prefix(ED25519_PKCS8_PREFIX.as_slice()) {
                    Some(seed) if seed.len() == 32 => {
                        SharedKey::Ed25519(Arc::new(Ed25519Key::from_bytes(seed).map_err(|e| bad(&e.to_string()))?))
                    }
                    _ => {
                        return Err(bad(
                            "a PKCS#8 key that is not Ed25519; give RSA keys in PKCS#1 (BEGIN RSA PRIVATE KEY)",
                        ));
                    }
                }
            }
            PrivateKeyDer::Pkcs1(p) => SharedKey::Rsa(Arc::new(
                RsaKey::<Sha256>::from_pkcs1_der(p.secret_pkcs1_der()).map_err(|e| bad(&e.to_string()))?,
            )),
            _ => return Err(bad("unsupported key type (Ed25519 PKCS#8 or RSA PKCS#1)")),
        };
        Ok(Dkim { key, domain: domain.to_string(), selector: config.selector.clone() })
    }

    /// The `DKIM-Signature` header for a message as it will be delivered.
    pub fn sign<'a>(
        &self,
        headers: &[RawHeader],
        body: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<RawHeader, String> {
        let present: Vec<&str> =
            SIGNED.iter().copied().filter(|n| headers.iter().any(|h| h.name.eq_ignore_ascii_case(n))).collect();
        let mut message = crate::rewrite::header_block(headers);
        body.into_iter().for_each(|b| message.extend_from_slice(b));
        let signature = DkimSigner::from_key(self.key.clone())
            .domain(self.domain.as_str())
            .selector(self.selector.as_str())
            .headers(present)
            .sign(&message)
            .map_err(|e| format!("DKIM signing failed: {e}"))?;
        let header = signature.to_header();
        let (name, value) = header.split_once(':').ok_or("DKIM-Signature without a colon")?;
        // One line for the milter. Relaxed canonicalization turns each fold
        // (CRLF + tab) into one space, which is what was signed: keep a space.
        Ok(RawHeader::new(name.trim(), value.replace("\r\n\t", " ").replace("\r\n", " ").trim()))
    }
}
