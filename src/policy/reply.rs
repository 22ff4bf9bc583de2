//! Every refusal the relay gives, with its exact SMTP reply.

/// Why a recipient or message is refused. The reply text is the only thing a
/// refused sender learns, so unknown aliases and strangers get one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

pub struct SmtpReply {
    pub code: &'static str,
    pub xcode: &'static str,
    pub lines: &'static [&'static str],
}

impl Refusal {
    pub fn reply(self) -> SmtpReply {
        let (code, xcode, lines): (_, _, &'static [&'static str]) = match self {
            Refusal::UnknownRecipient => (
                "550",
                "5.1.1",
                &["Recipient address rejected: unknown recipient"],
            ),
            Refusal::UnapprovedSellerAddress => (
                "550",
                "5.7.1",
                &[
                    "This sending address is not approved for your seller account.",
                    "Add it to your approved sending addresses and have it approved",
                    "before writing to buyers from it.",
                ],
            ),
            Refusal::SellerToSeller => {
                ("550", "5.7.1", &["Sellers may not write to other sellers."])
            }
            Refusal::OtherSellersBuyer => (
                "550",
                "5.7.1",
                &["This buyer alias belongs to another seller; write only to your own buyers."],
            ),
            Refusal::FromNotApproved => (
                "550",
                "5.7.1",
                &[
                    "The From: address of this message is not approved for your seller account.",
                    "Send from an approved address, or add and approve this one first.",
                ],
            ),
            Refusal::OneCounterpart => (
                "452",
                "4.5.3",
                &["One conversation per message: send to this recipient in a separate message"],
            ),
        };
        SmtpReply { code, xcode, lines }
    }

    /// A short name for log lines.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::UnknownRecipient => "unknown recipient",
            Refusal::UnapprovedSellerAddress => "unapproved seller address",
            Refusal::SellerToSeller => "seller to seller",
            Refusal::OtherSellersBuyer => "another seller's buyer",
            Refusal::FromNotApproved => "From header not approved",
            Refusal::OneCounterpart => "second counterpart",
        }
    }
}
