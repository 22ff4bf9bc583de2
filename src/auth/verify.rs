//! `verify`: SPF, DKIM and DMARC-style alignment checked by the relay itself
//! (mail-auth, over the configured DNS servers).

use super::{Facts, Verdict, aligned, from_domain};
use crate::config::AuthConfig;
use crate::rewrite::header_block;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult};
use std::time::Duration;

pub struct Verifier {
    dns: MessageAuthenticator,
}

impl Verifier {
    /// A resolver over `auth.dns_servers`, or the system's (`/etc/resolv.conf`).
    pub fn new(config: &AuthConfig) -> Result<Verifier, String> {
        let servers = config.dns_server_addrs()?;
        let (resolver, mut opts) = if servers.is_empty() {
            mail_auth::hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("auth: cannot read the system's DNS configuration: {e}"))?
        } else {
            let mut rc = ResolverConfig::from_parts(None, vec![], Vec::<NameServerConfig>::new());
            for addr in servers {
                rc.add_name_server(NameServerConfig::new(addr, ProtocolConfig::Udp));
                rc.add_name_server(NameServerConfig::new(addr, ProtocolConfig::Tcp));
            }
            (rc, ResolverOpts::default())
        };
        opts.timeout = Duration::from_secs(config.dns_timeout_secs);
        opts.attempts = 2;
        let dns = MessageAuthenticator::new(resolver, opts).map_err(|e| format!("auth: DNS resolver: {e}"))?;
        Ok(Verifier { dns })
    }

    pub async fn check(&self, facts: &Facts<'_>, relay_domain: &str) -> Verdict {
        let from = match from_domain(facts) {
            Ok(d) => d,
            Err(v) => return v,
        };
        let Some(ip) = facts.client_ip else {
            return Verdict::TempFail { detail: "client address unknown (no connect information from the MTA)".into() };
        };
        let mut raw = header_block(facts.headers);
        raw.extend_from_slice(facts.body);
        let Some(message) = AuthenticatedMessage::parse(&raw) else {
            return Verdict::Fail { detail: "message cannot be parsed for DKIM".into(), dmarc_reject: false };
        };
        let envelope = facts.envelope.as_str();
        let spf = self.dns.verify_spf(SpfParameters::verify_mail_from(ip, facts.helo, relay_domain, envelope)).await;
        let dkim = self.dns.verify_dkim(&message).await;
        let dmarc = self
            .dns
            .verify_dmarc(
                mail_auth::dmarc::verify::DmarcParameters::new(&message, &dkim, facts.envelope.domain(), &spf)
                    .with_domain_suffix_fn(super::org_domain),
            )
            .await;

        let spf_aligned = spf.result() == SpfResult::Pass && aligned(facts.envelope.domain(), &from);
        let dkim_aligned =
            dkim.iter().any(|o| *o.result() == DkimResult::Pass && o.signature().is_some_and(|s| aligned(&s.d, &from)));
        let record = dmarc.dmarc_record().is_some();
        // A published record decides alignment (it may ask for strict); without one, relaxed.
        let pass = if record {
            *dmarc.spf_result() == DmarcResult::Pass || *dmarc.dkim_result() == DmarcResult::Pass
        } else {
            spf_aligned || dkim_aligned
        };
        let dkim_summary = match dkim.first().map(|o| o.result()) {
            None => "none".to_string(),
            Some(r) => dkim_word(r).to_string(),
        };
        let detail = format!(
            "spf={} dkim={} dmarc={}",
            spf_word(spf.result()),
            dkim_summary,
            if !record {
                "none"
            } else if pass {
                "pass"
            } else {
                "fail"
            }
        );
        if pass {
            return Verdict::Pass { method: "verify" };
        }
        let temp = spf.result() == SpfResult::TempError
            || dkim.iter().any(|o| matches!(o.result(), DkimResult::TempError(_)))
            || matches!(dmarc.dkim_result(), DmarcResult::TempError(_))
            || matches!(dmarc.spf_result(), DmarcResult::TempError(_));
        if temp {
            return Verdict::TempFail { detail };
        }
        let dmarc_reject = record && dmarc.policy() == Policy::Reject;
        let detail = if dmarc_reject { format!("{detail} (p=reject)") } else { detail };
        Verdict::Fail { detail, dmarc_reject }
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}
