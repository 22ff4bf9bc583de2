//! State by scope: a connection holds a config snapshot; a message (MAIL to
//! end of message) holds the sender, the accepted recipients and the headers.

use crate::address::{Address, parse_envelope};
use crate::config::LimitsConfig;
use crate::policy::{Recipient, Refusal, Sender, Target, admit, decide_rcpt};
use crate::relay::Relay;
use crate::rewrite::RawHeader;
use crate::store::{Party, StoreError};
use indymilter::{ProtoOpts, Status};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Counts messages between MAIL and end of message, so shutdown can wait for them.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Resolves once no message is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub struct Connection {
    pub relay: Relay,
    pub in_flight: Arc<InFlight>,
    pub message: Option<Message>,
    /// The no-reply stages the MTA granted at negotiation.
    pub noreply: ProtoOpts,
    pub client: crate::relay::ClientInfo,
}

pub struct Message {
    pub sender: Sender,
    /// The sender was not a parsable address (nor `<>`): a stranger.
    pub sender_unparsable: bool,
    /// Accepted recipients exactly as received (`<a@b>`).
    pub rcpts: Vec<String>,
    pub target: Option<Target>,
    pub headers: Vec<RawHeader>,
    /// [`crate::content::prelude`] of the headers, then the body as it
    /// arrives: the content policy parses this buffer without copying it.
    pub raw: Vec<u8>,
    /// Where the body starts in `raw`; `None` until the prelude is written.
    pub prelude_len: Option<usize>,
    /// The size the client announced (`MAIL FROM … SIZE=`), to allocate once.
    pub announced_size: Option<usize>,
    header_bytes: usize,
    /// Length of the body line in progress (it may span chunks).
    line: usize,
    /// Set once a limit is exceeded: nothing more is kept, end of message refuses.
    pub too_big: Option<Refusal>,
    _guard: InFlightGuard,
}

impl Connection {
    /// The status for a stage: `Noreply` where the MTA expects no answer.
    pub fn status_after(&self, stage: ProtoOpts) -> Status {
        if self.noreply.contains(stage) { Status::Noreply } else { Status::Continue }
    }

    pub fn begin(&mut self, mail_from: &str, login: Option<String>) -> Result<(), StoreError> {
        let guard = self.in_flight.enter();
        let (sender, sender_unparsable) = match parse_envelope(mail_from) {
            Ok(addr) => (Sender::resolve(self.relay.store.as_ref(), addr, login)?, false),
            Err(_) => (Sender::default(), true),
        };
        self.message = Some(Message {
            sender,
            sender_unparsable,
            rcpts: Vec::new(),
            target: None,
            headers: Vec::new(),
            raw: Vec::new(),
            prelude_len: None,
            announced_size: None,
            header_bytes: 0,
            line: 0,
            too_big: None,
            _guard: guard,
        });
        Ok(())
    }

    /// Decides one recipient; an accepted one is remembered.
    pub fn rcpt(&mut self, rcpt: &str) -> Result<Result<Target, Refusal>, StoreError> {
        let domain = self.relay.config.relay.domain.as_str();
        let msg = self.message.as_mut().expect("RCPT follows MAIL");
        let recipient = match Address::parse(rcpt) {
            Ok(addr) => Recipient::resolve(self.relay.store.as_ref(), domain, &addr)?,
            // Postfix has already checked the syntax; anything odd is not an alias.
            Err(_) => Recipient::Outside,
        };
        let decision = if msg.sender_unparsable && !matches!(recipient, Recipient::Outside) {
            Err(Refusal::UnknownRecipient)
        } else {
            decide_rcpt(&msg.sender, &recipient, self.relay.config.auth.requires_sasl())
        };
        let target = match decision.and_then(|t| admit(msg.target.as_ref(), &t).map(|()| t)) {
            Ok(t) => t,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if msg.target.is_none()
            && let Target::Conversation { from: Party::Seller, seller, .. } = &target
            && let Err(refusal) = self.relay.check_daily_limit(seller)?
        {
            return Ok(Err(refusal));
        }
        msg.target = Some(target.clone());
        msg.rcpts.push(rcpt.to_string());
        Ok(Ok(target))
    }
}

impl Message {
    /// Keeps a header unless a limit is reached (memory stays bounded).
    /// Mail with no relay recipient is not kept: it passes untouched.
    fn passes_through(&self) -> bool {
        matches!(self.target, None | Some(Target::Outside))
    }

    pub fn header(&mut self, limits: &LimitsConfig, name: String, value: String) {
        if self.passes_through() {
            return;
        }
        self.header_bytes += name.len() + value.len() + 4;
        if self.too_big.is_some() {
            return;
        }
        if self.headers.len() >= limits.max_headers || self.header_bytes > limits.max_header_bytes {
            self.too_big = Some(Refusal::HeaderTooLarge);
            self.headers = Vec::new();
            return;
        }
        self.headers.push(RawHeader { name, value });
    }

    pub fn body_chunk(&mut self, limits: &LimitsConfig, chunk: &[u8]) {
        if self.too_big.is_some() || self.passes_through() {
            return;
        }
        let start = self.start_body(limits);
        if self.header_bytes + (self.raw.len() - start) + chunk.len() > limits.max_message_bytes {
            self.too_big = Some(Refusal::MessageTooBig);
            self.raw = Vec::new();
            return;
        }
        if self.longest_line(chunk) > limits.max_line_bytes {
            self.too_big = Some(Refusal::LineTooLong { limit: limits.max_line_bytes });
            self.raw = Vec::new();
            return;
        }
        self.raw.extend_from_slice(chunk);
    }

    /// The longest line ending in (or running through) `chunk`, CR excluded.
    fn longest_line(&mut self, chunk: &[u8]) -> usize {
        let mut longest = 0;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let len = self.line + nl - start;
            longest = longest.max(len.saturating_sub(usize::from(nl > 0 && chunk[nl - 1] == b'\r')));
            self.line = 0;
            start = nl + 1;
        }
        self.line += chunk.len() - start;
        longest.max(self.line)
    }

    /// Writes the prelude once the headers are complete; returns where the body starts.
    pub fn start_body(&mut self, limits: &LimitsConfig) -> usize {
        if let Some(start) = self.prelude_len {
            return start;
        }
        let pairs: Vec<(&str, &str)> = self.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        let prelude = crate::content::prelude(&pairs);
        let expected = self.announced_size.filter(|&s| s <= limits.max_message_bytes).unwrap_or(0);
        self.raw = Vec::with_capacity(prelude.len() + expected);
        self.raw.extend_from_slice(&prelude);
        self.prelude_len = Some(prelude.len());
        prelude.len()
    }

    /// The body received so far.
    pub fn body(&self) -> &[u8] {
        self.prelude_len.map_or(&[], |start| &self.raw[start..])
    }
}
