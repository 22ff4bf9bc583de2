//! Raw message bytes → the milter's header fields and body → end of message
//! in both directions, against a real redb store → the delivered message,
//! judged as its recipient would see it.
//!
//! Property (DESIGN §2.3, §3; README "Content policy"):
//! - no panic;
//! - only allowlisted headers reach the recipient, and none of them, raw or
//!   decoded, holds a mail address other than a relay alias (and, in `To`/`Cc`,
//!   the recipient's own address);
//! - seller → buyer, in every decoded text and HTML part, file name and
//!   attached message header: no address other than a relay alias and no
//!   `http(s)` URL off the link allowlist. Buyer → seller keeps the buyer's
//!   contact details and links (tracking removal only), so its body is not
//!   judged here.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bsm_milter_fuzz::targets::pipeline(data));
