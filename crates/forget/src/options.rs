//! The retention options as a user gives them (`--keep-daily 7` on the
//! command line, `keep = { daily = 7 }` in the config file), defined once
//! and turned into a [`Policy`].

use jiff::Span;
use serde::Deserialize;

use crate::policy::{Period, Policy, UNLIMITED, parse_span};

/// `--keep-*`: which snapshots a retention run keeps.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct KeepOptions {
    /// Keep the newest N snapshots.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", value_parser = parse_count))]
    #[serde(rename = "last", default, deserialize_with = "count")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", value_parser = parse_count))]
    #[serde(rename = "hourly", default, deserialize_with = "count")]
    pub keep_hourly: Option<u32>,
    /// ... of the last N days.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", value_parser = parse_count))]
    #[serde(rename = "daily", default, deserialize_with = "count")]
    pub keep_daily: Option<u32>,
    /// ... of the last N ISO weeks.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", value_parser = parse_count))]
    #[serde(rename = "weekly", default, deserialize_with = "count")]
    pub keep_weekly: Option<u32>,
    /// ... of the last N months.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", value_parser = parse_count))]
    #[serde(rename = "monthly", default, deserialize_with = "count")]
    pub keep_monthly: Option<u32>,
    /// ... of the last N years.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", value_parser = parse_count))]
    #[serde(rename = "yearly", default, deserialize_with = "count")]
    pub keep_yearly: Option<u32>,
    /// Keep all snapshots within this duration of the newest (e.g. 7d, 1y6m, 36h).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION", value_parser = parse_span))]
    #[serde(rename = "within", default, deserialize_with = "span")]
    pub keep_within: Option<Span>,
    /// Keep the newest snapshot of each hour within this duration of the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION", value_parser = parse_span))]
    #[serde(rename = "within-hourly", default, deserialize_with = "span")]
    pub keep_within_hourly: Option<Span>,
    /// ... of each day.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION", value_parser = parse_span))]
    #[serde(rename = "within-daily", default, deserialize_with = "span")]
    pub keep_within_daily: Option<Span>,
    /// ... of each ISO week.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION", value_parser = parse_span))]
    #[serde(rename = "within-weekly", default, deserialize_with = "span")]
    pub keep_within_weekly: Option<Span>,
    /// ... of each month.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION", value_parser = parse_span))]
    #[serde(rename = "within-monthly", default, deserialize_with = "span")]
    pub keep_within_monthly: Option<Span>,
    /// ... of each year.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION", value_parser = parse_span))]
    #[serde(rename = "within-yearly", default, deserialize_with = "span")]
    pub keep_within_yearly: Option<Span>,
    /// Keep snapshots with this tag (repeatable; `a,b` gives two).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TAG"))]
    #[serde(rename = "tags", default)]
    pub keep_tag: Vec<String>,
}

/// A count of periods or snapshots: a number, or `-1`/`unlimited` for all.
pub fn parse_count(s: &str) -> Result<u32, String> {
    match s.trim() {
        "-1" | "unlimited" => Ok(UNLIMITED),
        t => t.parse().map_err(|_| format!("invalid count {s:?}: use a number, or -1 for unlimited")),
    }
}

/// A count in a config file: a number, `-1` or `"unlimited"`.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(i64),
        Word(String),
    }
    let text = match Count::deserialize(d)? {
        Count::Number(n) => n.to_string(),
        Count::Word(w) => w,
    };
    parse_count(&text).map(Some).map_err(serde::de::Error::custom)
}

/// A duration in a config file (`"1y6m"`).
fn span<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
    parse_span(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

impl KeepOptions {
    /// The policy these options ask for.
    pub fn policy(&self) -> Policy {
        let within_periods = [
            (Period::Hourly, self.keep_within_hourly),
            (Period::Daily, self.keep_within_daily),
            (Period::Weekly, self.keep_within_weekly),
            (Period::Monthly, self.keep_within_monthly),
            (Period::Yearly, self.keep_within_yearly),
        ]
        .into_iter()
        .filter_map(|(p, s)| s.map(|s| (p, s)))
        .collect();
        Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within: self.keep_within,
            within_periods,
            tags: self
                .keep_tag
                .iter()
                .flat_map(|t| t.split(','))
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_the_policy_they_name() {
        let o = KeepOptions {
            keep_daily: Some(7),
            keep_within_weekly: Some(parse_span("1m").unwrap()),
            keep_tag: vec!["a,b".into(), ",".into()],
            ..KeepOptions::default()
        };
        let p = o.policy();
        assert_eq!((p.daily, p.last, p.tags), (7, 0, vec!["a".to_string(), "b".to_string()]));
        assert_eq!(p.within_periods.len(), 1);
        assert_eq!(p.within_periods[0].0, Period::Weekly);
        assert!(KeepOptions::default().policy().is_empty());
    }

    #[test]
    fn counts_take_unlimited() {
        assert_eq!(parse_count("-1"), Ok(UNLIMITED));
        assert_eq!(parse_count("unlimited"), Ok(UNLIMITED));
        assert_eq!(parse_count("30"), Ok(30));
        assert!(parse_count("-2").is_err());
        assert!(parse_count("many").is_err());
    }
}
