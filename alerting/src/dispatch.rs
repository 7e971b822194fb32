//! Route and group: which receivers an alert goes to, and when a group of alerts is notified
//! (Alertmanager's dispatcher and its notification-log dedup, in one pure state machine).
//!
//! A group is a (receiver, route, group label values) triple. Its timing:
//! - a new group waits `group_wait` before its first notification, so alerts that start together
//!   go out together;
//! - after that it is looked at every `group_interval`, and notified when an alert fires that the
//!   receiver has not been told about, or when `repeat_interval` has passed since the last
//!   notification of a still-firing group;
//! - **an alert that resolves is notified at once**, in the cycle it resolves, not after
//!   `group_interval` (Alertmanager #1510). Only alerts the receiver was told were firing get a
//!   resolved notice.
//!
//! Muted alerts (silenced or inhibited) are left out of a notification; the receiver's view
//! (`notified_firing`) keeps an alert it was told about while that alert is muted, so it is not
//! re-announced when the mute ends, and it still gets the resolved notice (the receiver was told
//! it fires; it is told it ended). One that started firing under a silence is announced when the
//! silence ends. An alert whose labels or routes no longer lead to a group leaves it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use slis::Timestamp;

use crate::config::Route;
use crate::labels::{Labels, all_match, fnv1a, render};
use crate::mute::{Muted, Muter};

/// The part of an alert the dispatcher reads.
pub trait Routable {
    fn labels(&self) -> &Labels;
    fn is_firing(&self) -> bool;
}

/// A notification group and what its receiver has been told.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub receiver: String,
    /// `{route}:{group labels}`, e.g. `{}/{severity="page"}:{slo="checkout-latency"}`.
    pub key: String,
    pub labels: Labels,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// Fingerprints of the alerts in the group.
    pub alerts: BTreeSet<String>,
    /// Fingerprints the receiver was last told are firing.
    pub notified_firing: BTreeSet<String>,
    pub last_notified: Option<Timestamp>,
    pub next_flush: Timestamp,
    /// Notifications sent so far; the next one's id ends in `seq + 1`.
    pub seq: u64,
    /// When the group was created: part of its notification ids, so a group that ends and comes
    /// back for a later incident never reuses an id (the outbox keeps one row per id).
    pub epoch: Timestamp,
}

impl Group {
    /// The id of the group across restarts: receiver and key.
    pub fn id(&self) -> String {
        group_id(&self.receiver, &self.key)
    }
}

pub fn group_id(receiver: &str, key: &str) -> String {
    format!("{receiver}\u{1f}{key}")
}

/// One notification to build: a group and the alerts to put in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    /// Idempotency key: the group's hash, its creation time and sequence number; stable across retries.
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    pub group_labels: Labels,
    /// Firing then resolved, by fingerprint.
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
}

/// What one cycle of the dispatcher did.
#[derive(Debug, Default)]
pub struct Dispatched {
    pub flushes: Vec<Flush>,
    /// Groups whose state changed (to persist), by id.
    pub changed: BTreeSet<String>,
    /// Groups that ended (every alert resolved and notified), by id.
    pub removed: Vec<String>,
    /// Alerts held back from a notification, by reason.
    pub muted: Vec<(String, Muted)>,
}

/// Every group, by [`Group::id`].
#[derive(Debug, Default, Clone)]
pub struct Dispatcher {
    pub groups: BTreeMap<String, Group>,
    /// Receivers that need firing alerts re-sent at least this often (Alertmanager forgets an
    /// alert that is not re-pushed before its `endsAt`): their groups repeat at this interval.
    pub resend: BTreeMap<String, Duration>,
}

/// The leaf routes an alert's labels reach, with their keys (Alertmanager's matching: the first
/// matching child takes the alert unless it says `continue`; a route no child takes keeps it).
pub fn route_alert<'r>(route: &'r Route, labels: &Labels) -> Vec<(&'r Route, String)> {
    let mut out = Vec::new();
    walk(route, "{}".to_owned(), labels, &mut out);
    out
}

fn walk<'r>(route: &'r Route, key: String, labels: &Labels, out: &mut Vec<(&'r Route, String)>) -> bool {
    if !all_match(&route.matchers, labels) {
        return false;
    }
    let before = out.len();
    for (i, child) in route.routes.iter().enumerate() {
        let matchers: Vec<&str> = child.matchers.iter().map(|m| m.as_str()).collect();
        let child_key = format!("{key}/{i}{{{}}}", matchers.join(","));
        if walk(child, child_key, labels, out) && !child.continue_matching {
            break;
        }
    }
    if out.len() == before {
        out.push((route, key));
    }
    true
}

