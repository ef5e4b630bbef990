//! The retention policy engine: which snapshots of one group to keep, and why.
//!
//! Pure: snapshots and a policy in, one decision per snapshot out; no I/O.
//! Semantics follow restic's `forget` where the two overlap:
//!
//! - Snapshots are considered newest first.
//! - `last N` keeps the N newest.
//! - `hourly/daily/weekly/monthly/yearly N` keep, for each of the N most
//!   recent periods that have snapshots, the newest snapshot of the period.
//!   Periods are calendar periods in the given time zone (weeks are ISO
//!   weeks), so a DST change makes one day 23 or 25 hours long, and the
//!   repeated hour at the end of summer time is one hourly period.
//! - `within D` keeps every snapshot taken within D of the newest one (not
//!   of now: a host that stopped backing up keeps its last snapshots).
//! - `within_hourly D` etc. keep the newest snapshot of each period within D
//!   of the newest snapshot.
//! - `tags` keeps snapshots carrying any of the tags; a protected snapshot
//!   is always kept.
//!
//! A snapshot kept by several rules lists every reason. A count of
//! [`UNLIMITED`] keeps every period.

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::Serialize;

/// A count that keeps every period.
pub const UNLIMITED: u32 = u32::MAX;

/// Calendar periods for the bucketed rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// One per hour of local time.
    Hourly,
    /// One per local calendar day.
    Daily,
    /// One per ISO week.
    Weekly,
    /// One per calendar month.
    Monthly,
    /// One per calendar year.
    Yearly,
}

impl Period {
    /// All periods, shortest first.
    pub const ALL: [Period; 5] = [Period::Hourly, Period::Daily, Period::Weekly, Period::Monthly, Period::Yearly];

    /// Identifies the period `t` falls in.
    fn bucket(self, t: Timestamp, tz: &TimeZone) -> i64 {
        let z = t.to_zoned_datetime(tz.clone());
        let (y, m, d, h) = (i64::from(z.year()), i64::from(z.month()), i64::from(z.day()), i64::from(z.hour()));
        match self {
            Period::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
            Period::Daily => (y * 100 + m) * 100 + d,
            Period::Weekly => {
                let w = z.date().iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Period::Monthly => y * 100 + m,
            Period::Yearly => y,
        }
    }

    /// Lower-case name, as in `--keep-daily`.
    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

/// What to keep. The default keeps nothing: callers refuse an empty policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Keep the newest N snapshots.
    pub last: u32,
    /// Keep the newest snapshot of each of the N most recent hours with snapshots.
    pub hourly: u32,
    /// ... days.
    pub daily: u32,
    /// ... ISO weeks.
    pub weekly: u32,
    /// ... months.
    pub monthly: u32,
    /// ... years.
    pub yearly: u32,
    /// Keep everything within this span of the newest snapshot.
    pub within: Option<Span>,
    /// Keep the newest snapshot of each period within the span.
    pub within_periods: Vec<(Period, Span)>,
    /// Keep snapshots carrying any of these tags.
    pub tags: Vec<String>,
}

impl Policy {
    /// How many periods of this length to keep.
    pub fn count(&self, period: Period) -> u32 {
        match period {
            Period::Hourly => self.hourly,
            Period::Daily => self.daily,
            Period::Weekly => self.weekly,
            Period::Monthly => self.monthly,
            Period::Yearly => self.yearly,
        }
    }

    /// True when no rule keeps anything: applying it would remove every
    /// unprotected snapshot, which is never what a user means.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && Period::ALL.iter().all(|p| self.count(*p) == 0)
            && self.within.is_none()
            && self.within_periods.is_empty()
            && self.tags.is_empty()
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule", content = "value")]
pub enum Reason {
    /// Protected (`cairn tag --protect`).
    Protected,
    /// Among the newest N.
    Last,
    /// Newest of its period.
    Period(Period),
    /// Within the span of the newest snapshot.
    Within(String),
    /// Newest of its period within the span.
    WithinPeriod(Period, String),
    /// Carries this tag.
    Tag(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Protected => write!(f, "protected"),
            Reason::Last => write!(f, "last snapshot"),
            Reason::Period(p) => write!(f, "{} snapshot", p.name()),
            Reason::Within(s) => write!(f, "within {s}"),
            Reason::WithinPeriod(p, s) => write!(f, "{} within {s}", p.name()),
            Reason::Tag(t) => write!(f, "tag {t}"),
        }
    }
}

/// What the engine needs to know about one snapshot.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// When it was taken.
    pub time: Timestamp,
    /// Its tags.
    pub tags: &'a [String],
    /// Never removed.
    pub protected: bool,
}

