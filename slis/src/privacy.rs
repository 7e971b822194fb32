//! Redaction of span-derived text before it is kept or shown (issue 9, "No PII kept").
//!
//! A [`Redactor`] is an ordered list of [`Rule`]s (regular expressions compiled once, at config
//! load) applied one after the other to a string: each rule replaces every match, left to right,
//! without overlaps, in the output of the rules before it, so a replacement such as `[email]` is
//! never matched again by a later built-in rule. Replacements are literal text (`$` means `$`).
//!
//! Where it runs (never on the span hot path): the contributors an alert carries (service and
//! operation names, once per evaluation of a firing alert), the trace-health API and `/metrics`
//! labels (per request and scrape), the names a JetStream snapshot stores, and every log line.
//!
//! Every replacement is counted per rule ([`Redactor::counts`], `tracebudget_redactions_total`).
//! [`Redactor::shown`] memoizes: a string shown again (the same contributor at every evaluation,
//! the same service at every scrape) is served from a cache and counted once, so the counter says
//! how many distinct strings had something removed, not how often they were looked at. Log lines
//! ([`Redactor::redact`]) are not cached: each replacement in a log line counts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::Regex;

/// The built-in rules, by name: (pattern, replacement, check).
const BUILTINS: &[(&str, &str, &str)] = &[
    // Unicode letters and digits on both sides, so `jürgen@example.com` goes whole.
    (
        "email",
        r"[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}",
        "[email]",
    ),
    // `Authorization: Bearer …` / `Basic …` credentials, and JWT-looking strings on their own.
    (
        "bearer_token",
        r"(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9\-._~+/]+=*|\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        "[bearer_token]",
    ),
    // Dotted quads, but loopback and 0.0.0.0 (see `not_local`).
    (
        "ipv4",
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
        "[ipv4]",
    ),
    // 13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn check.
    ("credit_card", r"\b[0-9](?:[ \-]?[0-9]){12,18}\b", "[credit_card]"),
];

/// Names of the built-in rules, in the order a config may list them.
pub const BUILTIN_NAMES: [&str; 4] = ["email", "bearer_token", "ipv4", "credit_card"];

/// The built-in rules on when a config says nothing.
pub const DEFAULT_BUILTINS: [&str; 2] = ["email", "bearer_token"];

/// Attribute keys whose values may be kept when a config says nothing.
pub const DEFAULT_ALLOW_LIST: [&str; 1] = [crate::model::PEER_SERVICE];

/// How many distinct strings [`Redactor::shown`] remembers before it starts over.
pub const CACHE_CAPACITY: usize = 4_096;

/// One redaction rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    regex: Regex,
    replacement: String,
    /// Only matches passing it are replaced (the Luhn check of `credit_card`).
    check: Option<fn(&str) -> bool>,
}

impl Rule {
    /// A user rule; the error is the regex crate's message.
    pub fn new(name: &str, pattern: &str, replacement: &str) -> Result<Rule, String> {
        // The regex crate's syntax errors span lines (the pattern, a caret, then the reason): the
        // config error already points at the pattern, so keep the reason.
        let regex = Regex::new(pattern).map_err(|e| {
            let text = e.to_string();
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&text);
            last.trim().trim_start_matches("error: ").to_owned()
        })?;
        if regex.is_match("") {
            return Err(format!("pattern {pattern:?} matches the empty string"));
        }
        Ok(Rule {
            name: name.to_owned(),
            regex,
            replacement: replacement.to_owned(),
            check: None,
        })
    }

    /// A built-in rule by name (see [`BUILTIN_NAMES`]).
    pub fn builtin(name: &str) -> Option<Rule> {
        let &(name, pattern, replacement) = BUILTINS.iter().find(|(n, _, _)| *n == name)?;
        Some(Rule {
            name: name.to_owned(),
            regex: Regex::new(pattern).expect("built-in patterns compile"),
            replacement: replacement.to_owned(),
            check: match name {
                "credit_card" => Some(luhn as fn(&str) -> bool),
                "ipv4" => Some(not_local as fn(&str) -> bool),
                _ => None,
            },
        })
    }

    /// `text` with every (checked) match replaced, and how many were.
    fn apply<'a>(&self, text: &'a str) -> (Cow<'a, str>, u64) {
        let mut n = 0;
        let mut out = String::new();
        let mut last = 0;
        for m in self.regex.find_iter(text) {
            if self.check.is_some_and(|check| !check(m.as_str())) {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            out.push_str(&self.replacement);
            last = m.end();
            n += 1;
        }
        if n == 0 {
            return (Cow::Borrowed(text), 0);
        }
        out.push_str(&text[last..]);
        (Cow::Owned(out), n)
    }
}

