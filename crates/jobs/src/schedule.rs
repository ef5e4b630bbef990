//! When a job runs: `hourly`, `hourly :MM`, `daily HH:MM`, `weekly DAY
//! HH:MM`, `monthly D HH:MM`, or a five-field cron expression (minute hour
//! day-of-month month day-of-week; numbers, `*`, lists, ranges and steps).
//! Every form becomes the same sets of allowed minutes, hours, days,
//! months and weekdays, written out for systemd (`OnCalendar=`) and cron,
//! and searched for the next run.

use std::collections::BTreeSet;
use std::fmt;

use jiff::civil::DateTime;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    /// 0 = Sunday, as cron counts.
    weekdays: BTreeSet<u8>,
    text: String,
}

const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn all(lo: u8, hi: u8) -> BTreeSet<u8> {
    (lo..=hi).collect()
}

fn one(v: u8) -> BTreeSet<u8> {
    BTreeSet::from([v])
}

/// `HH:MM`.
fn time_of_day(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    (h < 24 && m < 60 && s.len() >= 4).then_some((h, m))
}

/// One cron field: `*`, `N`, `A-B`, `*/S`, `A-B/S`, and lists of those.
fn field(s: &str, lo: u8, hi: u8, names: &[&str]) -> Option<BTreeSet<u8>> {
    let value = |v: &str| -> Option<u8> {
        let n = match names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            Some(i) => i as u8 + lo,
            None => v.parse().ok()?,
        };
        (lo..=hi).contains(&n).then_some(n)
    };
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u8>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, hi),
                None => (value(r)?, value(r)?),
            },
        };
        if a > b {
            return None;
        }
        out.extend((a..=b).step_by(step as usize));
    }
    Some(out)
}

