//! Journeys: a named kind of request, selected by its root span.
//!
//! A matcher is written `key OP value`, e.g. `http.response.status_code >= 500` or
//! `deployment.environment = "prod"`. Operators: `=` (or `==`), `!=`, `=~`, `!~` (regex, fully
//! anchored as in Prometheus), `<`, `<=`, `>`, `>=` (numeric).

use std::fmt;
use std::sync::Arc;

use regex::Regex;

use crate::model::{AttrValue, Span, StatusCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Longest spellings first so `<=` is not read as `<`.
    const SPELLINGS: &'static [(&'static str, Op)] = &[
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("=~", Op::Re),
        ("!~", Op::NotRe),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid matcher {text:?}: {reason}")]
pub struct MatcherError {
    pub text: String,
    pub reason: String,
}

/// `key OP value` over a span attribute. A span without the attribute never matches,
/// whatever the operator (so `!=` means "present and different").
#[derive(Clone, Debug)]
pub struct AttrMatcher {
    pub key: Arc<str>,
    pub op: Op,
    value: MatchValue,
}

#[derive(Clone, Debug)]
enum MatchValue {
    Text(String),
    Number(f64),
    Pattern(Regex),
}

impl AttrMatcher {
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let err = |reason: &str| MatcherError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let s = text.trim();
        let op_at = s
            .find(['=', '!', '<', '>'])
            .ok_or_else(|| err("expected `key OP value` with OP one of = != =~ !~ < <= > >="))?;
        let key = s[..op_at].trim();
        if key.is_empty() {
            return Err(err("missing attribute key before the operator"));
        }
        if key.contains(char::is_whitespace) {
            return Err(err("attribute key contains whitespace"));
        }
        let after = &s[op_at..];
        let (spelling, op) = Op::SPELLINGS
            .iter()
            .find(|(sp, _)| after.starts_with(sp))
            .ok_or_else(|| err("unknown operator, expected one of = != =~ !~ < <= > >="))?;
        let raw = after[spelling.len()..].trim();
        let value = unquote(raw).map_err(err)?;
        let value = match op {
            Op::Re | Op::NotRe => {
                MatchValue::Pattern(Regex::new(&format!("^(?:{value})$")).map_err(|e| err(&format!("bad regex: {e}")))?)
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => MatchValue::Number(
                value
                    .parse()
                    .map_err(|_| err(&format!("operator {} needs a number, got {value:?}", op.as_str())))?,
            ),
            Op::Eq | Op::Ne => match value.parse::<f64>() {
                Ok(n) if raw == value => MatchValue::Number(n),
                _ => MatchValue::Text(value),
            },
        };
        Ok(AttrMatcher {
            key: key.into(),
            op: *op,
            value,
        })
    }

    pub fn matches(&self, span: &Span) -> bool {
        span.attribute(&self.key).is_some_and(|v| self.matches_value(v))
    }

    pub fn matches_value(&self, v: &AttrValue) -> bool {
        match (&self.value, self.op) {
            (MatchValue::Pattern(re), Op::Re) => re.is_match(&v.to_string()),
            (MatchValue::Pattern(re), _) => !re.is_match(&v.to_string()),
            (MatchValue::Number(n), op) => match v.as_f64() {
                Some(x) => match op {
                    Op::Eq => x == *n,
                    Op::Ne => x != *n,
                    Op::Lt => x < *n,
                    Op::Le => x <= *n,
                    Op::Gt => x > *n,
                    Op::Ge => x >= *n,
                    Op::Re | Op::NotRe => false,
                },
                None => op == Op::Ne,
            },
            (MatchValue::Text(t), Op::Ne) => !text_eq(v, t),
            (MatchValue::Text(t), _) => text_eq(v, t),
        }
    }
}

fn text_eq(v: &AttrValue, t: &str) -> bool {
    match v {
        AttrValue::Str(s) => &**s == t,
        other => other.to_string() == t,
    }
}

fn unquote(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("missing value after the operator");
    }
    match raw.strip_prefix('"') {
        Some(inner) => inner
            .strip_suffix('"')
            .map(|s| s.replace("\\\"", "\""))
            .ok_or("unterminated string"),
        None => Ok(raw.to_owned()),
    }
}

impl fmt::Display for AttrMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match &self.value {
            MatchValue::Text(t) => format!("{t:?}"),
            MatchValue::Number(n) => n.to_string(),
            MatchValue::Pattern(re) => {
                let s = re.as_str();
                format!("{:?}", &s[4..s.len() - 2])
            }
        };
        write!(f, "{} {} {}", self.key, self.op.as_str(), value)
    }
}