/// Not a loopback (`127.0.0.0/8`) or unspecified (`0.0.0.0`) address: those name no person,
/// and are what logs of listening sockets and local databases print.
fn not_local(s: &str) -> bool {
    !(s.starts_with("127.") || s == "0.0.0.0")
}

/// The Luhn checksum of the digits of `s` (separators ignored).
fn luhn(s: &str) -> bool {
    let mut sum = 0;
    for (i, d) in s
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if i % 2 == 1 {
            let d2 = d * 2;
            if d2 > 9 { d2 - 9 } else { d2 }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// The rules in force, their counts and the cache of strings already shown.
pub struct Redactor {
    rules: Vec<Rule>,
    counts: Vec<AtomicU64>,
    cache: Mutex<HashMap<Box<str>, Option<Box<str>>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.names())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Redactor {
    /// The same rules (name, pattern, replacement) in the same order; counts and caches aside.
    fn eq(&self, other: &Self) -> bool {
        let key = |r: &Rule| (r.name.clone(), r.regex.as_str().to_owned(), r.replacement.clone());
        self.rules.len() == other.rules.len() && self.rules.iter().zip(&other.rules).all(|(a, b)| key(a) == key(b))
    }
}

impl Default for Redactor {
    /// The default rules ([`DEFAULT_BUILTINS`]).
    fn default() -> Self {
        Redactor::new(DEFAULT_BUILTINS.iter().filter_map(|n| Rule::builtin(n)).collect())
    }
}

impl Redactor {
    pub fn new(rules: Vec<Rule>) -> Self {
        Redactor {
            counts: rules.iter().map(|_| AtomicU64::new(0)).collect(),
            rules,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The rules' names, in the order they apply.
    pub fn names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// Replacements made so far, per rule, in rule order.
    pub fn counts(&self) -> Vec<(&str, u64)> {
        self.rules
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (r.name.as_str(), c.load(Ordering::Relaxed)))
            .collect()
    }

    /// `text` with every rule applied; every replacement counted. For text seen once (log lines).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (rule, count) in self.rules.iter().zip(&self.counts) {
            let (next, n) = rule.apply(&out);
            if n > 0 {
                count.fetch_add(n, Ordering::Relaxed);
                out = Cow::Owned(next.into_owned());
            }
        }
        out
    }

    /// `text` as it may be shown or kept: like [`Redactor::redact`], but a string seen before
    /// comes from the cache and is not counted again (see the module docs).
    pub fn shown(&self, text: &str) -> String {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache.get(text) {
            return hit.as_deref().unwrap_or(text).to_owned();
        }
        let out = self.redact(text);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        let changed = match &out {
            Cow::Borrowed(_) => None,
            Cow::Owned(s) => Some(s.clone().into_boxed_str()),
        };
        cache.insert(text.into(), changed);
        out.into_owned()
    }
}

/// Shown names that stay distinct: two raw names redacted to the same text (two e-mail
/// addresses, both `[email]`) get ` #2`, ` #3`… in the order they are first asked for, so a
/// response or a scrape never holds two series or rows under one label. One per response.
#[derive(Debug)]
pub struct DistinctNames<'r> {
    redactor: &'r Redactor,
    by_raw: HashMap<String, String>,
    used: HashMap<String, u32>,
}

impl<'r> DistinctNames<'r> {
    pub fn new(redactor: &'r Redactor) -> Self {
        DistinctNames {
            redactor,
            by_raw: HashMap::new(),
            used: HashMap::new(),
        }
    }

    pub fn get(&mut self, raw: &str) -> String {
        if let Some(shown) = self.by_raw.get(raw) {
            return shown.clone();
        }
        let base = self.redactor.shown(raw);
        let n = self.used.entry(base.clone()).or_insert(0);
        *n += 1;
        let shown = if *n == 1 { base } else { format!("{base} #{n}") };
        self.by_raw.insert(raw.to_owned(), shown.clone());
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Redactor {
        Redactor::new(BUILTIN_NAMES.iter().filter_map(|n| Rule::builtin(n)).collect())
    }

    #[test]
    fn each_builtin_rule_replaces_what_it_names() {
        let r = all();
        let cases = [
            ("charge alice@example.com", "charge [email]"),
            ("to: first.last+tag@mail.example.co.uk.", "to: [email]."),
            ("jürgen.müller@bücher.de bought", "[email] bought"),
            (
                "Authorization: Bearer abc.DEF-123_x/y+z==",
                "Authorization: [bearer_token]",
            ),
            ("authorization: bearer s3cr3t", "authorization: [bearer_token]"),
            ("Basic dXNlcjpwYXNz", "[bearer_token]"),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-x",
                "token [bearer_token]",
            ),
            ("GET from 192.168.10.255 ok", "GET from [ipv4] ok"),
            (
                "listening on 127.0.0.1:4318 and 0.0.0.0:8080",
                "listening on 127.0.0.1:4318 and 0.0.0.0:8080",
            ),
            // No look-around in the regex crate: a longer dotted run loses its first four parts
            // (redacting too much, never too little); 999 is no octet.
            ("version 1.2.3.4.5 and 999.1.1.1", "version [ipv4].5 and 999.1.1.1"),
            ("card 4111 1111 1111 1111 paid", "card [credit_card] paid"),
            ("card 4111-1111-1111-1111", "card [credit_card]"),
            ("order 4111111111111112", "order 4111111111111112"),
            ("GET /api/v1/checkout", "GET /api/v1/checkout"),
            ("bearer", "bearer"),
        ];
        for (input, want) in cases {
            assert_eq!(r.redact(input), want, "{input:?}");
        }
    }

