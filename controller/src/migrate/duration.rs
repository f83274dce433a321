//! MetalLB's timers are Kubernetes `metav1.Duration`s, written in Go's `time.Duration` syntax
//! (`90s`, `1m30s`, `1.5s`, `500ms`); ferrolb's are whole seconds in a narrower syntax. This
//! reads Go's syntax; `ferrolb_api::validate::parse_duration` reads ferrolb's.

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A duration in nanoseconds read from Go's syntax: an optional `+`, then one or more decimal
/// numbers (with an optional fraction) each followed by a unit `ns`, `us`/`µs`/`μs`, `ms`, `s`,
/// `m` or `h`; or the bare `0`. Negative durations and anything else are `None`.
pub fn parse_go(text: &str) -> Option<u128> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        rest = after;
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            (fraction, rest) = after_dot.split_at(len);
        }
        if int_part.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        rest = after;
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3600 * NANOS_PER_SECOND,
            _ => return None,
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(scale)?)?;
        // Like Go, digits beyond what a nanosecond can resolve do not count.
        let mut numerator: u128 = 0;
        let mut denominator: u128 = 1;
        for digit in fraction.bytes().take(20) {
            numerator = numerator * 10 + u128::from(digit - b'0');
            denominator *= 10;
        }
        total = total.checked_add(numerator * scale / denominator)?;
    }
    Some(total)
}

/// A Go duration as whole seconds, and whether a fraction of a second was cut off.
pub fn whole_seconds(nanos: u128) -> (u128, bool) {
    (
        nanos / NANOS_PER_SECOND,
        !nanos.is_multiple_of(NANOS_PER_SECOND),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u128 = NANOS_PER_SECOND;

    #[test]
    fn reads_what_go_writes_and_accepts() {
        assert_eq!(parse_go("90s"), Some(90 * S));
        assert_eq!(parse_go("1m30s"), Some(90 * S));
        assert_eq!(parse_go("1h0m0s"), Some(3600 * S));
        assert_eq!(parse_go("1.5s"), Some(S + S / 2));
        assert_eq!(parse_go(".5s"), Some(S / 2));
        assert_eq!(parse_go("5.s"), Some(5 * S));
        assert_eq!(parse_go("500ms"), Some(S / 2));
        assert_eq!(parse_go("2us"), Some(2_000));
        assert_eq!(parse_go("2µs"), Some(2_000));
        assert_eq!(parse_go("2μs"), Some(2_000));
        assert_eq!(parse_go("3ns"), Some(3));
        assert_eq!(parse_go("0"), Some(0));
        assert_eq!(parse_go("0s"), Some(0));
        assert_eq!(parse_go("+3s"), Some(3 * S));
        assert_eq!(parse_go("1h1m1.25s"), Some(3661 * S + S / 4));
    }

    #[test]
    fn refuses_malformed_and_negative_durations() {
        for bad in [
            "", "90", "s", ".s", "1x", "-1s", "1.2.3s", " 1s", "1s ", "1 s", "1d", "+", "-0",
        ] {
            assert_eq!(parse_go(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whole_seconds_cut_the_fraction_and_say_so() {
        assert_eq!(whole_seconds(90 * S), (90, false));
        assert_eq!(whole_seconds(90 * S + 1), (90, true));
        assert_eq!(whole_seconds(S / 2), (0, true));
    }

    proptest! {
        /// Every duration written as Go's `Duration.String()` would (h, m, s parts) reads
        /// back as itself.
        #[test]
        fn hours_minutes_seconds_round_trip(h in 0u128..1000, m in 0u128..60, s in 0u128..60) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_go(&text), Some(((h * 60 + m) * 60 + s) * S));
        }

        #[test]
        fn never_panics(text in "[0-9.+\\-hmsuµn]{0,12}") {
            let _ = parse_go(&text);
        }
    }
}