/// What selects a journey's root span. Every field that is set must match.
#[derive(Clone, Debug, Default)]
pub struct RootMatcher {
    /// `service.name` of the root span.
    pub service: Option<String>,
    pub span_name: Option<String>,
    /// `http.route` attribute.
    pub http_route: Option<String>,
    /// `http.request.method` (or the older `http.method`), compared case-insensitively.
    pub http_method: Option<String>,
    pub attributes: Vec<AttrMatcher>,
}

impl RootMatcher {
    pub fn matches(&self, span: &Span) -> bool {
        self.service.as_deref().is_none_or(|s| s == &*span.service)
            && self.span_name.as_deref().is_none_or(|n| n == &*span.name)
            && self
                .http_route
                .as_deref()
                .is_none_or(|r| matches!(span.attribute("http.route"), Some(AttrValue::Str(v)) if &**v == r))
            && self.http_method.as_deref().is_none_or(|m| {
                let v = span
                    .attribute("http.request.method")
                    .or_else(|| span.attribute("http.method"));
                matches!(v, Some(AttrValue::Str(v)) if v.eq_ignore_ascii_case(m))
            })
            && self.attributes.iter().all(|a| a.matches(span))
    }
}

/// The matcher as text, every condition joined by `and`, e.g.
/// `service.name = "frontend" and http.request.method = "POST" and http.route = "/api/checkout"`.
impl fmt::Display for RootMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fixed = [
            ("service.name", &self.service),
            ("span.name", &self.span_name),
            ("http.request.method", &self.http_method),
            ("http.route", &self.http_route),
        ];
        let mut parts: Vec<String> = fixed
            .iter()
            .filter_map(|(key, v)| v.as_ref().map(|v| format!("{key} = {v:?}")))
            .collect();
        parts.extend(self.attributes.iter().map(ToString::to_string));
        f.write_str(&parts.join(" and "))
    }
}

/// OpenTracing's (and Zipkin's) way of saying a span failed: a tag `error` set to `true`. The
/// OpenTracing shim over OpenTelemetry passes it on as an attribute and leaves the status unset.
pub const ERROR_TAG: &str = "error";

/// A named kind of request and how to judge it.
#[derive(Clone, Debug)]
pub struct Journey {
    pub name: String,
    pub root: RootMatcher,
    /// A root span that says it failed is bad (default true): status ERROR, or an `error` tag
    /// of `true` (OpenTracing), so teams on either API need no extra rule.
    pub status_error: bool,
    /// A root span matching any of these is bad too, e.g. `http.response.status_code >= 500`.
    pub error_rules: Vec<AttrMatcher>,
    /// Services that must each take part in a complete trace.
    pub expected_services: Vec<Arc<str>>,
    /// Labels copied onto every alert of this journey's SLOs.
    pub labels: Vec<(String, String)>,
}

impl Journey {
    pub fn is_error(&self, root: &Span) -> bool {
        (self.status_error && says_failed(root)) || self.error_rules.iter().any(|r| r.matches(root))
    }
}