impl Schedule {
    /// Parses a schedule; the error says what forms there are.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let bad = || {
            format!(
                "invalid schedule {text:?}: use hourly, hourly :MM, daily HH:MM, weekly DAY HH:MM, monthly D HH:MM, or a cron expression (5 fields)"
            )
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let at = |s: &str| time_of_day(s).ok_or_else(bad);
        let mut s = Schedule {
            minutes: one(0),
            hours: all(0, 23),
            days: all(1, 31),
            months: all(1, 12),
            weekdays: all(0, 6),
            text: text.trim().to_string(),
        };
        match words.as_slice() {
            ["hourly"] => {}
            ["hourly", m] => {
                let m: u8 = m.strip_prefix(':').and_then(|m| m.parse().ok()).filter(|m| *m < 60).ok_or_else(bad)?;
                s.minutes = one(m);
            }
            ["daily", t] => {
                let (h, m) = at(t)?;
                (s.hours, s.minutes) = (one(h), one(m));
            }
            ["weekly", d, t] => {
                let (h, m) = at(t)?;
                let day = WEEKDAYS.iter().position(|w| w.eq_ignore_ascii_case(&d[..d.len().min(3)])).ok_or_else(bad)?;
                (s.hours, s.minutes, s.weekdays) = (one(h), one(m), one(day as u8));
            }
            ["monthly", d, t] => {
                let (h, m) = at(t)?;
                let day: u8 = d.parse().ok().filter(|d| (1..=28).contains(d)).ok_or_else(|| {
                    format!("invalid schedule {text:?}: the day of a monthly run is 1 to 28 (every month has it)")
                })?;
                (s.hours, s.minutes, s.days) = (one(h), one(m), one(day));
            }
            [mi, h, dom, mon, dow] => {
                s.minutes = field(mi, 0, 59, &[]).ok_or_else(bad)?;
                s.hours = field(h, 0, 23, &[]).ok_or_else(bad)?;
                s.days = field(dom, 1, 31, &[]).ok_or_else(bad)?;
                s.months = field(mon, 1, 12, &[]).ok_or_else(bad)?;
                // Cron allows 7 for Sunday too.
                let mut wd = field(dow, 0, 7, &WEEKDAYS).ok_or_else(bad)?;
                if wd.remove(&7) {
                    wd.insert(0);
                }
                s.weekdays = wd;
                // Cron runs when either restricted day field matches;
                // systemd when both do. Rather than differ, refuse.
                if s.days.len() < 31 && s.weekdays.len() < 7 {
                    return Err(format!(
                        "invalid schedule {text:?}: restrict the day of the month or the day of the week, not both"
                    ));
                }
            }
            _ => return Err(bad()),
        }
        Ok(s)
    }

    /// The first run time strictly after `after` (minute precision), within
    /// the next eight years; None if the schedule names no real day (31
    /// February).
    pub fn next_after(&self, after: DateTime) -> Option<DateTime> {
        let mut t = after
            .round(jiff::civil::DateTimeRound::new().smallest(jiff::Unit::Minute).mode(jiff::RoundMode::Trunc))
            .ok()?;
        t = t.checked_add(jiff::Span::new().minutes(1)).ok()?;
        let end = after.checked_add(jiff::Span::new().years(8)).ok()?;
        while t <= end {
            let (month, day, weekday) = (t.month() as u8, t.day() as u8, t.weekday().to_sunday_zero_offset() as u8);
            if !self.months.contains(&month) || !self.days.contains(&day) || !self.weekdays.contains(&weekday) {
                // The next day's first minute.
                t = t.date().tomorrow().ok()?.to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !self.hours.contains(&(t.hour() as u8)) {
                t = t.checked_add(jiff::Span::new().hours(1)).ok()?.with().minute(0).build().ok()?;
                continue;
            }
            if self.minutes.contains(&(t.minute() as u8)) {
                return Some(t);
            }
            t = t.checked_add(jiff::Span::new().minutes(1)).ok()?;
        }
        None
    }

    /// systemd's `OnCalendar=` for it.
    pub fn on_calendar(&self) -> String {
        let list = |set: &BTreeSet<u8>, full: usize, width: usize| {
            if set.len() == full {
                "*".to_string()
            } else {
                set.iter().map(|v| format!("{v:0width$}")).collect::<Vec<_>>().join(",")
            }
        };
        let days = if self.weekdays.len() == 7 {
            String::new()
        } else {
            let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
            format!("{} ", self.weekdays.iter().map(|d| names[*d as usize]).collect::<Vec<_>>().join(","))
        };
        format!(
            "{days}*-{}-{} {}:{}:00",
            list(&self.months, 12, 2),
            list(&self.days, 31, 2),
            list(&self.hours, 24, 2),
            list(&self.minutes, 60, 2)
        )
    }

    /// The five time fields of a crontab line for it.
    pub fn cron(&self) -> String {
        let list = |set: &BTreeSet<u8>, full: usize| {
            if set.len() == full {
                "*".to_string()
            } else {
                set.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
            }
        };
        format!(
            "{} {} {} {} {}",
            list(&self.minutes, 60),
            list(&self.hours, 24),
            list(&self.days, 31),
            list(&self.months, 12),
            list(&self.weekdays, 7)
        )
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule).unwrap().next_after(at(after)).unwrap().to_string()
    }

    #[test]
    fn each_form_runs_when_it_says() {
        assert_eq!(next("daily 02:00", "2026-12-06T08:00"), "2026-12-07T02:00:00");
        assert_eq!(next("daily 02:00", "2026-12-06T01:59:30"), "2026-12-06T02:00:00");
        assert_eq!(next("hourly", "2026-12-06T08:00"), "2026-12-06T09:00:00");
        assert_eq!(next("hourly :15", "2026-12-06T08:20"), "2026-12-06T09:15:00");
        // 2026-12-06 is a Sunday.
        assert_eq!(next("weekly mon 03:30", "2026-12-06T08:00"), "2026-12-07T03:30:00");
        assert_eq!(next("weekly Sunday 03:30", "2026-12-06T08:00"), "2026-12-13T03:30:00");
        assert_eq!(next("monthly 1 04:00", "2026-12-06T08:00"), "2027-01-01T04:00:00");
        assert_eq!(next("*/15 * * * *", "2026-12-06T08:07"), "2026-12-06T08:15:00");
        assert_eq!(next("0 2 * * 1-5", "2026-12-05T08:00"), "2026-12-07T02:00:00");
        assert_eq!(next("30 4 29 2 *", "2026-12-06T08:00"), "2028-02-29T04:30:00");
        assert_eq!(Schedule::parse("0 0 31 2 *").unwrap().next_after(at("2026-01-01T00:00")), None);
    }

    #[test]
    fn mistakes_are_refused_with_the_forms() {
        for bad in [
            "",
            "daily",
            "daily 25:00",
            "daily 2",
            "weekly xyz 02:00",
            "monthly 31 02:00",
            "60 * * * *",
            "* * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "0 2 1 * 1",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn systemd_and_cron_get_the_same_times() {
        let s = Schedule::parse("daily 02:00").unwrap();
        assert_eq!((s.on_calendar(), s.cron()), ("*-*-* 02:00:00".into(), "0 2 * * *".into()));
        let s = Schedule::parse("weekly mon 03:30").unwrap();
        assert_eq!((s.on_calendar(), s.cron()), ("Mon *-*-* 03:30:00".into(), "30 3 * * 1".into()));
        let s = Schedule::parse("0,30 8-9 * * sat,sun").unwrap();
        assert_eq!(s.on_calendar(), "Sun,Sat *-*-* 08,09:00,30:00");
        assert_eq!(s.cron(), "0,30 8,9 * * 0,6");
    }
}
