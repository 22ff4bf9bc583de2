//! Every refusal the relay gives, with its exact SMTP reply.

/// Why a recipient or message is refused. The reply text is the only thing a
/// refused sender learns, so unknown aliases and strangers get one reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown alias, or a known alias from an unregistered sender.
    UnknownRecipient,
    /// A recognisable seller writing from an address not approved for this buyer's seller.
    UnapprovedSellerAddress,
    /// A seller writing to a seller alias.
    SellerToSeller,
    /// A seller writing to another seller's buyer alias.
    OtherSellersBuyer,
    /// The `From:` header of a seller's message is not an approved address.
    FromNotApproved,
    /// A second counterpart (or a mix of relay and outside recipients) in one message.
    OneCounterpart,
    /// The buyer opted out and the message is not critical; `marker` is the
    /// critical marker the notice tells the seller to use.
    OptedOut { marker: String },
    /// The seller's daily limit is reached; it resets in `resets_in` seconds.
    DailyLimit { limit: u64, resets_in: u64 },
    /// More header fields or header bytes than `limits` allow.
    HeaderTooLarge,
    /// A message larger than `limits.max_message_bytes`.
    MessageTooBig,
    /// A body line longer than `limits.max_line_bytes`.
    LineTooLong { limit: usize },
    /// A seller's message without the SMTP AUTH login the relay requires.
    NotAuthenticated,
    /// The message failed sender authentication (`auth.methods`); `detail`
    /// names the results (`spf=fail dkim=none dmarc=fail`), never an address.
    SenderAuth { detail: String, dmarc_reject: bool },
    /// Sender authentication could not finish (DNS trouble): retry later.
    SenderAuthUnavailable,
    /// The content policy cannot check the message safely (see `content`).
    Content { code: &'static str, xcode: &'static str, text: String },
}

pub struct SmtpReply {
    pub code: &'static str,
    pub xcode: &'static str,
    pub lines: Vec<String>,
}

fn lines(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

impl Refusal {
    pub fn reply(&self) -> SmtpReply {
        let (code, xcode, lines) = match self {
            Refusal::UnknownRecipient => ("550", "5.1.1", lines(&["Recipient address rejected: unknown recipient"])),
            Refusal::UnapprovedSellerAddress => (
                "550",
                "5.7.1",
                lines(&[
                    "This sending address is not approved for your seller account.",
                    "Add it to your approved sending addresses and have it approved",
                    "before writing to buyers from it.",
                ]),
            ),
            Refusal::SellerToSeller => ("550", "5.7.1", lines(&["Sellers may not write to other sellers."])),
            Refusal::OtherSellersBuyer => {
                ("550", "5.7.1", lines(&["This buyer alias belongs to another seller; write only to your own buyers."]))
            }
            Refusal::FromNotApproved => (
                "550",
                "5.7.1",
                lines(&[
                    "The From: address of this message is not approved for your seller account.",
                    "Send from an approved address, or add and approve this one first.",
                ]),
            ),
            Refusal::OneCounterpart => {
                ("452", "4.5.3", lines(&["One conversation per message: send to this recipient in a separate message"]))
            }
            Refusal::OptedOut { marker } => (
                "550",
                "5.7.1",
                vec![
                    "Not delivered: this buyer has opted out of unsolicited messages.".into(),
                    "Messages critical to completing an order still reach the buyer:".into(),
                    format!("- put {marker} in the subject, only for questions about product"),
                    "  customization, delivery scheduling or shipping-address problems;".into(),
                    "- or reply in a thread the buyer started, quoting the buyer's message.".into(),
                    "You can turn these notices off in your seller settings (opt-out notices).".into(),
                ],
            ),
            Refusal::DailyLimit { limit, resets_in } => (
                "450",
                "4.7.1",
                vec![format!(
                    "Daily limit of {limit} messages to buyers reached for your seller account; it resets at 00:00 UTC (in {}h {:02}m). Your mail server will retry.",
                    resets_in / 3600,
                    resets_in % 3600 / 60
                )],
            ),
            Refusal::HeaderTooLarge => {
                ("552", "5.3.4", lines(&["Message header too large: too many or too long header fields"]))
            }
            Refusal::MessageTooBig => ("552", "5.3.4", lines(&["Message too big for the relay"])),
            Refusal::LineTooLong { limit } => {
                ("554", "5.6.0", vec![format!("Message has a line longer than {limit} bytes: wrap or encode it")])
            }
            Refusal::Content { code, xcode, text } => (*code, *xcode, vec![text.clone()]),
            Refusal::SenderAuth { detail, dmarc_reject: true } => (
                "550",
                "5.7.26",
                vec![
                    format!("Unauthenticated mail ({detail}): the sender's domain publishes a DMARC"),
                    "reject policy and this message passed neither SPF nor DKIM aligned with its From: domain.".into(),
                ],
            ),
            Refusal::SenderAuth { detail, dmarc_reject: false } => (
                "550",
                "5.7.1",
                vec![
                    format!("Sender authentication failed ({detail})."),
                    "Send through your domain's authorised servers, with DKIM for your From: domain.".into(),
                ],
            ),
            Refusal::SenderAuthUnavailable => {
                ("451", "4.7.1", lines(&["Sender authentication temporarily unavailable (DNS), try again later"]))
            }
            Refusal::NotAuthenticated => (
                "550",
                "5.7.1",
                lines(&[
                    "Seller mail must be submitted with SMTP authentication:",
                    "send through the relay's submission port with your seller login.",
                ]),
            ),
        };
        SmtpReply { code, xcode, lines }
    }

    /// The reason with its detail, for log lines and records (never an address).
    pub fn describe(&self) -> String {
        match self {
            Refusal::SenderAuth { detail, .. } => format!("{}: {detail}", self.reason()),
            _ => self.reason().to_string(),
        }
    }

    /// A short name for log lines.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownRecipient => "unknown recipient",
            Refusal::UnapprovedSellerAddress => "unapproved seller address",
            Refusal::SellerToSeller => "seller to seller",
            Refusal::OtherSellersBuyer => "another seller's buyer",
            Refusal::FromNotApproved => "From header not approved",
            Refusal::OneCounterpart => "second counterpart",
            Refusal::OptedOut { .. } => "buyer opted out",
            Refusal::DailyLimit { .. } => "daily limit reached",
            Refusal::HeaderTooLarge => "header too large",
            Refusal::MessageTooBig => "message too big",
            Refusal::LineTooLong { .. } => "line too long",
            Refusal::Content { .. } => "content cannot be checked",
            Refusal::NotAuthenticated => "seller not authenticated",
            Refusal::SenderAuth { .. } => "sender authentication failed",
            Refusal::SenderAuthUnavailable => "sender authentication unavailable",
        }
    }
}