/// The labels a route groups by: `["..."]` means every label.
fn group_labels(route: &Route, labels: &Labels) -> Labels {
    if route.group_by.iter().any(|g| g == "...") {
        return labels.clone();
    }
    route
        .group_by
        .iter()
        .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

impl Dispatcher {
    /// Routes every alert into its groups and flushes the groups that are due at `now`.
    pub fn cycle<A: Routable>(
        &mut self,
        route: &Route,
        alerts: &BTreeMap<String, A>,
        muter: &Muter<'_>,
        now: Timestamp,
    ) -> Dispatched {
        let mut out = Dispatched::default();
        // Which alerts each group gets this cycle.
        let mut routed: BTreeMap<String, BTreeSet<&String>> = BTreeMap::new();
        for (fp, alert) in alerts {
            for (leaf, route_key) in route_alert(route, alert.labels()) {
                let labels = group_labels(leaf, alert.labels());
                let key = format!("{route_key}:{}", render(&labels));
                let id = group_id(&leaf.receiver, &key);
                // Receivers that must hear again within `resend` are looked at that often too.
                let (group_interval, repeat_interval) = match self.resend.get(&leaf.receiver) {
                    Some(r) => (leaf.group_interval.min(*r), leaf.repeat_interval.min(*r)),
                    None => (leaf.group_interval, leaf.repeat_interval),
                };
                let group = self.groups.entry(id.clone()).or_insert_with(|| Group {
                    receiver: leaf.receiver.clone(),
                    key,
                    labels,
                    group_wait: leaf.group_wait,
                    group_interval,
                    repeat_interval,
                    alerts: BTreeSet::new(),
                    notified_firing: BTreeSet::new(),
                    last_notified: None,
                    next_flush: now + leaf.group_wait,
                    seq: 0,
                    epoch: now,
                });
                if group.alerts.insert(fp.clone()) {
                    out.changed.insert(id.clone());
                }
                routed.entry(id).or_default().insert(fp);
            }
        }

        let mut muted = BTreeMap::new();
        let none = BTreeSet::new();
        for (id, group) in &mut self.groups {
            let here = routed.get(id).unwrap_or(&none);
            let before = (group.alerts.len(), group.notified_firing.len());
            // Alerts no longer routed here (gone from the state, or their labels or the routes
            // changed) leave the group; so do resolved alerts the receiver never heard of.
            group.alerts.retain(|fp| {
                here.contains(fp)
                    && alerts
                        .get(fp)
                        .is_some_and(|a| a.is_firing() || group.notified_firing.contains(fp))
            });
            group.notified_firing.retain(|fp| group.alerts.contains(fp));
            let mut changed = (group.alerts.len(), group.notified_firing.len()) != before;
            let resolved_now = group
                .alerts
                .iter()
                .any(|fp| !alerts[fp].is_firing() && group.notified_firing.contains(fp));
            if now >= group.next_flush || resolved_now {
                changed = true;
                let mut held = BTreeSet::new();
                let mut firing = Vec::new();
                for fp in group.alerts.iter().filter(|fp| alerts[*fp].is_firing()) {
                    match muter.muted(fp, alerts[fp].labels()) {
                        Some(m) => {
                            muted.insert(fp.clone(), m);
                            held.insert(fp.clone());
                        }
                        None => firing.push(fp.clone()),
                    }
                }
                // The receiver was told these fire: it is told they ended, muted or not.
                let resolved: Vec<String> = group
                    .alerts
                    .iter()
                    .filter(|fp| !alerts[*fp].is_firing() && group.notified_firing.contains(*fp))
                    .cloned()
                    .collect();
                let news = firing.iter().any(|fp| !group.notified_firing.contains(fp));
                let repeat =
                    !firing.is_empty() && group.last_notified.is_some_and(|t| now >= t + group.repeat_interval);
                if news || !resolved.is_empty() || repeat {
                    group.seq += 1;
                    group.last_notified = Some(now);
                    // What the receiver now believes fires: what it was just sent, and what it
                    // knew of before that is muted now.
                    let known_muted: Vec<String> = group.notified_firing.intersection(&held).cloned().collect();
                    group.notified_firing = firing.iter().cloned().chain(known_muted).collect();
                    let hash = fnv1a([group.receiver.as_bytes(), group.key.as_bytes()]);
                    out.flushes.push(Flush {
                        id: format!("{hash:016x}-{:x}-{}", group.epoch.unix_millis(), group.seq),
                        receiver: group.receiver.clone(),
                        group_key: group.key.clone(),
                        group_labels: group.labels.clone(),
                        firing,
                        resolved,
                    });
                }
                // Resolved alerts leave the group, told or not; so does the receiver's memory of them.
                group.alerts.retain(|fp| alerts[fp].is_firing());
                group.notified_firing.retain(|fp| group.alerts.contains(fp));
                if now >= group.next_flush {
                    group.next_flush = now + group.group_interval;
                }
            }
            if changed {
                out.changed.insert(id.clone());
            }
        }
        self.groups.retain(|id, g| {
            let keep = !g.alerts.is_empty();
            if !keep {
                out.removed.push(id.clone());
                out.changed.remove(id);
            }
            keep
        });
        out.muted = muted.into_iter().collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelMatcher;
    use crate::mute::{InhibitRule, Silence};

    #[derive(Debug)]
    struct A {
        labels: Labels,
        firing: bool,
    }
    impl Routable for A {
        fn labels(&self) -> &Labels {
            &self.labels
        }
        fn is_firing(&self) -> bool {
            self.firing
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn route(receiver: &str, matchers: &[&str], children: Vec<Route>, cont: bool) -> Route {
        Route {
            receiver: receiver.into(),
            matchers: matchers.iter().map(|m| LabelMatcher::parse(m).unwrap()).collect(),
            group_by: vec!["slo".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            continue_matching: cont,
            routes: children,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    fn alert(slo: &str, sev: &str, firing: bool) -> (String, A) {
        let l = labels(&[("slo", slo), ("severity", sev)]);
        (crate::labels::fingerprint(&l), A { labels: l, firing })
    }

    fn names(d: &Dispatched) -> Vec<(String, usize, usize)> {
        d.flushes
            .iter()
            .map(|f| (f.receiver.clone(), f.firing.len(), f.resolved.len()))
            .collect()
    }

    #[test]
    fn routing_first_match_continue_and_fallback() {
        let tree = route(
            "default",
            &[],
            vec![
                route("pager", &["severity = page"], vec![], true),
                route("team", &["slo =~ checkout.*"], vec![], false),
                route("never", &["slo =~ checkout.*"], vec![], false),
            ],
            false,
        );
        let leaf =
            |l: &Labels| -> Vec<String> { route_alert(&tree, l).iter().map(|(r, _)| r.receiver.clone()).collect() };
        assert_eq!(
            leaf(&labels(&[("slo", "checkout"), ("severity", "page")])),
            ["pager", "team"]
        );
        assert_eq!(leaf(&labels(&[("slo", "checkout"), ("severity", "ticket")])), ["team"]);
        assert_eq!(leaf(&labels(&[("slo", "search"), ("severity", "ticket")])), ["default"]);
        let keys: Vec<String> = route_alert(&tree, &labels(&[("slo", "checkout"), ("severity", "page")]))
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(keys, ["{}/0{severity = page}", "{}/1{slo =~ checkout.*}"]);
    }

    #[test]
    fn group_wait_then_interval_then_repeat_and_resolved_at_once() {
        let tree = route("r", &[], vec![], false);
        let mut d = Dispatcher::default();
        let mut alerts = BTreeMap::from([alert("checkout", "page", true)]);
        let fp = alerts.keys().next().unwrap().clone();
        let run = |d: &mut Dispatcher, alerts: &BTreeMap<String, A>, now: i64| {
            let firing: Vec<(&str, &Labels)> = alerts
                .iter()
                .filter(|(_, a)| a.firing)
                .map(|(f, a)| (f.as_str(), &a.labels))
                .collect();
            let muter = Muter::new(&[], &[], firing.iter().copied(), t(now));
            d.cycle(&tree, alerts, &muter, t(now))
        };
        assert!(
            run(&mut d, &alerts, 0).flushes.is_empty(),
            "group_wait holds the first notification"
        );
        assert!(run(&mut d, &alerts, 15).flushes.is_empty());
        let first = run(&mut d, &alerts, 30);
        assert_eq!(names(&first), [("r".to_owned(), 1, 0)]);
        assert!(first.flushes[0].id.ends_with("-1"));
        // Still firing: nothing new until repeat_interval.
        for now in (45..4 * 3600 + 30).step_by(15) {
            assert!(run(&mut d, &alerts, now).flushes.is_empty(), "at {now}");
        }
        // group_interval ticks at 330, 630, …, 30 + 48 × 300 = 14,430 = 30 s + repeat_interval.
        assert_eq!(names(&run(&mut d, &alerts, 14_430)), [("r".to_owned(), 1, 0)]);
        // Resolves: the notice goes out in the same cycle, though group_interval has not passed.
        alerts.get_mut(&fp).unwrap().firing = false;
        let resolved = run(&mut d, &alerts, 14_445);
        assert_eq!(names(&resolved), [("r".to_owned(), 0, 1)]);
        assert!(resolved.flushes[0].id.ends_with("-3"));
        assert_eq!(resolved.removed.len(), 1, "the group ends");
        assert!(d.groups.is_empty());
    }

    #[test]
    fn a_new_alert_joins_at_the_next_interval_and_resolved_only_if_told() {
        let tree = route("r", &[], vec![], false);
        let mut d = Dispatcher::default();
        let (fa, a) = alert("checkout", "page", true);
        let (fb, b) = alert("checkout", "ticket", true);
        let mut alerts = BTreeMap::from([(fa.clone(), a)]);
        let run = |d: &mut Dispatcher, alerts: &BTreeMap<String, A>, now: i64| {
            let muter = Muter::new(&[], &[], std::iter::empty(), t(now));
            d.cycle(&tree, alerts, &muter, t(now))
        };
        assert!(run(&mut d, &alerts, 0).flushes.is_empty());
        assert_eq!(names(&run(&mut d, &alerts, 30)), [("r".to_owned(), 1, 0)]);
        alerts.insert(fb.clone(), b);
        assert!(run(&mut d, &alerts, 100).flushes.is_empty(), "waits for group_interval");
        let second = run(&mut d, &alerts, 330);
        assert_eq!(second.flushes[0].firing.len(), 2);
        // An alert that fires and resolves within group_wait of a new group is never announced.
        let mut d = Dispatcher::default();
        let mut alerts = BTreeMap::from([alert("search", "page", true)]);
        run(&mut d, &alerts, 0);
        alerts.values_mut().for_each(|a| a.firing = false);
        let quiet = run(&mut d, &alerts, 15);
        assert!(quiet.flushes.is_empty());
        assert!(d.groups.is_empty());
    }

    #[test]
    fn muted_alerts_are_held_and_announced_when_the_silence_ends() {
        let tree = route("r", &[], vec![], false);
        let mut d = Dispatcher::default();
        let (fp, a) = alert("checkout", "page", true);
        let alerts = BTreeMap::from([(fp.clone(), a)]);
        let silence = [Silence {
            id: "s".into(),
            matchers: vec![LabelMatcher::parse("slo = checkout").unwrap()],
            starts_at: t(0),
            ends_at: t(600),
            created_by: String::new(),
            comment: String::new(),
            created_at: t(0),
        }];
        let rules = [InhibitRule::page_mutes_ticket()];
        let run = |d: &mut Dispatcher, now: i64| {
            let firing = [(fp.as_str(), &alerts[&fp].labels)];
            let muter = Muter::new(&silence, &rules, firing.iter().copied(), t(now));
            d.cycle(&tree, &alerts, &muter, t(now))
        };
        assert!(run(&mut d, 0).flushes.is_empty());
        let held = run(&mut d, 30);
        assert!(held.flushes.is_empty());
        assert_eq!(held.muted, [(fp.clone(), Muted::Silenced)]);
        assert!(run(&mut d, 330).flushes.is_empty());
        // The silence ends at 600; the next group_interval tick (630) announces the alert.
        assert!(run(&mut d, 615).flushes.is_empty());
        assert_eq!(names(&run(&mut d, 630)), [("r".to_owned(), 1, 0)]);
    }

    #[test]
    fn alertmanager_receivers_get_firing_alerts_again_every_resend_interval() {
        let tree = route("am", &[], vec![], false);
        let mut d = Dispatcher::default();
        d.resend.insert("am".into(), Duration::from_secs(60));
        let alerts = BTreeMap::from([alert("checkout", "page", true)]);
        let mut sent = vec![];
        for now in (0..=400).step_by(15) {
            let muter = Muter::new(&[], &[], std::iter::empty(), t(now));
            if !d.cycle(&tree, &alerts, &muter, t(now)).flushes.is_empty() {
                sent.push(now);
            }
        }
        // group_wait 30 s, then every 60 s: the group is looked at as often as it must re-push
        // (Alertmanager lets a pushed alert lapse 4 minutes after its last push).
        assert_eq!(sent, [30, 90, 150, 210, 270, 330, 390]);
        let tree = Route {
            group_interval: Duration::from_secs(30),
            ..tree
        };
        let mut d = Dispatcher::default();
        d.resend.insert("am".into(), Duration::from_secs(60));
        let mut sent = vec![];
        for now in (0..=200).step_by(15) {
            let muter = Muter::new(&[], &[], std::iter::empty(), t(now));
            if !d.cycle(&tree, &alerts, &muter, t(now)).flushes.is_empty() {
                sent.push(now);
            }
        }
        assert_eq!(sent, [30, 90, 150]);
    }

    #[test]
    fn a_group_that_ends_and_returns_never_reuses_an_id() {
        let tree = route("r", &[], vec![], false);
        let mut d = Dispatcher::default();
        let (fp, a) = alert("checkout", "page", true);
        let mut alerts = BTreeMap::from([(fp.clone(), a)]);
        let mut ids = vec![];
        let mut run = |d: &mut Dispatcher, alerts: &BTreeMap<String, A>, now: i64| {
            let muter = Muter::new(&[], &[], std::iter::empty(), t(now));
            ids.extend(d.cycle(&tree, alerts, &muter, t(now)).flushes.into_iter().map(|f| f.id));
        };
        run(&mut d, &alerts, 0);
        run(&mut d, &alerts, 30);
        alerts.get_mut(&fp).unwrap().firing = false;
        run(&mut d, &alerts, 45);
        assert!(d.groups.is_empty());
        alerts.get_mut(&fp).unwrap().firing = true;
        run(&mut d, &alerts, 3_600);
        run(&mut d, &alerts, 3_630);
        assert_eq!(ids.len(), 3, "{ids:?}");
        let unique: BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 3, "{ids:?}");
        assert!(ids[0].ends_with("-1") && ids[1].ends_with("-2") && ids[2].ends_with("-1"));
    }

    #[test]
    fn an_alert_the_receiver_knows_keeps_its_resolved_notice_while_muted() {
        // The ticket is announced, then the page fires and inhibits it; the ticket resolves
        // first: its resolved notice still goes out, and it is never announced twice.
        let tree = route("r", &[], vec![], false);
        let rules = [InhibitRule::page_mutes_ticket()];
        let mut d = Dispatcher::default();
        let (ft, tk) = alert("checkout", "ticket", true);
        let mut alerts = BTreeMap::from([(ft.clone(), tk)]);
        let run = |d: &mut Dispatcher, alerts: &BTreeMap<String, A>, now: i64| {
            let firing: Vec<(&str, &Labels)> = alerts
                .iter()
                .filter(|(_, a)| a.firing)
                .map(|(f, a)| (f.as_str(), &a.labels))
                .collect();
            let muter = Muter::new(&[], &rules, firing.iter().copied(), t(now));
            d.cycle(&tree, alerts, &muter, t(now))
        };
        run(&mut d, &alerts, 0);
        assert_eq!(names(&run(&mut d, &alerts, 30)), [("r".to_owned(), 1, 0)]);
        let (fp, pg) = alert("checkout", "page", true);
        alerts.insert(fp.clone(), pg);
        let page = run(&mut d, &alerts, 330);
        assert_eq!(
            page.flushes[0].firing,
            std::slice::from_ref(&fp),
            "the page, the ticket muted"
        );
        alerts.get_mut(&ft).unwrap().firing = false;
        let resolved = run(&mut d, &alerts, 345);
        assert_eq!(resolved.flushes[0].resolved, std::slice::from_ref(&ft));
        assert!(resolved.flushes[0].firing.is_empty() || resolved.flushes[0].firing == [fp.clone()]);
        // Same story, the page resolving first: the ticket is not announced again.
        let mut d = Dispatcher::default();
        let (ft, tk) = alert("search", "ticket", true);
        let mut alerts = BTreeMap::from([(ft.clone(), tk)]);
        run(&mut d, &alerts, 0);
        run(&mut d, &alerts, 30);
        let (fp, pg) = alert("search", "page", true);
        alerts.insert(fp.clone(), pg);
        run(&mut d, &alerts, 330);
        alerts.get_mut(&fp).unwrap().firing = false;
        let after = run(&mut d, &alerts, 345);
        assert_eq!(after.flushes.len(), 1);
        // The ticket rides along (a notification lists its group's firing alerts), as known.
        assert_eq!(after.flushes[0].firing, [ft]);
        assert_eq!(after.flushes[0].resolved, [fp]);
    }

    #[test]
    fn an_alert_whose_route_changes_leaves_its_old_group() {
        let mut d = Dispatcher::default();
        let alerts = BTreeMap::from([alert("checkout", "page", true)]);
        let before = route("a", &[], vec![], false);
        let after = route("b", &[], vec![], false);
        for (tree, now) in [(&before, 0), (&before, 30), (&after, 45)] {
            let muter = Muter::new(&[], &[], std::iter::empty(), t(now));
            d.cycle(tree, &alerts, &muter, t(now));
        }
        let receivers: Vec<_> = d.groups.values().map(|g| g.receiver.as_str()).collect();
        assert_eq!(receivers, ["b"]);
    }
}
