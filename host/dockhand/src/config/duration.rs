//! Go-style durations (`time.ParseDuration` / `Duration.String`).
//!
//! Nomad's docker driver stores its intervals as strings such as `"5m"` or `"1h30m"` and parses
//! them with Go's `time.ParseDuration`, so the same syntax is accepted here: an optional sign,
//! then one or more `<decimal><unit>` pairs with units `ns`, `us` (or `µs`/`μs`), `ms`, `s`,
//! `m`, `h`. `"0"` alone is zero. There is no `d` unit, exactly as in Go. Negative durations
//! parse (Go allows them) and are reported as such, so callers can say which rule they break.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not Go duration syntax.
    #[error("invalid duration {0:?} (expected Go syntax such as \"90s\", \"5m\" or \"1h30m\")")]
    Syntax(String),
    /// A unit Go does not know.
    #[error("unknown unit {unit:?} in duration {input:?} (valid units are ns, us, ms, s, m, h)")]
    Unit {
        /// The unit found.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Larger than Go's `time.Duration` (about 292 years).
    #[error("duration {0:?} is out of range")]
    Overflow(String),
    /// A negative duration where only non-negative ones make sense.
    #[error("duration {0:?} is negative")]
    Negative(String),
}

const NANOS_PER: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parse a Go duration string into signed nanoseconds.
pub fn parse_go_duration_nanos(input: &str) -> Result<i128, DurationError> {
    let syntax = || DurationError::Syntax(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(syntax());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(syntax());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::Syntax(input.to_owned()));
        }
        let scale = NANOS_PER
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| DurationError::Unit {
                unit: unit.to_owned(),
                input: input.to_owned(),
            })?;
        let overflow = || DurationError::Overflow(input.to_owned());
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(overflow)?;
        // Fractional part: scale digit by digit, truncating like Go.
        let mut frac_scale = scale;
        for d in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * frac_scale;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > i64::MAX as u128 {
            return Err(overflow());
        }
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

/// Parse a non-negative Go duration string.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(input)?;
    if nanos < 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Format like Go's `Duration.String`: `"1m0s"`, `"1h30m0s"`, `"500ms"`, `"0s"`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (value, unit, scale) = if nanos < 1_000 {
            return format!("{nanos}ns");
        } else if nanos < 1_000_000 {
            (nanos, "µs", 1_000)
        } else {
            (nanos, "ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(value, scale));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let secs_text = fraction(secs * 1_000_000_000 + sub, 1_000_000_000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{secs_text}s"));
    out
}

fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rem = value % scale;
    if rem == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_examples() {
        let cases = [
            ("5m", 300_000_000_000i128),
            ("1h30m", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("1.5h", 5_400_000_000_000),
            ("0", 0),
            ("-5m", -300_000_000_000),
            ("2h45m10.5s", 9_910_500_000_000),
            ("10us", 10_000),
            ("10µs", 10_000),
            (".5s", 500_000_000),
            ("1ns", 1),
            ("1.m", 60_000_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_go_duration_nanos(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "5",
            "1d",
            "m",
            ".m",
            "-",
            "5 m",
            "1h-5m",
            "ms5",
            "9999999999h",
        ] {
            assert!(parse_go_duration_nanos(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            parse_go_duration("1d").unwrap_err().to_string(),
            "unknown unit \"d\" in duration \"1d\" (valid units are ns, us, ms, s, m, h)"
        );
        assert!(matches!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::ZERO, "0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_secs(3600), "1h0m0s"),
        ];
        for (d, text) in cases {
            assert_eq!(format_go_duration(d), text);
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in 0u64..(i64::MAX as u64)) {
            let d = Duration::from_nanos(nanos);
            proptest::prop_assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,24}") {
            let _ = parse_go_duration_nanos(&s);
        }
    }
}
