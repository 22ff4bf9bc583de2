//! A seller's daily sending limit (seeds 001, 004): per UTC day,
//! `base + per_order × average daily orders` over the window.

use super::Refusal;

pub const DAY: u64 = 86_400;

pub fn day_of(unix: u64) -> u64 {
    unix / DAY
}

/// The days averaged for `today`'s limit: the `window_days` full days before
/// today, so a seller's limit is fixed for the whole day.
pub fn window(today: u64, window_days: u32) -> (u64, u64) {
    (today.saturating_sub(u64::from(window_days)), today.saturating_sub(1))
}

/// `base + per_order × orders / window_days`, rounded down.
pub fn daily_limit(base: u64, per_order: u64, window_days: u32, orders_in_window: u64) -> u64 {
    base.saturating_add(per_order.saturating_mul(orders_in_window) / u64::from(window_days.max(1)))
}

/// Seconds until the next UTC midnight.
pub fn seconds_until_reset(now: u64) -> u64 {
    DAY - now % DAY
}

pub fn check(sent_today: u64, limit: u64, now: u64) -> Result<(), Refusal> {
    if sent_today < limit { Ok(()) } else { Err(Refusal::DailyLimit { limit, resets_in: seconds_until_reset(now) }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_formula() {
        // No orders: the base allowance.
        assert_eq!(daily_limit(600, 5, 30, 0), 600);
        // 30 orders in 30 days = 1 a day: 605.
        assert_eq!(daily_limit(600, 5, 30, 30), 605);
        // 3,000 orders in 30 days = 100 a day: 1,100.
        assert_eq!(daily_limit(600, 5, 30, 3000), 1100);
        // Rounded down: 7 orders in 30 days -> 5 × 7 / 30 = 1.
        assert_eq!(daily_limit(600, 5, 30, 7), 601);
        assert_eq!(daily_limit(u64::MAX, 5, 30, 7), u64::MAX);
    }

    #[test]
    fn window_excludes_today() {
        assert_eq!(window(100, 30), (70, 99));
        assert_eq!(window(10, 30), (0, 9));
    }

    #[test]
    fn day_boundary() {
        let midnight = 20_000 * DAY;
        assert_eq!(day_of(midnight - 1), 19_999);
        assert_eq!(day_of(midnight), 20_000);
        assert_eq!(seconds_until_reset(midnight - 1), 1);
        assert_eq!(seconds_until_reset(midnight), DAY);
        assert_eq!(check(599, 600, midnight), Ok(()));
        assert_eq!(check(600, 600, midnight - 60), Err(Refusal::DailyLimit { limit: 600, resets_in: 60 }));
    }
}
