//! Sender authentication (issue 6): before a message is relayed as a seller's
//! or a buyer's, it must pass one of the configured methods:
//! - `sasl`: submitted with SMTP AUTH as a login mapped to the seller;
//! - `trust-authres`: an upstream verifier of this hop (OpenDMARC, rspamd)
//!   says `dmarc=pass` for the `From:` domain in its `Authentication-Results`;
//! - `verify`: SPF for the MAIL FROM domain and DKIM, aligned with the
//!   `From:` domain the way DMARC aligns them, checked here.
//!
//! The `From:` domain must also be the envelope sender's (organizational)
//! domain: the relay knows a party by the envelope, readers by `From:`.

pub mod authres;
mod verify;

pub use verify::Verifier;

use crate::address::Address;
use crate::rewrite::RawHeader;
use std::net::IpAddr;

/// What the relay knows of the SMTP session and the message.
pub struct Facts<'a> {
    pub client_ip: Option<IpAddr>,
    pub helo: &'a str,
    pub envelope: &'a Address,
    pub from: &'a [Address],
    pub headers: &'a [RawHeader],
    pub body: &'a [u8],
}

/// The result of authenticating a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass {
        method: &'static str,
    },
    /// `detail` is recorded and logged; `dmarc_reject`: the domain publishes `p=reject`.
    Fail {
        detail: String,
        dmarc_reject: bool,
    },
    /// DNS trouble: the sender's MTA should retry.
    TempFail {
        detail: String,
    },
}

/// The registrable ("organizational") domain, by the Public Suffix List.
pub fn org_domain(domain: &str) -> &str {
    psl::domain_str(domain).unwrap_or(domain)
}

pub fn aligned(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || org_domain(&a.to_ascii_lowercase()) == org_domain(&b.to_ascii_lowercase())
}

/// The one `From:` domain the message claims, aligned with the envelope sender.
pub fn from_domain(facts: &Facts<'_>) -> Result<String, Verdict> {
    let fail = |detail: &str| Verdict::Fail { detail: detail.to_string(), dmarc_reject: false };
    let mut domains = facts.from.iter().map(|a| a.domain().to_ascii_lowercase());
    let Some(domain) = domains.next() else { return Err(fail("no From: address")) };
    if domains.any(|d| d != domain) {
        return Err(fail("From: names several domains"));
    }
    if !aligned(&domain, facts.envelope.domain()) {
        return Err(fail("From: domain is not the envelope sender's domain"));
    }
    Ok(domain)
}

/// `trust-authres`: the `Authentication-Results` of `authserv_id`. The
/// cleaner milter (called before the upstream verifier) deleted every inbound
/// one with that id and left `marker`, so each one here is the verifier's.
pub fn from_authres(facts: &Facts<'_>, authserv_id: &str, marker: &str) -> Verdict {
    let from = match from_domain(facts) {
        Ok(d) => d,
        Err(v) => return v,
    };
    let cleaned = facts
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case(crate::milter::cleaner::MARKER) && h.value.trim() == marker);
    if !cleaned {
        return Verdict::TempFail {
            detail: "the Authentication-Results cleaner did not see this message: list auth.cleaner_socket \
                     in smtpd_milters before the verifier"
                .into(),
        };
    }
    let ours = facts
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Authentication-Results"))
        .filter(|h| authres::is_from(&h.value, authserv_id))
        .filter_map(|h| authres::parse(&h.value));
    let mut verdict =
        Verdict::Fail { detail: format!("no Authentication-Results from {authserv_id}"), dmarc_reject: false };
    for ar in ours {
        for r in ar.results.iter().filter(|r| r.method == "dmarc") {
            let same_domain = r.prop("header.from").is_some_and(|d| d.eq_ignore_ascii_case(&from));
            if !same_domain {
                continue;
            }
            match r.result.as_str() {
                "pass" => return Verdict::Pass { method: "trust-authres" },
                "temperror" => verdict = Verdict::TempFail { detail: format!("{authserv_id}: dmarc=temperror") },
                result => {
                    let text = format!("{} {}", r.comments, r.prop("policy.dmarc").unwrap_or_default());
                    let reject = text
                        .split_whitespace()
                        .any(|w| matches!(w.to_ascii_lowercase().as_str(), "p=reject" | "policy=reject" | "reject"));
                    verdict = Verdict::Fail { detail: format!("{authserv_id}: dmarc={result}"), dmarc_reject: reject };
                }
            }
        }
    }
    verdict
}

