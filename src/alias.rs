//! Unguessable local parts for aliases and relay-minted Message-IDs.

use rand::{Rng, distr::Alphanumeric};

/// Alias local parts: 15 characters of `[a-z0-9]` (≈77 bits), as in seed 001.
pub const ALIAS_LEN: usize = 15;

/// Draws `len` characters of `[a-z0-9]` from the thread's CSPRNG (ChaCha, OS-seeded).
pub fn random_local(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// A relay Message-ID (without angle brackets) on the relay domain.
pub fn mint_message_id(domain: &str) -> String {
    let token: String = rand::rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
    format!("bsm.{token}@{domain}")
}

/// Whether `local` has the shape of an alias the relay could have minted.
pub fn is_alias_shape(local: &str) -> bool {
    local.len() == ALIAS_LEN && local.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn aliases_have_the_seed_format_and_do_not_repeat() {
        let drawn: HashSet<String> = (0..10_000).map(|_| random_local(ALIAS_LEN)).collect();
        assert_eq!(drawn.len(), 10_000);
        assert!(drawn.iter().all(|a| is_alias_shape(a)));
        // Seed 001's example alias has this shape (the seed's "35 characters"
        // does not match its own 38-character example; the local part is 15).
        assert!(is_alias_shape("t969vz2jn3bdsy7"));
    }

    #[test]
    fn minted_ids_are_on_the_relay_domain() {
        let id = mint_message_id("m.example.com");
        assert!(id.ends_with("@m.example.com") && id.len() > 30);
        assert_ne!(id, mint_message_id("m.example.com"));
    }
}