    #[test]
    fn counts_every_replacement_per_rule() {
        let r = all();
        r.redact("a@x.io and b@y.io from 10.0.0.1");
        r.redact("Bearer abcdefgh");
        assert_eq!(
            r.counts(),
            [("email", 2), ("bearer_token", 1), ("ipv4", 1), ("credit_card", 0)]
        );
    }

    #[test]
    fn shown_counts_a_string_once() {
        let r = Redactor::default();
        for _ in 0..3 {
            assert_eq!(r.shown("pay bob@example.com"), "pay [email]");
            assert_eq!(r.shown("pay"), "pay");
        }
        assert_eq!(r.counts(), [("email", 1), ("bearer_token", 0)]);
        // Log lines are not cached.
        r.redact("pay bob@example.com");
        r.redact("pay bob@example.com");
        assert_eq!(r.counts(), [("email", 3), ("bearer_token", 0)]);
    }

    #[test]
    fn user_rules_apply_in_order_after_the_builtins_and_replace_literally() {
        let mut rules = vec![Rule::builtin("email").unwrap()];
        rules.push(Rule::new("customer", r"cust-[0-9]+", "$1[customer]").unwrap());
        // Would match the e-mail rule's replacement if the text were matched again: it is not,
        // the e-mail is gone before this rule runs.
        rules.push(Rule::new("domain", r"example\.com", "[domain]").unwrap());
        let r = Redactor::new(rules);
        assert_eq!(
            r.redact("cust-42 mailed cust-7@example.com via example.com"),
            "$1[customer] mailed [email] via [domain]"
        );
        assert_eq!(r.counts(), [("email", 1), ("customer", 1), ("domain", 1)]);
    }

    #[test]
    fn overlapping_matches_are_replaced_once_leftmost_first() {
        let r = Redactor::new(vec![Rule::new("aa", "aa", "X").unwrap()]);
        assert_eq!(r.redact("aaaaa"), "XXa");
        assert_eq!(r.counts(), [("aa", 2)]);
        // Two rules over the same text: the first one wins what both would match.
        let r = Redactor::new(vec![
            Rule::builtin("email").unwrap(),
            Rule::new("user", "alice", "[user]").unwrap(),
        ]);
        assert_eq!(r.redact("alice@example.com alice"), "[email] [user]");
    }

    #[test]
    fn utf8_boundaries_survive() {
        let r = Redactor::new(vec![
            Rule::builtin("email").unwrap(),
            Rule::new("snow", "☃+", "*").unwrap(),
        ]);
        assert_eq!(r.redact("📧a@b.io—☃☃é"), "📧[email]—*é");
        assert_eq!(r.redact("ü"), "ü");
        assert_eq!(r.redact(""), "");
    }

    #[test]
    fn bad_user_rules_are_refused() {
        assert_eq!(Rule::new("x", "(", "").unwrap_err(), "unclosed group");
        assert_eq!(
            Rule::new("x", "[z-a]", "").unwrap_err(),
            "invalid character class range, the start must be <= the end"
        );
        assert_eq!(
            Rule::new("x", "a*", "").unwrap_err(),
            "pattern \"a*\" matches the empty string"
        );
    }

    #[test]
    fn distinct_names_never_collide() {
        let r = Redactor::default();
        let mut names = DistinctNames::new(&r);
        assert_eq!(names.get("a@x.io"), "[email]");
        assert_eq!(names.get("shop"), "shop");
        assert_eq!(names.get("b@y.io"), "[email] #2");
        assert_eq!(names.get("a@x.io"), "[email]");
        assert_eq!(r.counts(), [("email", 2), ("bearer_token", 0)]);
    }

    #[test]
    fn luhn_table() {
        for (digits, ok) in [
            ("4111111111111111", true),
            ("5500 0000 0000 0004", true),
            ("4111111111111112", false),
            ("0", true),
        ] {
            assert_eq!(luhn(digits), ok, "{digits}");
        }
    }
}
