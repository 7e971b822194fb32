//! Cron schedules for reports. Users write Unix 5-field cron (`0 9 * * 1` = Mondays 09:00);
//! the `cron` crate wants 6 or 7 fields with seconds first and counts day-of-week from 1 = Sunday.
//! A 5-field expression is converted; a 6/7-field one is taken as the crate reads it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A parsed schedule, remembering what the user wrote.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct CronSchedule {
    pub text: String,
    pub schedule: cron::Schedule,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.text)
    }
}

impl TryFrom<String> for CronSchedule {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let schedule = parse(&text)?;
        Ok(CronSchedule { text, schedule })
    }
}

pub fn parse(text: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let bad = |why: String| format!("invalid cron schedule {text:?}: {why}");
    let expr = match fields.len() {
        5 => {
            let dow = unix_day_of_week(fields[4]).map_err(bad)?;
            format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], dow)
        }
        6 | 7 => fields.join(" "),
        1 if fields[0].starts_with('@') => fields[0].to_owned(),
        n => {
            return Err(bad(format!(
                "expected 5 fields (minute hour day month weekday) or 6/7 with seconds, got {n}"
            )));
        }
    };
    cron::Schedule::from_str(&expr).map_err(|e| bad(e.to_string()))
}

/// Unix day-of-week (0 or 7 = Sunday … 6 = Saturday) to the crate's (1 = Sunday … 7 = Saturday).
/// Numeric parts are expanded to explicit lists, so ranges that wrap through 7 stay right.
fn unix_day_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut out = Vec::new();
    for part in field.split(',') {
        if part.chars().any(|c| c.is_ascii_alphabetic()) {
            out.push(part.to_owned()); // names such as MON or Mon-Fri mean the same in both
            continue;
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in day-of-week {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("zero step in day-of-week {part:?}"));
        }
        let (lo, hi) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None if step > 1 => (day(r)?, 6),
                None => (day(r)?, day(r)?),
            },
        };
        if lo > hi {
            return Err(format!("day-of-week range {part:?} runs backwards"));
        }
        out.extend((lo..=hi).step_by(step as usize).map(|d| (d % 7 + 1).to_string()));
    }
    out.dedup();
    Ok(out.join(","))
}

fn day(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(d) if d <= 7 => Ok(d),
        _ => Err(format!("day-of-week {s:?} is not 0-7")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    fn next(expr: &str, after: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        parse(expr).unwrap().after(&after).next().unwrap()
    }

    #[test]
    fn unix_monday_is_monday() {
        // 2026-11-22 is a Sunday.
        let sunday = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(sunday.weekday(), Weekday::Sun);
        let got = next("0 9 * * 1", sunday);
        assert_eq!(got, Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
        assert_eq!(got.weekday(), Weekday::Mon);
    }

    #[test]
    fn day_of_week_conversions() {
        let cases = [
            ("1", "2"),
            ("0", "1"),
            ("7", "1"),
            ("1-5", "2,3,4,5,6"),
            ("5-7", "6,7,1"),
            ("*/2", "1,3,5,7"),
            ("1-5/2", "2,4,6"),
            ("MON-FRI", "MON-FRI"),
            ("*", "*"),
        ];
        for (unix, want) in cases {
            assert_eq!(unix_day_of_week(unix).unwrap(), want, "{unix}");
        }
    }

    #[test]
    fn weekdays_and_six_field_forms() {
        let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
        assert_eq!(
            next("30 8 * * 1-5", saturday),
            Utc.with_ymd_and_hms(2026, 11, 30, 8, 30, 0).unwrap()
        );
        // 6-field, crate semantics: seconds first, Mon by name.
        assert_eq!(
            next("0 0 9 * * Mon", saturday),
            Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
        );
        // First of the month.
        assert_eq!(
            next("0 8 1 * *", saturday),
            Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
        );
    }

    #[test]
    fn errors_name_the_expression() {
        assert_eq!(
            parse("0 9 * *").unwrap_err(),
            "invalid cron schedule \"0 9 * *\": expected 5 fields (minute hour day month weekday) or 6/7 with seconds, got 4"
        );
        assert_eq!(
            parse("0 9 * * 8").unwrap_err(),
            "invalid cron schedule \"0 9 * * 8\": day-of-week \"8\" is not 0-7"
        );
        assert!(
            parse("61 9 * * 1")
                .unwrap_err()
                .starts_with("invalid cron schedule \"61 9 * * 1\": ")
        );
    }
}
