//! Mute: silences and inhibition, the one place that decides whether a notification about an
//! alert is held back (Alertmanager's `Muter`). Muting never changes an alert's state: a muted
//! alert still fires, shows on dashboards and in the API; only its notifications are held.

use slis::Timestamp;

use crate::labels::{LabelMatcher, Labels, all_match};

/// A silence: alerts whose labels match every matcher are not notified between `starts_at` and
/// `ends_at`.
#[derive(Debug, Clone)]
pub struct Silence {
    /// A random 32-hex-digit id.
    pub id: String,
    pub matchers: Vec<LabelMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub created_at: Timestamp,
}

/// Where a silence stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn mutes(&self, labels: &Labels, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && all_match(&self.matchers, labels)
    }
}

/// While a firing alert matches `source`, alerts matching `target` that carry the same values
/// for every `equal` label are muted.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<LabelMatcher>,
    pub target: Vec<LabelMatcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// The default: a firing page of an SLO mutes the tickets of the same SLO.
    pub fn page_mutes_ticket() -> InhibitRule {
        InhibitRule {
            source: vec![LabelMatcher::parse("severity = page").expect("a valid matcher")],
            target: vec![LabelMatcher::parse("severity = ticket").expect("a valid matcher")],
            equal: vec!["slo".to_owned()],
        }
    }
}

/// Why an alert's notification is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Muted {
    Silenced,
    Inhibited,
}

impl Muted {
    pub fn as_str(self) -> &'static str {
        match self {
            Muted::Silenced => "silenced",
            Muted::Inhibited => "inhibited",
        }
    }
}

/// Why an alert's notification is held back, naming what holds it (the API's `muted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuteReason {
    /// The ids of every active silence that matches the alert, sorted.
    Silenced { silences: Vec<String> },
    /// The fingerprint of a firing alert that inhibits it: the first found, rules in config
    /// order, sources by fingerprint.
    Inhibited { source: String },
}

impl MuteReason {
    pub fn kind(&self) -> Muted {
        match self {
            MuteReason::Silenced { .. } => Muted::Silenced,
            MuteReason::Inhibited { .. } => Muted::Inhibited,
        }
    }
}

/// Decides muting for one evaluation cycle, given the labels of every firing alert.
#[derive(Debug)]
pub struct Muter<'a> {
    silences: &'a [Silence],
    rules: &'a [InhibitRule],
    /// Per rule, the firing alerts matching its source: (fingerprint, labels).
    sources: Vec<Vec<(&'a str, &'a Labels)>>,
    now: Timestamp,
}

impl<'a> Muter<'a> {
    pub fn new(
        silences: &'a [Silence],
        rules: &'a [InhibitRule],
        firing: impl Iterator<Item = (&'a str, &'a Labels)> + Clone,
        now: Timestamp,
    ) -> Self {
        let sources = rules
            .iter()
            .map(|r| firing.clone().filter(|(_, l)| all_match(&r.source, l)).collect())
            .collect();
        Muter {
            silences,
            rules,
            sources,
            now,
        }
    }

    /// Silences first (they are the user's explicit word), then inhibition.
    pub fn muted(&self, fingerprint: &str, labels: &Labels) -> Option<Muted> {
        self.reason(fingerprint, labels).map(|r| r.kind())
    }

