//! Durations as a JSON number of seconds (`3600.0`, `2.5`), for `#[serde(with = ...)]` on the
//! stored and API forms of alerts ([`crate::alert::AlertDetail`], [`crate::alert::Exemplar`])
//! and report digests ([`crate::report::SloDigest`]), under field names ending in `_seconds` like
//! the rest of the API.
//!
//! Reading also takes the form serde's own `Duration` impl wrote before (`{"secs": 3600,
//! "nanos": 0}`), so rows of the alert state, alert history and outbox written by an older
//! version still load. Writing always gives seconds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `d` as seconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Reads seconds (a non-negative number) or the older `{"secs", "nanos"}` object.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(SecondsVisitor)
}

/// The same for an optional duration: `null` is `None`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        d.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null or a duration in seconds")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

struct SecondsVisitor;

impl<'de> Visitor<'de> for SecondsVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration in seconds (a non-negative number) or {\"secs\", \"nanos\"}")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("a duration cannot be negative: {v} seconds")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(v).map_err(|_| E::custom(format!("invalid duration: {v} seconds")))
    }

    /// The form of serde's `Duration` impl: `{"secs": u64, "nanos": u32}`, both required.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Duration, A::Error> {
        let (mut secs, mut nanos) = (None::<u64>, None::<u32>);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "secs" if secs.is_none() => secs = Some(map.next_value()?),
                "nanos" if nanos.is_none() => nanos = Some(map.next_value()?),
                "secs" | "nanos" => {
                    return Err(de::Error::duplicate_field(if key == "secs" { "secs" } else { "nanos" }));
                }
                other => return Err(de::Error::unknown_field(other, &["secs", "nanos"])),
            }
        }
        let secs = secs.ok_or_else(|| de::Error::missing_field("secs"))?;
        let nanos = nanos.ok_or_else(|| de::Error::missing_field("nanos"))?;
        if nanos >= 1_000_000_000 {
            return Err(de::Error::custom(format!("nanos out of range: {nanos}")));
        }
        Ok(Duration::new(secs, nanos))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
        #[serde(with = "super::option")]
        o: Option<Duration>,
    }

    #[test]
    fn writes_seconds() {
        let t = T {
            d: Duration::from_millis(2_500),
            o: None,
        };
        assert_eq!(serde_json::to_value(&t).unwrap(), json!({"d": 2.5, "o": null}));
        let t = T {
            d: Duration::from_secs(3_600),
            o: Some(Duration::from_nanos(1_250_000_001)),
        };
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"d":3600.0,"o":1.250000001}"#);
    }

    #[test]
    fn reads_seconds_and_the_older_object() {
        let cases = [
            (json!({"d": 3600.0, "o": null}), Duration::from_secs(3_600), None),
            (
                json!({"d": 3600, "o": 2.5}),
                Duration::from_secs(3_600),
                Some(Duration::from_millis(2_500)),
            ),
            (
                json!({"d": {"secs": 2, "nanos": 500_000_000}, "o": {"secs": 10_440, "nanos": 0}}),
                Duration::from_millis(2_500),
                Some(Duration::from_secs(10_440)),
            ),
            (
                json!({"d": {"nanos": 1, "secs": 0}, "o": null}),
                Duration::from_nanos(1),
                None,
            ),
        ];
        for (input, d, o) in cases {
            assert_eq!(
                serde_json::from_value::<T>(input.clone()).unwrap(),
                T { d, o },
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_is_no_duration() {
        let cases = [
            (json!({"d": -1, "o": null}), "a duration cannot be negative: -1 seconds"),
            (json!({"d": -0.5, "o": null}), "invalid duration: -0.5 seconds"),
            (json!({"d": {"secs": 1}, "o": null}), "missing field `nanos`"),
            (
                json!({"d": {"secs": 1, "nanos": 1_000_000_000}, "o": null}),
                "nanos out of range: 1000000000",
            ),
            (
                json!({"d": {"secs": 1, "nanos": 0, "x": 1}, "o": null}),
                "unknown field `x`, expected `secs` or `nanos`",
            ),
            (
                json!({"d": "1h", "o": null}),
                "invalid type: string \"1h\", expected a duration in seconds (a non-negative number) or {\"secs\", \"nanos\"}",
            ),
        ];
        for (input, want) in cases {
            let err = serde_json::from_value::<T>(input.clone()).unwrap_err().to_string();
            assert_eq!(err, want, "{input}");
        }
    }
}
