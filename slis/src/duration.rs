//! Human durations as users write them in config: `"300ms"`, `"5m"`, `"1h30m"`, `"28d"`.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused. The message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration, expected e.g. \"300ms\", \"5m\" or \"28d\"")]
    Empty,
    #[error("invalid duration {text:?}: {reason}")]
    Invalid { text: String, reason: String },
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
    ("w", 7 * 86_400 * 1_000_000_000),
];

/// Parses a sequence of `<integer><unit>` parts (units: ns, us, ms, s, m, h, d, w), e.g. `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = |reason: &str| DurationError::Invalid {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(
                "expected a number followed by a unit (ns, us, ms, s, m, h, d, w)",
            ));
        }
        let number: u128 = rest[..digits].parse().map_err(|_| invalid("number too large"))?;
        rest = rest[digits..].trim_start();
        if rest.starts_with('.') {
            return Err(invalid(
                "fractions are not supported, combine units instead (e.g. 1h30m)",
            ));
        }
        let unit_len = rest.chars().take_while(|c| c.is_alphabetic()).map(char::len_utf8).sum();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(invalid(&if unit.is_empty() {
                "missing unit (ns, us, ms, s, m, h, d, w)".to_owned()
            } else {
                format!("unknown unit {unit:?}, expected one of ns, us, ms, s, m, h, d, w")
            }));
        };
        total = number
            .checked_mul(scale)
            .and_then(|n| total.checked_add(n))
            .filter(|n| *n <= u64::MAX as u128)
            .ok_or_else(|| invalid("duration too large"))?;
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration the way users write it: the two largest non-zero units, e.g. `1h30m`,
/// `51.84s` below a minute, `300ms` below a second.
pub fn format_duration(d: Duration) -> impl fmt::Display {
    Human(d)
}

struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d < Duration::from_millis(1) {
            return write!(f, "{}us", d.as_micros());
        }
        if d < Duration::from_secs(1) {
            let ms = d.as_secs_f64() * 1_000.0;
            return write!(f, "{}ms", trim_float(ms));
        }
        if d < Duration::from_secs(60) {
            return write!(f, "{}s", trim_float(d.as_secs_f64()));
        }
        if d < Duration::from_secs(3_600) {
            let minutes = d.as_secs() / 60;
            let rest = d.as_secs_f64() - (minutes * 60) as f64;
            return match trim_float(rest).as_str() {
                "0" => write!(f, "{minutes}m"),
                s => write!(f, "{minutes}m{s}s"),
            };
        }
        let secs = d.as_secs();
        let parts = [
            (secs / 86_400, "d"),
            (secs / 3_600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
        ];
        // The largest unit present and the one after it, e.g. 3d2h, 1d (not 1d0h).
        for (value, unit) in parts.iter().skip_while(|(v, _)| *v == 0).take(2) {
            if *value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Formats a duration exactly, every non-zero unit from days down to nanoseconds, as a user
/// would write it in the config (`2d19h12m`, `3d30m`, `1m10s`, `1s500ms`; `0s`): what names a
/// configured window or period (metric labels, the API, `tracebudget check`), where two
/// windows must never share a name. [`parse_duration`] reads it back to the same duration.
pub fn format_exact(d: Duration) -> impl fmt::Display {
    Exact(d)
}

struct Exact(Duration);

impl fmt::Display for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        if secs == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (secs / 86_400, "d"),
            (secs / 3_600 % 24, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from(nanos / 1_000 % 1_000), "us"),
            (u64::from(nanos % 1_000), "ns"),
        ];
        for (value, unit) in parts {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        let cases = [
            ("300ms", Duration::from_millis(300)),
            ("5m", Duration::from_secs(300)),
            ("28d", Duration::from_secs(28 * 86_400)),
            ("1h30m", Duration::from_secs(5_400)),
            ("2w", Duration::from_secs(14 * 86_400)),
            ("250us", Duration::from_micros(250)),
            ("0s", Duration::ZERO),
            (" 30s ", Duration::from_secs(30)),
            ("1h 30m", Duration::from_secs(5_400)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_with_the_offending_text() {
        let cases = [
            ("", "empty duration, expected e.g. \"300ms\", \"5m\" or \"28d\""),
            ("5", "invalid duration \"5\": missing unit (ns, us, ms, s, m, h, d, w)"),
            (
                "5x",
                "invalid duration \"5x\": unknown unit \"x\", expected one of ns, us, ms, s, m, h, d, w",
            ),
            (
                "m5",
                "invalid duration \"m5\": expected a number followed by a unit (ns, us, ms, s, m, h, d, w)",
            ),
            (
                "1.5h",
                "invalid duration \"1.5h\": fractions are not supported, combine units instead (e.g. 1h30m)",
            ),
            (
                "-5m",
                "invalid duration \"-5m\": expected a number followed by a unit (ns, us, ms, s, m, h, d, w)",
            ),
            (
                "99999999999999999999d",
                "invalid duration \"99999999999999999999d\": duration too large",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).unwrap_err().to_string(), want, "{text}");
        }
    }

    #[test]
    fn formats_round_trip_through_the_parser() {
        let cases = [
            (Duration::from_secs(5_400), "1h30m"),
            (Duration::from_secs(28 * 86_400), "28d"),
            (Duration::from_millis(51_840), "51.84s"),
            (Duration::from_millis(129_600), "2m9.6s"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_secs(3 * 86_400 + 7_200), "3d2h"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d).to_string(), want);
        }
    }

    /// Issue 18: a 2d19h12m window was labelled "2d19h", so 3d and 3d30m windows could share a
    /// name. Exact names keep every unit and read back to the same duration.
    #[test]
    fn exact_names_keep_every_unit() {
        let cases = [
            (Duration::from_secs(241_920), "2d19h12m"),
            (Duration::from_secs(3 * 86_400), "3d"),
            (Duration::from_secs(3 * 86_400 + 1_800), "3d30m"),
            (Duration::from_secs(3_360), "56m"),
            (Duration::from_secs(280), "4m40s"),
            (Duration::from_secs(90_061), "1d1h1m1s"),
            (Duration::from_millis(1_500), "1s500ms"),
            (Duration::from_nanos(86_400_000_001_001), "1d1us1ns"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in cases {
            let got = format_exact(d).to_string();
            assert_eq!(got, want);
            assert_eq!(parse_duration(&got), Ok(d), "{got}");
        }
    }
}
