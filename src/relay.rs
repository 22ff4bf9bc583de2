//! One message's end-of-message handling, from envelope and headers to a
//! verdict and a rewrite. No milter types here: the glue in `milter/` applies
//! the result, tests call it directly.

use crate::address::Address;
use crate::alias::{mint_message_id, random_local};
use crate::auth;
use crate::clock::Clock;
use crate::config::Config;
use crate::policy::optout::Exemption;
use crate::policy::{Refusal, Target, check_from_header, limits, optout};
use crate::rewrite::{RawHeader, Rewrite, apply_edits, header_block, headers, ids, notice};
use crate::store::archive::Archive;
use crate::store::{
    Buyer, DailyAllowance, Decision, NewMessage, Party, Recorded, Seller, Store, StoreError, TOKEN_LEN,
};
use std::sync::Arc;

/// The relay's dependencies: configuration snapshot, store, archive, clock.
#[derive(Clone)]
pub struct Relay {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub archive: Arc<Archive>,
    pub clock: Arc<dyn Clock>,
    pub ops: Arc<crate::metrics::ops::OpsMetrics>,
    /// Signs everything delivered, when configured.
    pub dkim: Option<Arc<crate::dkim::Dkim>>,
    /// Checks SPF/DKIM/DMARC when `auth.methods` has `verify`.
    pub verifier: Option<Arc<crate::auth::Verifier>>,
    /// The secret the `Authentication-Results` cleaner of this process marks messages with.
    pub authres_marker: Arc<str>,
}

/// An accepted message at end of message.
pub struct Incoming<'a> {
    pub target: &'a Target,
    /// Accepted envelope recipients exactly as received.
    pub rcpts: &'a [String],
    pub headers: &'a [RawHeader],
    /// The body: `raw` after `prelude_len` bytes of [`crate::content::prelude`].
    pub body: &'a [u8],
    pub raw: &'a [u8],
    pub prelude_len: usize,
    /// The sender authentication result (`None`: not required for this message).
    pub auth: Option<&'a crate::auth::Verdict>,
}

/// The SMTP client, as the MTA described it at connect and HELO.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<std::net::IpAddr>,
    pub helo: String,
}

/// What the relay decided at end of message.
#[derive(Debug)]
pub enum Verdict {
    /// Deliver with these changes; `summary` is the log line's decision text.
    Deliver {
        rewrite: Rewrite,
        summary: String,
    },
    Refuse {
        refusal: Refusal,
        summary: String,
    },
    /// Accept and drop silently (recorded).
    Discard {
        summary: String,
    },
}

/// What the policy decided about a conversation message, before recording it.
enum Outcome {
    Deliver(Option<Exemption>),
    Block,
    Discard,
    Refuse(Refusal),
}

impl Outcome {
    fn decision(&self) -> Decision {
        match self {
            Outcome::Deliver(_) => Decision::Delivered,
            Outcome::Block => Decision::Blocked,
            Outcome::Discard => Decision::Discarded,
            Outcome::Refuse(_) => Decision::Refused,
        }
    }
}

fn store_io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

impl Relay {
    fn alias(&self, local: &str) -> Address {
        Address::parse(&format!("{local}@{}", self.config.relay.domain))
            .expect("alias local parts are [a-z0-9] and the relay domain is validated")
    }