    /// [`muted`](Self::muted) with what mutes the alert: the one decision both the dispatcher
    /// and the API's `muted` field come from.
    pub fn reason(&self, fingerprint: &str, labels: &Labels) -> Option<MuteReason> {
        let mut silences: Vec<String> = self
            .silences
            .iter()
            .filter(|s| s.mutes(labels, self.now))
            .map(|s| s.id.clone())
            .collect();
        if !silences.is_empty() {
            silences.sort();
            silences.dedup();
            return Some(MuteReason::Silenced { silences });
        }
        self.rules.iter().zip(&self.sources).find_map(|(rule, sources)| {
            if !all_match(&rule.target, labels) {
                return None;
            }
            sources
                .iter()
                .find(|(fp, source)| *fp != fingerprint && rule.equal.iter().all(|k| source.get(k) == labels.get(k)))
                .map(|(fp, _)| MuteReason::Inhibited {
                    source: (*fp).to_owned(),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    #[test]
    fn a_silence_mutes_only_while_active_and_matching() {
        let s = Silence {
            id: "x".into(),
            matchers: vec![LabelMatcher::parse("slo = checkout").unwrap()],
            starts_at: t(100),
            ends_at: t(200),
            created_by: "ana".into(),
            comment: "deploy".into(),
            created_at: t(50),
        };
        let hit = labels(&[("slo", "checkout"), ("severity", "page")]);
        let miss = labels(&[("slo", "search"), ("severity", "page")]);
        for (now, l, want) in [
            (99, &hit, false),
            (100, &hit, true),
            (199, &hit, true),
            (200, &hit, false),
            (150, &miss, false),
        ] {
            assert_eq!(s.mutes(l, t(now)), want, "at {now} {l:?}");
        }
        assert_eq!(s.state(t(99)), SilenceState::Pending);
        assert_eq!(s.state(t(150)), SilenceState::Active);
        assert_eq!(s.state(t(200)), SilenceState::Expired);
    }

    #[test]
    fn a_firing_page_inhibits_the_ticket_of_the_same_slo_only() {
        let page = labels(&[("slo", "checkout"), ("severity", "page")]);
        let ticket = labels(&[("slo", "checkout"), ("severity", "ticket")]);
        let other_ticket = labels(&[("slo", "search"), ("severity", "ticket")]);
        let rules = [InhibitRule::page_mutes_ticket()];
        let firing = [("p", &page), ("t", &ticket), ("o", &other_ticket)];
        let m = Muter::new(&[], &rules, firing.iter().copied(), t(0));
        assert_eq!(m.muted("t", &ticket), Some(Muted::Inhibited));
        assert_eq!(
            m.reason("t", &ticket),
            Some(MuteReason::Inhibited { source: "p".into() })
        );
        assert_eq!(m.muted("o", &other_ticket), None);
        assert_eq!(m.reason("o", &other_ticket), None);
        assert_eq!(m.muted("p", &page), None);
        // Without the page firing nothing is inhibited.
        let m = Muter::new(&[], &rules, firing[1..].iter().copied(), t(0));
        assert_eq!(m.muted("t", &ticket), None);
    }

    #[test]
    fn silences_win_over_inhibition() {
        let ticket = labels(&[("slo", "checkout"), ("severity", "ticket")]);
        let page = labels(&[("slo", "checkout"), ("severity", "page")]);
        let silences = [Silence {
            id: "s".into(),
            matchers: vec![LabelMatcher::parse("severity =~ page|ticket").unwrap()],
            starts_at: t(0),
            ends_at: t(10),
            created_by: String::new(),
            comment: String::new(),
            created_at: t(0),
        }];
        let rules = [InhibitRule::page_mutes_ticket()];
        let firing = [("p", &page), ("t", &ticket)];
        let m = Muter::new(&silences, &rules, firing.iter().copied(), t(5));
        assert_eq!(m.muted("t", &ticket), Some(Muted::Silenced));
        assert_eq!(m.muted("p", &page), Some(Muted::Silenced));
        assert_eq!(
            m.reason("t", &ticket),
            Some(MuteReason::Silenced {
                silences: vec!["s".into()]
            })
        );
    }

    #[test]
    fn a_reason_names_every_active_matching_silence_and_the_inhibiting_alert() {
        let silence = |id: &str, matcher: &str, from: i64, to: i64| Silence {
            id: id.into(),
            matchers: vec![LabelMatcher::parse(matcher).unwrap()],
            starts_at: t(from),
            ends_at: t(to),
            created_by: "ana".into(),
            comment: "drill".into(),
            created_at: t(0),
        };
        let silences = [
            silence("c", "slo = checkout", 0, 100),
            silence("a", "severity = ticket", 0, 100),
            silence("b", "slo = checkout", 50, 100),  // pending at 10
            silence("d", "slo = search", 0, 100),     // another SLO
            silence("e", "severity = ticket", 0, 10), // expired at 10
        ];
        let page = labels(&[("slo", "checkout"), ("severity", "page")]);
        let ticket = labels(&[("slo", "checkout"), ("severity", "ticket")]);
        let search_page = labels(&[("slo", "search"), ("severity", "page")]);
        let search_ticket = labels(&[("slo", "search"), ("severity", "ticket")]);
        // Two rules: pages inhibit tickets of their SLO, and any search page inhibits every ticket.
        let rules = [
            InhibitRule::page_mutes_ticket(),
            InhibitRule {
                source: vec![LabelMatcher::parse("slo = search").unwrap()],
                target: vec![LabelMatcher::parse("severity = ticket").unwrap()],
                equal: vec![],
            },
        ];
        let firing = [("fp-page", &page), ("fp-search", &search_page)];
        let m = Muter::new(&silences, &rules, firing.iter().copied(), t(10));
        let cases = [
            (
                "checkout ticket",
                &ticket,
                Some(MuteReason::Silenced {
                    silences: vec!["a".into(), "c".into()],
                }),
            ),
            (
                "checkout page",
                &page,
                Some(MuteReason::Silenced {
                    silences: vec!["c".into()],
                }),
            ),
            (
                "search page",
                &search_page,
                Some(MuteReason::Silenced {
                    silences: vec!["d".into()],
                }),
            ),
        ];
        for (what, l, want) in cases {
            assert_eq!(m.reason(what, l), want, "{what}");
        }
        // Without silences: the search ticket is inhibited by the search page; the checkout
        // ticket by both pages, and the first rule's source is named.
        let m = Muter::new(&[], &rules, firing.iter().copied(), t(10));
        assert_eq!(
            m.reason("fp-search-ticket", &search_ticket),
            Some(MuteReason::Inhibited {
                source: "fp-search".into()
            })
        );
        assert_eq!(
            m.reason("fp-ticket", &ticket),
            Some(MuteReason::Inhibited {
                source: "fp-page".into()
            })
        );
        assert_eq!(m.muted("fp-ticket", &ticket), Some(Muted::Inhibited));
        assert_eq!(m.reason("fp-page", &page), None);
    }
}