/// Whether a span says it failed: status ERROR, or an OpenTracing `error` tag of `true`.
pub fn says_failed(span: &Span) -> bool {
    span.status == StatusCode::Error
        || match span.attribute(ERROR_TAG) {
            Some(AttrValue::Bool(b)) => *b,
            Some(AttrValue::Str(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
}

/// Journeys in config order; a root span belongs to the first journey that matches it.
#[derive(Clone, Debug, Default)]
pub struct Journeys(pub Vec<Journey>);

impl Journeys {
    pub fn match_root(&self, root: &Span) -> Option<usize> {
        self.0.iter().position(|j| j.root.matches(root))
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|j| j.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanId, SpanKind, TraceId};
    use crate::time::Timestamp;

    fn span(service: &str, name: &str, attrs: &[(&str, AttrValue)]) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            service: service.into(),
            name: name.into(),
            kind: SpanKind::Server,
            start: Timestamp::from_unix_secs(0),
            end: Timestamp::from_unix_secs(1),
            status: StatusCode::Unset,
            attributes: attrs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect(),
            weight: 1,
        }
    }

    fn s(v: &str) -> AttrValue {
        AttrValue::Str(v.into())
    }

    #[test]
    fn root_matcher_reads_back_as_text() {
        let m = RootMatcher {
            service: Some("frontend".into()),
            span_name: None,
            http_route: Some("/api/checkout".into()),
            http_method: Some("POST".into()),
            attributes: vec![AttrMatcher::parse("deployment.environment = prod").unwrap()],
        };
        assert_eq!(
            m.to_string(),
            r#"service.name = "frontend" and http.request.method = "POST" and http.route = "/api/checkout" and deployment.environment = "prod""#
        );
        assert_eq!(RootMatcher::default().to_string(), "");
    }

    #[test]
    fn matchers_against_values() {
        use AttrValue::Int;
        let cases: &[(&str, AttrValue, bool)] = &[
            ("http.response.status_code >= 500", Int(503), true),
            ("http.response.status_code >= 500", Int(499), false),
            ("http.response.status_code >= 500", s("502"), true), // Zipkin tags are strings
            ("http.response.status_code < 400", Int(200), true),
            ("http.response.status_code = 200", Int(200), true),
            ("http.response.status_code == 200", s("200"), true),
            ("env = prod", s("prod"), true),
            ("env = \"prod\"", s("prod"), true),
            ("env != prod", s("dev"), true),
            ("env != prod", s("prod"), false),
            ("version = \"1.0\"", s("1.0"), true),
            ("region =~ eu-.*", s("eu-west-1"), true),
            ("region =~ eu", s("eu-west-1"), false), // anchored
            ("region !~ eu-.*", s("us-east-1"), true),
            ("retry = true", AttrValue::Bool(true), true),
            ("ratio > 0.5", AttrValue::Float(0.75), true),
        ];
        for (text, value, want) in cases {
            let m = AttrMatcher::parse(text).unwrap();
            assert_eq!(m.matches_value(value), *want, "{text} vs {value:?}");
        }
    }

    #[test]
    fn a_missing_attribute_never_matches() {
        let m = AttrMatcher::parse("env != prod").unwrap();
        assert!(!m.matches(&span("a", "b", &[])));
    }

    #[test]
    fn matcher_errors_name_the_text() {
        let cases = [
            (
                "status_code",
                "invalid matcher \"status_code\": expected `key OP value` with OP one of = != =~ !~ < <= > >=",
            ),
            (
                "= 5",
                "invalid matcher \"= 5\": missing attribute key before the operator",
            ),
            (
                "code >=",
                "invalid matcher \"code >=\": missing value after the operator",
            ),
            (
                "code > high",
                "invalid matcher \"code > high\": operator > needs a number, got \"high\"",
            ),
            (
                "env = \"prod",
                "invalid matcher \"env = \\\"prod\": unterminated string",
            ),
            (
                "my key = 1",
                "invalid matcher \"my key = 1\": attribute key contains whitespace",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(AttrMatcher::parse(text).unwrap_err().to_string(), want);
        }
        assert!(
            AttrMatcher::parse("r =~ (")
                .unwrap_err()
                .reason
                .starts_with("bad regex")
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["code >= 500", "env = \"prod\"", "region =~ \"eu-.*\""] {
            let m = AttrMatcher::parse(text).unwrap();
            assert_eq!(m.to_string(), text);
            assert_eq!(AttrMatcher::parse(&m.to_string()).unwrap().to_string(), text);
        }
    }

    #[test]
    fn first_matching_journey_wins() {
        let route = |name: &str, route: &str, method: Option<&str>| Journey {
            name: name.into(),
            root: RootMatcher {
                service: Some("frontend".into()),
                http_route: Some(route.into()),
                http_method: method.map(Into::into),
                ..Default::default()
            },
            status_error: true,
            error_rules: vec![],
            expected_services: vec![],
            labels: vec![],
        };
        let journeys = Journeys(vec![
            route("checkout", "/api/checkout", Some("POST")),
            route("cart", "/api/checkout", None),
        ]);
        let post = span(
            "frontend",
            "POST /api/checkout",
            &[("http.route", s("/api/checkout")), ("http.request.method", s("post"))],
        );
        let get = span(
            "frontend",
            "GET /api/checkout",
            &[("http.route", s("/api/checkout")), ("http.method", s("GET"))],
        );
        let other = span("backend", "POST /api/checkout", &[("http.route", s("/api/checkout"))]);
        assert_eq!(journeys.match_root(&post), Some(0));
        assert_eq!(journeys.match_root(&get), Some(1));
        assert_eq!(journeys.match_root(&other), None);
    }

    #[test]
    fn errors_from_status_and_rules() {
        let mut j = Journey {
            name: "j".into(),
            root: RootMatcher::default(),
            status_error: true,
            error_rules: vec![AttrMatcher::parse("http.response.status_code >= 500").unwrap()],
            expected_services: vec![],
            labels: vec![],
        };
        let mut root = span("a", "b", &[("http.response.status_code", AttrValue::Int(200))]);
        assert!(!j.is_error(&root));
        root.status = StatusCode::Error;
        assert!(j.is_error(&root));
        // OpenTracing's error tag says the same, as a bool or (Zipkin, shims) a string.
        root.status = StatusCode::Unset;
        for (tag, failed) in [
            (AttrValue::Bool(true), true),
            (s("true"), true),
            (AttrValue::Bool(false), false),
            (s("0"), false),
        ] {
            let mut tagged = root.clone();
            tagged.attributes.push((ERROR_TAG.into(), tag));
            assert_eq!(j.is_error(&tagged), failed);
        }
        root.status = StatusCode::Error;
        j.status_error = false;
        assert!(!j.is_error(&root));
        root.attributes[0].1 = AttrValue::Int(503);
        assert!(j.is_error(&root));
    }
}