    fn parties(&self, seller: &str, buyer: Option<&str>) -> Result<Option<(Seller, Option<Buyer>)>, StoreError> {
        let Some(seller) = self.store.seller(seller)? else { return Ok(None) };
        let buyer = match buyer {
            Some(id) => match self.store.buyer(id)? {
                Some(b) => Some(b),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some((seller, buyer)))
    }

    /// Decides, records, archives and rewrites one accepted message. Every
    /// record it depends on is durable when it returns. Idempotent: a retry
    /// after a tempfail yields the same ids and is counted once.
    pub fn end_of_message(&self, msg: &Incoming<'_>) -> Result<Verdict, StoreError> {
        let parsed = headers::parse(msg.headers);
        match msg.target {
            Target::Outside => Ok(Verdict::Deliver {
                rewrite: Rewrite::default(),
                summary: "passed through (no relay recipient)".into(),
            }),
            Target::Bounce { to, seller, buyer } => self.bounce(*to, seller, buyer.as_deref(), &parsed, msg),
            Target::Command { .. } if !matches!(msg.auth, None | Some(auth::Verdict::Pass { .. })) => {
                Ok(auth_refusal(msg.auth))
            }
            Target::Command { mark, relay_id, seller } => {
                let record = self.store.mark(relay_id, *mark)?;
                let what = match mark {
                    crate::store::Mark::NoResponseNeeded => "no response needed",
                    crate::store::Mark::Reported => "reported",
                };
                Ok(Verdict::Discard {
                    summary: format!(
                        "seller {seller} marked buyer {}'s message {} as {what} (command accepted, not delivered)",
                        record.buyer, record.relay_id
                    ),
                })
            }
            Target::Conversation { from, seller, buyer } if parsed.is_report => {
                self.bounce(from.other(), seller, Some(buyer), &parsed, msg)
            }
            Target::Conversation { from, seller, buyer } => {
                let Some((seller, Some(buyer))) = self.parties(seller, Some(buyer))? else {
                    return Ok(refuse(Refusal::UnknownRecipient, "party removed"));
                };
                self.conversation(*from, &seller, &buyer, &parsed, msg)
            }
        }
    }

    /// Records a conversation message refused at end of message for its size or
    /// a line's length (DESIGN 2.5), without copies: nothing past the limit was
    /// kept. Other targets (reports, commands) are only logged.
    pub fn record_unkept(&self, target: &Target, headers: &[RawHeader], refusal: &Refusal) -> Result<(), StoreError> {
        let Target::Conversation { from, seller, buyer } = target else {
            return Ok(());
        };
        let parsed = headers::parse(headers);
        self.store.record_message(&NewMessage {
            seller,
            buyer,
            sender: *from,
            original_id: parsed.message_id.as_deref(),
            relay_domain: self.config.relay.domain.as_str(),
            at: self.clock.now(),
            decision: crate::store::Decision::Refused,
            order: None,
            subject: parsed.subject.as_deref(),
            allowance: None,
            archive: None,
            auto_submitted: parsed.auto_submitted,
            answers: &[],
            relay_id: None,
            token: None,
            removed: Default::default(),
            reason: Some(&format!("{} (not kept)", refusal.describe())),
            notice: false,
        })?;
        Ok(())
    }

    /// Authenticates the sender of a conversation message or a command by the
    /// configured methods (`None`: nothing is required of this message).
    pub async fn authenticate(
        &self,
        target: &Target,
        sender: &crate::policy::Sender,
        client: &ClientInfo,
        headers: &[RawHeader],
        body: &[u8],
    ) -> Option<auth::Verdict> {
        use crate::config::AuthMethod;
        let cfg = &self.config.auth;
        let as_seller = match target {
            Target::Conversation { from: Party::Seller, .. } | Target::Command { .. } => true,
            Target::Conversation { from: Party::Buyer, .. } => false,
            Target::Bounce { .. } | Target::Outside => return None,
        };
        // With SASL alone, RCPT has already refused sellers without their login.
        if !cfg.checks_messages() {
            return None;
        }
        let mut verdicts = Vec::new();
        if as_seller && cfg.has(AuthMethod::Sasl) {
            if sender.seller.as_ref().is_some_and(|s| sender.logged_in_as(s)) {
                return Some(auth::Verdict::Pass { method: "sasl" });
            }
            verdicts.push(auth::Verdict::Fail { detail: "no seller login".into(), dmarc_reject: false });
        }
        let envelope = sender.address.as_ref()?;
        let from = headers::parse(headers).from;
        let facts = auth::Facts { client_ip: client.ip, helo: &client.helo, envelope, from: &from, headers, body };
        if let Some(id) = cfg.authserv_id.as_deref().filter(|_| cfg.has(AuthMethod::TrustAuthres)) {
            verdicts.push(auth::from_authres(&facts, id, &self.authres_marker));
        }
        if cfg.has(AuthMethod::Verify) && !verdicts.iter().any(|v| matches!(v, auth::Verdict::Pass { .. })) {
            verdicts.push(match &self.verifier {
                Some(v) => v.check(&facts, self.config.relay.domain.as_str()).await,
                None => {
                    auth::Verdict::TempFail { detail: "verify was enabled by a reload: restart to start it".into() }
                }
            });
        }
        Some(auth::combine(verdicts))
    }

    /// Today's allowance of a seller (the limit is fixed for the UTC day).
    pub fn allowance(&self, seller: &str) -> Result<DailyAllowance, StoreError> {
        let p = &self.config.policy;
        let today = limits::day_of(self.clock.now());
        let (from, to) = limits::window(today, p.daily_limit_window_days);
        let orders = self.store.orders_in_days(seller, from, to)?;
        let limit = limits::daily_limit(p.daily_limit_base, p.daily_limit_per_order, p.daily_limit_window_days, orders);
        Ok(DailyAllowance { day: today, limit })
    }

    /// The early check at RCPT; end of message counts exactly.
    pub fn check_daily_limit(&self, seller: &str) -> Result<Result<(), Refusal>, StoreError> {
        let allowance = self.allowance(seller)?;
        let sent = self.store.sent_on_day(seller, allowance.day)?;
        Ok(limits::check(sent, allowance.limit, self.clock.now()))
    }

    fn conversation(
        &self,
        from: Party,
        seller: &Seller,
        buyer: &Buyer,
        parsed: &headers::Parsed,
        msg: &Incoming<'_>,
    ) -> Result<Verdict, StoreError> {
        let domain = self.config.relay.domain.as_str();
        let policy = &self.config.policy;
        let now = self.clock.now();
        let refs = self.store.references(&seller.id, &buyer.id, from, &parsed.referenced())?;
        let orders = self.store.orders_of_pair(&seller.id, &buyer.id)?;
        let order = optout::order_concerned(parsed.subject.as_deref(), &orders, &policy.order_id_pattern.0);
        let outcome = match (msg.auth, from) {
            // Not recorded: the sender's MTA retries.
            (Some(auth::Verdict::TempFail { .. }), _) => return Ok(auth_refusal(msg.auth)),
            (Some(auth::Verdict::Fail { detail, dmarc_reject }), _) => {
                Outcome::Refuse(Refusal::SenderAuth { detail: detail.clone(), dmarc_reject: *dmarc_reject })
            }
            (_, Party::Buyer) => Outcome::Deliver(None),
            (_, Party::Seller) => match check_from_header(msg.target, seller, &parsed.from) {
                Err(refusal) => Outcome::Refuse(refusal),
                Ok(()) if !buyer.opted_out => Outcome::Deliver(None),
                Ok(()) => {
                    let facts = optout::Facts {
                        subject: parsed.subject.as_deref(),
                        in_buyer_thread: optout::in_buyer_thread(&refs, &seller.id, &buyer.id),
                        category: order.and_then(|o| o.category.as_deref()),
                    };
                    match optout::decide(&facts, &policy.critical_markers, &policy.opt_out_exempt_categories) {
                        Some(exemption) => Outcome::Deliver(Some(exemption)),
                        None if seller.opt_out_notices => Outcome::Block,
                        None => Outcome::Discard,
                    }
                }
            },
        };
        // The ids the rewrite uses; a retry reuses what was recorded. A buyer
        // message's token goes into its footer, so it is chosen first.
        let previous = match parsed.message_id.as_deref() {
            Some(id) => self.store.recorded(&seller.id, &buyer.id, from, id)?,
            None => None,
        };
        let relay_id = previous.as_ref().map_or_else(|| mint_message_id(domain), |p| p.relay_id.clone());
        let token = match (from, &outcome) {
            (Party::Buyer, Outcome::Deliver(_)) => {
                Some(previous.as_ref().and_then(|p| p.token.clone()).unwrap_or_else(|| random_local(TOKEN_LEN)))
            }
            _ => None,
        };
        // The content policy of this direction, on what would be delivered;
        // buyer messages get the command footer, seller replies lose quoted ones.
        let mut content = crate::content::Outcome::Unchanged;
        let outcome = match outcome {
            Outcome::Deliver(exemption) => {
                let extras = crate::content::Extras {
                    footer: token.as_ref().map(|t| crate::content::Footer {
                        token: t.clone(),
                        relay_domain: domain.to_string(),
                        relay_name: self.config.relay.notice_name.clone(),
                    }),
                    strip_footer: from == Party::Seller,
                };
                let policy = self.config.content.policy(from);
                match crate::content::apply_in(msg.raw, msg.prelude_len, &policy, domain, &extras) {
                    crate::content::Outcome::Refuse { code, xcode, text } => {
                        Outcome::Refuse(Refusal::Content { code, xcode, text })
                    }
                    other => {
                        content = other;
                        Outcome::Deliver(exemption)
                    }
                }
            }
            other => other,
        };
        let removed = match &content {
            crate::content::Outcome::Rewritten { removed, .. } => removed.clone(),
            _ => crate::store::Removed::default(),
        };
        // The buyer messages this seller message answers.
        let answers: Vec<String> = refs
            .iter()
            .filter_map(|r| r.by_relay_id.as_ref())
            .filter(|l| l.sender == Party::Buyer && l.seller == seller.id && l.buyer == buyer.id)
            .map(|l| l.relay_id.clone())
            .collect();
        let allowance = match from {
            Party::Seller => Some(self.allowance(&seller.id)?),
            Party::Buyer => None,
        };
        let pair_alias_local = self.store.pair_alias(&seller.id, &buyer.id)?;
        let who = direction(from, seller, buyer, &pair_alias_local);
        // What would be delivered, built before anything is recorded: the
        // archive and the record become durable together, before the answer.
        let rewrite = match &outcome {
            Outcome::Deliver(_) => {
                let pair_alias = self.alias(&pair_alias_local);
                let seller_alias = self.alias(&seller.alias);
                let recipient = from.other();
                let translate = |list: &[String]| ids::translate(list, &refs, recipient, &seller.id, &buyer.id);
                let (in_reply_to, references) = (translate(&parsed.in_reply_to), translate(&parsed.references));
                let (from_name, from_alias, rcpt_alias, rcpt_name, rcpt_real) = match from {
                    Party::Buyer => (
                        buyer.name.as_deref(),
                        &pair_alias,
                        &seller_alias,
                        Some(seller.name.as_str()),
                        &seller.service_address,
                    ),
                    Party::Seller => {
                        (Some(seller.name.as_str()), &seller_alias, &pair_alias, buyer.name.as_deref(), &buyer.email)
                    }
                };
                let mut edits = headers::rewrite(
                    msg.headers,
                    &headers::Outgoing {
                        from_name,
                        from_alias,
                        recipient_alias: rcpt_alias,
                        recipient_name: rcpt_name,
                        recipient: rcpt_real,
                        message_id: &relay_id,
                        in_reply_to: &in_reply_to,
                        references: &references,
                        relay_domain: domain,
                    },
                );
                let mut body = None;
                if let crate::content::Outcome::Rewritten {
                    body: new,
                    content_type,
                    content_transfer_encoding,
                    content_disposition,
                    ..
                } = content
                {
                    edits.extend(body_headers(
                        msg.headers,
                        &content_type,
                        content_transfer_encoding.as_deref(),
                        content_disposition.as_deref(),
                    ));
                    edits = crate::rewrite::order_edits(edits);
                    body = Some(new);
                }
                Some(Rewrite {
                    headers: edits,
                    sender: Some(from_alias.bracketed()),
                    delete_rcpts: msg.rcpts.to_vec(),
                    add_rcpts: vec![rcpt_real.bracketed()],
                    body,
                })
            }
            _ => None,
        };
        let mut rewrite = rewrite;
        let archived = self.archive_copies(now, msg, rewrite.as_mut())?;
        let recorded = self.store.record_message(&NewMessage {
            seller: &seller.id,
            buyer: &buyer.id,
            sender: from,
            original_id: parsed.message_id.as_deref(),
            relay_domain: domain,
            at: now,
            decision: outcome.decision(),
            order: order.map(|o| o.id.as_str()),
            subject: parsed.subject.as_deref(),
            allowance,
            archive: Some(archived),
            auto_submitted: parsed.auto_submitted,
            answers: &answers,
            relay_id: Some(&relay_id),
            token: token.as_deref(),
            removed: removed.clone(),
            reason: match &outcome {
                Outcome::Refuse(r) => Some(r.describe()),
                _ => None,
            }
            .as_deref(),
            notice: false,
        })?;
        if let Recorded::OverLimit { .. } = recorded {
            // Not counted, not recorded; the archived copy is purged with its day.
            let limit = allowance.map_or(0, |a| a.limit);
            let refusal = Refusal::DailyLimit { limit, resets_in: limits::seconds_until_reset(now) };
            return Ok(refuse(refusal, &who));
        }
        let (exemption, rewrite) = match (outcome, rewrite) {
            (Outcome::Deliver(exemption), Some(rewrite)) => (exemption, rewrite),
            (Outcome::Block, _) => {
                let marker = policy.critical_markers.first().cloned().unwrap_or_default();
                return Ok(refuse(Refusal::OptedOut { marker }, &who));
            }
            (Outcome::Discard, _) => {
                return Ok(Verdict::Discard {
                    summary: format!("{who}: discarded (buyer opted out, seller's notices off)"),
                });
            }
            (Outcome::Refuse(refusal), _) => return Ok(refuse(refusal, &who)),
            (Outcome::Deliver(_), None) => unreachable!("a delivered message has a rewrite"),
        };
        let mut notes: Vec<String> = exemption.iter().map(|e| e.reason().to_string()).collect();
        if let Some(auth::Verdict::Pass { method }) = msg.auth {
            notes.push(format!("sender authenticated by {method}"));
        }
        if parsed.auto_submitted {
            notes.push("auto-submitted".into());
        }
        if !removed.is_empty() {
            notes.push(format!("removed {}", removed.summary()));
        }
        let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
        Ok(Verdict::Deliver { rewrite, summary: format!("{who}: delivered{notes}") })
    }

    /// Appends the message as received and, with a rewrite (signed here), as
    /// delivered; each copy is the header block and the body, which is not copied.
    /// Durable with the record: the archive is flushed by record_message, or (a
    /// store with deferred sync, the daemon's) awaited by the milter before it answers.
    fn archive_copies(
        &self,
        now: u64,
        msg: &Incoming<'_>,
        rewrite: Option<&mut Rewrite>,
    ) -> Result<crate::store::archive::ArchiveRef, StoreError> {
        let original_head = header_block(msg.headers);
        let delivered = match rewrite {
            Some(rw) => Some((header_block(&self.sign(rw, msg)?), rw)),
            None => None,
        };
        let delivered: Option<Vec<&[u8]>> = delivered
            .as_ref()
            .map(|(head, rw)| std::iter::once(head.as_slice()).chain(rw.body_slices(msg.body)).collect());
        self.archive
            .append_copies(now, &[&original_head, msg.body], delivered.as_deref())
            .map_err(|e| store_io("archive", e))
    }

    /// Adds the DKIM signature (if configured) to a rewrite; returns the
    /// headers as delivered.
    fn sign(&self, rw: &mut Rewrite, msg: &Incoming<'_>) -> Result<Vec<RawHeader>, StoreError> {
        let mut delivered = apply_edits(msg.headers, &rw.headers);
        if let Some(dkim) = &self.dkim {
            let signature =
                dkim.sign(&delivered, rw.body_slices(msg.body).collect::<Vec<_>>()).map_err(StoreError::Backend)?;
            rw.headers
                .push(crate::rewrite::HeaderEdit::Add { name: signature.name.clone(), value: signature.value.clone() });
            delivered.push(signature);
        }
        Ok(delivered)
    }

    fn bounce(
        &self,
        to: Party,
        seller: &str,
        buyer: Option<&str>,
        parsed: &headers::Parsed,
        msg: &Incoming<'_>,
    ) -> Result<Verdict, StoreError> {
        let Some((seller, buyer)) = self.parties(seller, buyer)? else {
            return Ok(refuse(Refusal::UnknownRecipient, "bounce to removed party"));
        };
        // A report to the seller alias names no buyer; the message it reports on does.
        let buyer = match buyer {
            Some(b) => Some(b),
            None => match self.reported_buyer(&seller.id, parsed, msg)? {
                Some(id) => self.store.buyer(&id)?,
                None => None,
            },
        };
        let (recipient, name) = match (to, &buyer) {
            (Party::Buyer, Some(b)) => (&b.email, b.name.as_deref()),
            _ => (&seller.service_address, Some(seller.name.as_str())),
        };
        let domain = self.config.relay.domain.as_str();
        let now = self.clock.now();
        // The side the report came back from; a retry reuses the notice's id.
        let from = to.other();
        let buyer_id = buyer.as_ref().map_or("", |b| b.id.as_str());
        let previous = match parsed.message_id.as_deref() {
            Some(id) => self.store.recorded(&seller.id, buyer_id, from, id)?,
            None => None,
        };
        let message_id = previous.map_or_else(|| crate::alias::mint_message_id(domain), |p| p.relay_id);
        let kind = notice::Kind::of(msg.headers, parsed.is_report, &parsed.from);
        let built = notice::build(&notice::Notice {
            to,
            kind,
            recipient,
            recipient_name: name,
            relay_name: &self.config.relay.notice_name,
            relay_domain: domain,
            message_id: &message_id,
            date: now,
        });
        let mut rewrite = notice::replace_message(msg.headers, &built);
        rewrite.delete_rcpts = msg.rcpts.to_vec();
        rewrite.add_rcpts = vec![recipient.bracketed()];
        // Archived and recorded like a conversation message: the report as it came, the
        // notice as delivered. Automatic, so it awaits no answer and answers nothing.
        let archived = self.archive_copies(now, msg, Some(&mut rewrite))?;
        self.store.record_message(&NewMessage {
            seller: &seller.id,
            buyer: buyer_id,
            sender: from,
            original_id: parsed.message_id.as_deref(),
            relay_domain: domain,
            at: now,
            decision: crate::store::Decision::Delivered,
            order: None,
            subject: parsed.subject.as_deref(),
            allowance: None,
            archive: Some(archived),
            auto_submitted: true,
            answers: &[],
            relay_id: Some(&message_id),
            token: None,
            removed: Default::default(),
            reason: None,
            notice: true,
        })?;
        let whom = match to {
            Party::Seller => format!("seller {}", seller.id),
            Party::Buyer => format!("buyer {}", buyer.map_or_else(String::new, |b| b.id)),
        };
        let what = match kind {
            notice::Kind::Returned => "delivery report",
            notice::Kind::Automatic => "automatic message (null sender, not a report)",
        };
        Ok(Verdict::Deliver { rewrite, summary: format!("{what} replaced by a notice to {whom}") })
    }
}

impl Relay {
    /// The buyer of the seller message a report is about: the report quotes the
    /// message (`message/rfc822`) or its headers (`text/rfc822-headers`), whose
    /// Message-ID is the one the relay gave it, or names it in `In-Reply-To`.
    fn reported_buyer(
        &self,
        seller: &str,
        parsed: &headers::Parsed,
        msg: &Incoming<'_>,
    ) -> Result<Option<String>, StoreError> {
        use mail_parser::{MessageParser, MimeHeaders, PartType};
        let mut ids = parsed.referenced();
        if let Some(report) = MessageParser::new().parse(msg.raw) {
            for part in &report.parts {
                let quoted = match &part.body {
                    PartType::Message(inner) => inner.message_id().map(String::from),
                    PartType::Text(t)
                        if part
                            .content_type()
                            .is_some_and(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))) =>
                    {
                        MessageParser::new().parse(t.as_bytes()).and_then(|h| h.message_id().map(String::from))
                    }
                    _ => None,
                };
                ids.extend(quoted);
            }
        }
        for id in ids {
            if let Some(r) = self.store.message(&id)?
                && r.seller == seller
                && r.sender == Party::Seller
                && !r.buyer.is_empty()
            {
                return Ok(Some(r.buyer));
            }
        }
        Ok(None)
    }
}