/// Combines the methods' verdicts: any pass wins; otherwise DNS trouble
/// (which may have caused a failure) asks for a retry; otherwise it fails.
pub fn combine(verdicts: Vec<Verdict>) -> Verdict {
    if let Some(pass) = verdicts.iter().find(|v| matches!(v, Verdict::Pass { .. })) {
        return pass.clone();
    }
    if let Some(temp) = verdicts.iter().find(|v| matches!(v, Verdict::TempFail { .. })) {
        return temp.clone();
    }
    let dmarc_reject = verdicts.iter().any(|v| matches!(v, Verdict::Fail { dmarc_reject: true, .. }));
    let detail = verdicts
        .into_iter()
        .filter_map(|v| if let Verdict::Fail { detail, .. } = v { Some(detail) } else { None })
        .collect::<Vec<_>>()
        .join("; ");
    Verdict::Fail { detail, dmarc_reject }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn h(name: &str, value: &str) -> RawHeader {
        RawHeader { name: name.into(), value: value.into() }
    }

    fn check(headers: &[RawHeader], from: &str, envelope: &str) -> Verdict {
        let (from, envelope) = (vec![addr(from)], addr(envelope));
        let mut headers = headers.to_vec();
        headers.push(h(MARKER, "s3cret"));
        let facts = Facts { client_ip: None, helo: "", envelope: &envelope, from: &from, headers: &headers, body: b"" };
        from_authres(&facts, "mx.relay.test", "s3cret")
    }

    use crate::milter::cleaner::MARKER;

    #[test]
    fn organizational_domains_follow_the_public_suffix_list() {
        assert_eq!(org_domain("mail.shop.co.uk"), "shop.co.uk");
        assert_eq!(org_domain("bounce.seller.test"), "seller.test");
        assert!(aligned("bounce.seller.test", "Seller.test"));
        assert!(!aligned("seller.co.uk", "other.co.uk"));
    }

    #[test]
    fn the_verifiers_pass_for_the_from_domain_is_trusted() {
        let headers = [h("Authentication-Results", "mx.relay.test; dmarc=pass header.from=seller.test")];
        assert_eq!(check(&headers, "a@seller.test", "a@seller.test"), Verdict::Pass { method: "trust-authres" });
        // Aligned envelope: a bounce subdomain of the same organization.
        assert_eq!(check(&headers, "a@seller.test", "b@bounce.seller.test"), Verdict::Pass { method: "trust-authres" });
    }

    #[test]
    fn nothing_is_trusted_unless_the_cleaner_saw_the_message() {
        let (from, envelope) = (vec![addr("a@seller.test")], addr("a@seller.test"));
        let pass = h("Authentication-Results", "mx.relay.test; dmarc=pass header.from=seller.test");
        for headers in [vec![pass.clone()], vec![pass.clone(), h(MARKER, "guessed")]] {
            let facts =
                Facts { client_ip: None, helo: "", envelope: &envelope, from: &from, headers: &headers, body: b"" };
            assert!(matches!(from_authres(&facts, "mx.relay.test", "s3cret"), Verdict::TempFail { .. }));
        }
    }

    #[test]
    fn a_failure_with_a_reject_policy_is_reported_as_such() {
        let headers =
            [h("Authentication-Results", "mx.relay.test; dmarc=fail (p=reject dis=none) header.from=seller.test")];
        assert_eq!(
            check(&headers, "a@seller.test", "a@seller.test"),
            Verdict::Fail { detail: "mx.relay.test: dmarc=fail".into(), dmarc_reject: true }
        );
        let none = [h("Authentication-Results", "mx.relay.test; dmarc=fail (p=none) header.from=seller.test")];
        assert!(matches!(check(&none, "a@seller.test", "a@seller.test"), Verdict::Fail { dmarc_reject: false, .. }));
    }

    #[test]
    fn another_id_or_another_domain_does_not_count() {
        let headers = [
            h("Authentication-Results", "(mx.relay.test) evil.test; dmarc=pass header.from=seller.test"),
            h("Authentication-Results", "mx.relay.test; dmarc=pass header.from=evil.test"),
        ];
        assert!(matches!(check(&headers, "a@seller.test", "a@seller.test"), Verdict::Fail { .. }));
        assert!(matches!(check(&[], "a@seller.test", "a@seller.test"), Verdict::Fail { .. }));
    }

    #[test]
    fn from_must_be_the_envelope_senders_domain() {
        let headers = [h("Authentication-Results", "mx.relay.test; dmarc=pass header.from=evil.test")];
        assert_eq!(
            check(&headers, "a@evil.test", "a@seller.test"),
            Verdict::Fail { detail: "From: domain is not the envelope sender's domain".into(), dmarc_reject: false }
        );
    }

    #[test]
    fn rspamd_policy_comment_and_temperror() {
        let reject = [h(
            "Authentication-Results",
            "mx.relay.test; dmarc=fail reason=\"x\" header.from=seller.test (policy=reject)",
        )];
        assert!(matches!(check(&reject, "a@seller.test", "a@seller.test"), Verdict::Fail { dmarc_reject: true, .. }));
        let temp = [h("Authentication-Results", "mx.relay.test; dmarc=temperror header.from=seller.test")];
        assert!(matches!(check(&temp, "a@seller.test", "a@seller.test"), Verdict::TempFail { .. }));
    }

    #[test]
    fn any_pass_wins_then_dns_trouble_then_failure() {
        let fail = |d: &str, r| Verdict::Fail { detail: d.into(), dmarc_reject: r };
        let temp = Verdict::TempFail { detail: "dns".into() };
        let pass = Verdict::Pass { method: "verify" };
        assert_eq!(combine(vec![fail("a", true), pass.clone(), temp.clone()]), pass);
        assert_eq!(combine(vec![fail("a", true), temp.clone()]), temp);
        assert_eq!(combine(vec![fail("a", false), fail("b", true)]), fail("a; b", true));
    }
}
