//! Label sets: the identity of an alert (its fingerprint) and the matchers that routes, silences
//! and inhibition rules select alerts with.

use std::collections::BTreeMap;
use std::fmt;

use slis::AttrValue;
use slis::journey::{AttrMatcher, MatcherError};

/// An alert's labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// The fingerprint of a label set: FNV-1a 64 over the sorted `name 0xff value 0xff` bytes,
/// Alertmanager's own recipe, as 16 lowercase hex digits. The same labels give the same
/// fingerprint in every process and every version.
pub fn fingerprint(labels: &Labels) -> String {
    format!(
        "{:016x}",
        fnv1a(labels.iter().flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]))
    )
}

/// FNV-1a 64 of the pieces, each followed by the separator byte 0xff.
pub(crate) fn fnv1a<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for piece in pieces {
        for &b in piece.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// `name OP value` over alert labels, in the syntax journeys and routes use (`=`, `!=`, `=~`,
/// `!~`, and the numeric comparisons). As in Alertmanager, a missing label reads as the empty
/// string: `team != payments` holds for an alert without `team`, `team = ""` selects them.
#[derive(Clone, Debug)]
pub struct LabelMatcher {
    text: String,
    inner: AttrMatcher,
    /// For `=` and `!=`: (negated, value). Labels are text: `build = 1.10` must not match
    /// `"1.1"`, as a numeric comparison would.
    exact: Option<(bool, String)>,
}

impl LabelMatcher {
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let inner = AttrMatcher::parse(text)?;
        Ok(LabelMatcher {
            text: text.trim().to_owned(),
            exact: exact_value(text, &inner),
            inner,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&*self.inner.key).map_or("", String::as_str);
        match &self.exact {
            Some((negated, want)) => (value == want) != *negated,
            None => self.inner.matches_value(&AttrValue::Str(value.into())),
        }
    }

    /// The text it was parsed from, trimmed.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<AttrMatcher> for LabelMatcher {
    fn from(inner: AttrMatcher) -> Self {
        let text = inner.to_string();
        LabelMatcher {
            exact: exact_value(&text, &inner),
            text,
            inner,
        }
    }
}

/// The text after `=`, `==` or `!=`, unquoted, for an equality matcher.
fn exact_value(text: &str, m: &AttrMatcher) -> Option<(bool, String)> {
    let negated = match m.op {
        slis::journey::Op::Eq => false,
        slis::journey::Op::Ne => true,
        _ => return None,
    };
    let at = text.find(['=', '!'])?;
    let rest = text[at..].trim_start_matches(['=', '!']).trim();
    let value = match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\""),
        None => rest.to_owned(),
    };
    Some((negated, value))
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// All matchers hold (an empty list matches everything).
pub fn all_match(matchers: &[LabelMatcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// `{name="value", …}` in label order, as Alertmanager writes group keys.
pub fn render(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&format!("{v:?}"));
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn fingerprint_is_alertmanagers_fnv1a() {
        // Alertmanager / Prometheus `model.LabelSet{}.Fingerprint()` of the empty set is the
        // FNV-1a offset basis; `{a="b"}` hashes "a\xffb\xff".
        assert_eq!(fingerprint(&Labels::new()), "cbf29ce484222325");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"a\xffb\xff" {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        assert_eq!(fingerprint(&labels(&[("a", "b")])), format!("{h:016x}"));
        // Order of insertion does not matter, the pairing of names and values does.
        let x = labels(&[("slo", "checkout"), ("severity", "page")]);
        let y = labels(&[("severity", "page"), ("slo", "checkout")]);
        assert_eq!(fingerprint(&x), fingerprint(&y));
        assert_ne!(
            fingerprint(&labels(&[("ab", "c")])),
            fingerprint(&labels(&[("a", "bc")]))
        );
    }

    #[test]
    fn matchers_over_labels() {
        let l = labels(&[("slo", "checkout-latency"), ("severity", "page"), ("team", "payments")]);
        let cases = [
            ("severity = page", true),
            ("severity = ticket", false),
            ("severity != ticket", true),
            ("team =~ pay.*", true),
            ("team !~ pay.*", false),
            ("owner != x", true), // missing reads as ""
            ("owner = \"\"", true),
            ("owner =~ .+", false),
            ("slo =~ checkout-.*", true),
        ];
        let numbers = labels(&[("build", "1.1"), ("version", "2.0")]);
        for (text, want) in [
            ("build = 1.10", false), // text, not numbers
            ("build = 1.1", true),
            ("version != 2", true),
            ("version = \"2.0\"", true),
        ] {
            let m = LabelMatcher::parse(text).unwrap();
            assert_eq!(m.matches(&numbers), want, "{text}");
        }
        for (text, want) in cases {
            let m = LabelMatcher::parse(text).unwrap();
            assert_eq!(m.matches(&l), want, "{text}");
        }
        assert!(LabelMatcher::parse("no operator").is_err());
    }

    #[test]
    fn render_like_alertmanager() {
        assert_eq!(
            render(&labels(&[("slo", "a"), ("b", "x\"y")])),
            r#"{b="x\"y", slo="a"}"#
        );
        assert_eq!(render(&Labels::new()), "{}");
    }
}