/// The top-level header edits that describe a rebuilt body: `Content-Type`,
/// `Content-Transfer-Encoding` and `Content-Disposition` replaced (or added,
/// or deleted) by the rebuilt part's, and `MIME-Version` added if missing.
fn body_headers(
    headers: &[RawHeader],
    content_type: &str,
    cte: Option<&str>,
    disposition: Option<&str>,
) -> Vec<crate::rewrite::HeaderEdit> {
    use crate::rewrite::HeaderEdit;
    let count = |name: &str| headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count() as i32;
    let mut edits = Vec::new();
    let mut set = |name: &str, value: Option<&str>| {
        let n = count(name);
        match value {
            Some(v) if n > 0 => {
                edits.push(HeaderEdit::Change { name: name.into(), index: 1, value: v.into() });
                edits.extend((2..=n).map(|i| HeaderEdit::Delete { name: name.into(), index: i }));
            }
            Some(v) => edits.push(HeaderEdit::Add { name: name.into(), value: v.into() }),
            None => edits.extend((1..=n).map(|i| HeaderEdit::Delete { name: name.into(), index: i })),
        }
    };
    set("Content-Type", Some(content_type));
    set("Content-Transfer-Encoding", cte);
    // The rebuilt part's own: a message that was one attachment and became a
    // multipart (a footer or a note was added) no longer describes itself as
    // the attachment, and the original's file name was the sender's text.
    set("Content-Disposition", disposition);
    if count("MIME-Version") == 0 {
        edits.push(HeaderEdit::Add { name: "MIME-Version".into(), value: "1.0".into() });
    }
    edits
}

fn direction(from: Party, seller: &Seller, buyer: &Buyer, pair_alias: &str) -> String {
    match from {
        Party::Buyer => format!("buyer {} -> seller {} (alias {pair_alias})", buyer.id, seller.id),
        Party::Seller => format!("seller {} -> buyer {} (alias {pair_alias})", seller.id, buyer.id),
    }
}

fn refuse(refusal: Refusal, who: &str) -> Verdict {
    Verdict::Refuse { summary: format!("{who}: refused ({})", refusal.describe()), refusal }
}

/// The refusal for a failed sender authentication (not recorded: commands
/// and retries).
fn auth_refusal(verdict: Option<&auth::Verdict>) -> Verdict {
    match verdict {
        Some(auth::Verdict::TempFail { detail }) => Verdict::Refuse {
            summary: format!("refused for now (sender authentication unavailable: {detail})"),
            refusal: Refusal::SenderAuthUnavailable,
        },
        Some(auth::Verdict::Fail { detail, dmarc_reject }) => {
            refuse(Refusal::SenderAuth { detail: detail.clone(), dmarc_reject: *dmarc_reject }, "sender")
        }
        _ => unreachable!("only failed authentication is refused here"),
    }
}
