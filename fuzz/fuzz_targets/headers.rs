//! Untrusted header text: address parsing (envelope and header), the header
//! reader and rewriter (RFC 2047, groups, comments), id lists, and the text
//! scanners of the content policy.
//!
//! Invariants besides "no panic": rewritten headers are allowlisted and carry
//! no address but relay aliases and the recipient's own; redacted text holds
//! no address that the address scanner would still remove; parsed addresses are
//! canonical (parsing one again yields itself).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bsm_milter_fuzz::targets::headers(data));