/// Decides for each snapshot of one group whether it is kept (a non-empty
/// list of reasons) or removed (an empty list). The result is in the order
/// of `snapshots`, which may be in any order.
pub fn apply(policy: &Policy, snapshots: &[Candidate<'_>], tz: &TimeZone) -> Vec<Vec<Reason>> {
    let mut order: Vec<usize> = (0..snapshots.len()).collect();
    // Newest first; equal times in a stable order.
    order.sort_by(|a, b| snapshots[*b].time.cmp(&snapshots[*a].time).then(a.cmp(b)));
    let mut reasons = vec![Vec::new(); snapshots.len()];
    let Some(&newest) = order.first() else {
        return reasons;
    };
    let newest = snapshots[newest].time;
    let since = |span: &Span| newest.to_zoned_datetime(tz.clone()).checked_sub(*span).map(|z| z.timestamp()).ok();

    let mut last_left = policy.last;
    let mut period_left: Vec<(Period, u32, Option<i64>)> =
        Period::ALL.iter().map(|p| (*p, policy.count(*p), None)).filter(|(_, n, _)| *n > 0).collect();
    let mut within_periods: Vec<(Period, &Span, Option<Timestamp>, Option<i64>)> =
        policy.within_periods.iter().map(|(p, s)| (*p, s, since(s), None)).collect();
    let within = policy.within.as_ref().map(|s| (s, since(s)));

    for &i in &order {
        let snap = &snapshots[i];
        let r = &mut reasons[i];
        if snap.protected {
            r.push(Reason::Protected);
        }
        if last_left > 0 {
            r.push(Reason::Last);
            if last_left != UNLIMITED {
                last_left -= 1;
            }
        }
        for (period, left, last) in &mut period_left {
            let b = period.bucket(snap.time, tz);
            if *left > 0 && *last != Some(b) {
                r.push(Reason::Period(*period));
                *last = Some(b);
                if *left != UNLIMITED {
                    *left -= 1;
                }
            }
        }
        if let Some((span, from)) = &within {
            // A span reaching before the start of time keeps everything.
            if from.is_none_or(|f| snap.time >= f) {
                r.push(Reason::Within(span.to_string()));
            }
        }
        for (period, span, from, last) in &mut within_periods {
            if from.is_none_or(|f| snap.time >= f) {
                let b = period.bucket(snap.time, tz);
                if *last != Some(b) {
                    r.push(Reason::WithinPeriod(*period, span.to_string()));
                    *last = Some(b);
                }
            }
        }
        for t in &policy.tags {
            if snap.tags.contains(t) {
                r.push(Reason::Tag(t.clone()));
            }
        }
    }
    reasons
}

/// Parses a restic-style duration such as `2y6m`, `14d`, `36h` or `1y2m3d4h`
/// (y years, m months, w weeks, d days, h hours).
pub fn parse_span(s: &str) -> Result<Span, String> {
    let bad = || format!("invalid duration {s:?}: use a number and a unit y, m, w, d or h, e.g. 7d or 1y6m");
    let mut span = Span::new();
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        span = match c {
            'y' => span.try_years(n),
            'm' => span.try_months(n),
            'w' => span.try_weeks(n),
            'd' => span.try_days(n),
            'h' => span.try_hours(n),
            _ => return Err(bad()),
        }
        .map_err(|_| bad())?;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// Runs the policy over snapshots at `times` (no tags, none protected)
    /// and returns the kept times, newest first.
    fn kept(policy: &Policy, times: &[Timestamp], tz: &TimeZone) -> Vec<Timestamp> {
        let c: Vec<Candidate> = times.iter().map(|t| Candidate { time: *t, tags: &[], protected: false }).collect();
        let r = apply(policy, &c, tz);
        let mut k: Vec<Timestamp> = times.iter().zip(&r).filter(|(_, r)| !r.is_empty()).map(|(t, _)| *t).collect();
        k.sort_by(|a, b| b.cmp(a));
        k
    }

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    /// Central European time with its DST rules, self-contained (no tzdb).
    fn berlin() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("posix tz")
    }

    #[test]
    fn last_n_keeps_the_newest() {
        let times: Vec<Timestamp> = (1..=5).map(|d| ts(&format!("2026-01-0{d}T12:00Z"))).collect();
        let p = Policy { last: 3, ..Policy::default() };
        assert_eq!(kept(&p, &times, &utc()), vec![times[4], times[3], times[2]]);
    }

    #[test]
    fn two_years_of_dailies() {
        // 730 snapshots, one a day at 02:00 from 2024-01-01 to 2025-12-30.
        let start = ts("2024-01-01T02:00Z");
        let times: Vec<Timestamp> = (0..730)
            .map(|d| start.to_zoned_datetime(TimeZone::UTC).checked_add(Span::new().days(d)).unwrap().timestamp())
            .collect();
        assert_eq!(times[729], ts("2025-12-30T02:00Z"));
        let p = Policy { daily: 7, weekly: 4, monthly: 12, yearly: 3, ..Policy::default() };
        let day = |s: &str| ts(&format!("{s}T02:00Z"));
        let mut want: Vec<Timestamp> = [
            // daily 7
            "2025-12-30",
            "2025-12-29",
            "2025-12-28",
            "2025-12-27",
            "2025-12-26",
            "2025-12-25",
            "2025-12-24",
            // weekly 4: ISO weeks 2026-W01 (Dec 29-30), 2025-W52, W51, W50
            "2025-12-21",
            "2025-12-14",
            // monthly 12: the last day of each month of 2025
            "2025-11-30",
            "2025-10-31",
            "2025-09-30",
            "2025-08-31",
            "2025-07-31",
            "2025-06-30",
            "2025-05-31",
            "2025-04-30",
            "2025-03-31",
            "2025-02-28",
            "2025-01-31",
            // yearly 3: only two years exist
            "2024-12-31",
        ]
        .iter()
        .map(|s| day(s))
        .collect();
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(kept(&p, &times, &utc()), want);
    }

    #[test]
    fn irregular_calendar() {
        let times: Vec<Timestamp> = [
            "2026-01-01T10:00Z",
            "2026-01-01T18:00Z",
            "2026-01-03T09:00Z",
            "2026-01-10T12:00Z",
            "2026-02-15T08:00Z",
            "2026-02-15T20:00Z",
            "2026-03-01T00:30Z",
        ]
        .iter()
        .map(|s| ts(s))
        .collect();
        let p = Policy { daily: 3, monthly: 3, ..Policy::default() };
        assert_eq!(kept(&p, &times, &utc()), vec![times[6], times[5], times[3]]);
    }

    #[test]
    fn within_is_relative_to_the_newest_snapshot_not_now() {
        let times: Vec<Timestamp> =
            ["2020-05-10T12:00Z", "2020-05-09T12:00Z", "2020-05-08T12:00Z", "2020-05-08T11:59Z", "2020-05-01T00:00Z"]
                .iter()
                .map(|s| ts(s))
                .collect();
        let p = Policy { within: Some(parse_span("2d").unwrap()), ..Policy::default() };
        assert_eq!(kept(&p, &times, &utc()), vec![times[0], times[1], times[2]]);
    }

    #[test]
    fn within_daily_keeps_one_a_day_in_the_window() {
        let mut times = Vec::new();
        for d in 1..=5 {
            for h in [0, 6, 12, 18] {
                times.push(ts(&format!("2026-06-0{d}T{h:02}:00Z")));
            }
        }
        let p = Policy { within_periods: vec![(Period::Daily, parse_span("3d").unwrap())], ..Policy::default() };
        let want: Vec<Timestamp> = (2..=5).rev().map(|d| ts(&format!("2026-06-0{d}T18:00Z"))).collect();
        assert_eq!(kept(&p, &times, &utc()), want);
    }

    #[test]
    fn tags_and_protection_keep_regardless_of_age() {
        let tags = [vec![], vec!["monthly-archive".to_string()], vec![], vec![]];
        let times: Vec<Timestamp> =
            ["2026-01-04T00:00Z", "2026-01-03T00:00Z", "2026-01-02T00:00Z", "2026-01-01T00:00Z"].map(ts).to_vec();
        let c: Vec<Candidate> = times
            .iter()
            .zip(&tags)
            .enumerate()
            .map(|(i, (t, tags))| Candidate { time: *t, tags, protected: i == 3 })
            .collect();
        let p = Policy { last: 1, tags: vec!["monthly-archive".into()], ..Policy::default() };
        let r = apply(&p, &c, &utc());
        assert_eq!(r[0], vec![Reason::Last]);
        assert_eq!(r[1], vec![Reason::Tag("monthly-archive".into())]);
        assert!(r[2].is_empty());
        assert_eq!(r[3], vec![Reason::Protected]);
    }

    #[test]
    fn spring_forward_days_follow_local_time() {
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let times: Vec<Timestamp> = [
            "2026-03-28T22:00Z", // 23:00 CET, Mar 28
            "2026-03-28T23:00Z", // 00:00 CET, Mar 29
            "2026-03-29T00:00Z", // 01:00 CET
            "2026-03-29T01:00Z", // 03:00 CEST
            "2026-03-29T02:00Z", // 04:00 CEST
            "2026-03-29T03:00Z", // 05:00 CEST
        ]
        .map(ts)
        .to_vec();
        let p = Policy { daily: 2, ..Policy::default() };
        assert_eq!(kept(&p, &times, &berlin()), vec![times[5], times[0]]);
        // In UTC the day boundary falls elsewhere.
        assert_eq!(kept(&p, &times, &utc()), vec![times[5], times[1]]);
    }

    #[test]
    fn fall_back_repeated_hour_is_one_hourly_period() {
        // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
        let times: Vec<Timestamp> = [
            "2026-10-25T00:00Z", // 02:00 CEST
            "2026-10-25T00:30Z", // 02:30 CEST
            "2026-10-25T01:00Z", // 02:00 CET
            "2026-10-25T01:30Z", // 02:30 CET
            "2026-10-25T02:00Z", // 03:00 CET
        ]
        .map(ts)
        .to_vec();
        let p = Policy { hourly: 10, ..Policy::default() };
        assert_eq!(kept(&p, &times, &berlin()), vec![times[4], times[3]]);
    }

    #[test]
    fn iso_weeks_cross_the_new_year() {
        // 2026 has 53 ISO weeks: W53 runs from Mon 2026-12-28 to Sun 2027-01-03.
        let times: Vec<Timestamp> =
            ["2026-12-31T12:00Z", "2027-01-01T12:00Z", "2027-01-03T12:00Z", "2027-01-04T12:00Z"].map(ts).to_vec();
        let p = Policy { weekly: 2, yearly: 2, ..Policy::default() };
        assert_eq!(kept(&p, &times, &utc()), vec![times[3], times[2], times[0]]);
    }

    #[test]
    fn unlimited_keeps_every_period() {
        let times: Vec<Timestamp> = [
            "2026-04-01T01:00Z",
            "2026-04-01T05:00Z",
            "2026-04-02T01:00Z",
            "2026-04-02T02:00Z",
            "2026-04-02T03:00Z",
            "2026-04-05T09:00Z",
            "2026-04-09T09:00Z",
            "2026-04-09T10:00Z",
        ]
        .map(ts)
        .to_vec();
        let p = Policy { daily: UNLIMITED, ..Policy::default() };
        assert_eq!(kept(&p, &times, &utc()), vec![times[7], times[5], times[4], times[1]]);
    }

    #[test]
    fn monthly_and_yearly_over_a_decade_of_weeklies() {
        // Every Sunday 03:00 from 2016-01-03 for ten years (522 weeks).
        let start = ts("2016-01-03T03:00Z");
        let times: Vec<Timestamp> = (0..522)
            .map(|w| start.to_zoned_datetime(TimeZone::UTC).checked_add(Span::new().weeks(w)).unwrap().timestamp())
            .collect();
        assert_eq!(times[521], ts("2025-12-28T03:00Z"));
        let p = Policy { monthly: 3, yearly: 5, ..Policy::default() };
        let want: Vec<Timestamp> = [
            "2025-12-28", // newest: December, 2025
            "2025-11-30", // November
            "2025-10-26", // October
            "2024-12-29", // last Sunday of 2024
            "2023-12-31",
            "2022-12-25",
            "2021-12-26",
        ]
        .map(|d| ts(&format!("{d}T03:00Z")))
        .to_vec();
        assert_eq!(kept(&p, &times, &utc()), want);
    }

    #[test]
    fn empty_policy_and_durations() {
        assert!(Policy::default().is_empty());
        assert!(!Policy { hourly: 1, ..Policy::default() }.is_empty());
        assert_eq!(parse_span("1y6m").unwrap().get_years(), 1);
        assert_eq!(parse_span("1y6m").unwrap().get_months(), 6);
        assert_eq!(parse_span("36h").unwrap().get_hours(), 36);
        for bad in ["", "7", "d", "7x", "-1d", "1.5d"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
    }
}
