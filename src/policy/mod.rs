//! Pure decisions: who a message is from and to, and whether the relay takes it.

pub mod limits;
pub mod optout;
pub mod reply;
pub mod routing;

pub use reply::Refusal;
pub use routing::{Recipient, Sender, Target, admit, check_from_header, decide_rcpt};
