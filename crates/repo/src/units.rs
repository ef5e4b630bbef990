//! Sizes and shares as users write them (`500M`, `5%`), parsed once for
//! the command line and, later, the config file.

/// A size like `500M`, `2G` or `1048576` (K, M, G, T are 1024-based).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        Some('t' | 'T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}: e.g. 500M or 2G"))
}

/// A share like `5%` or `0.05`, between 0 and 1.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("invalid share {s:?}: use a percentage such as 5%"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("invalid share {s:?}: between 0% and 100%"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_overflow() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size(" 500M "), Ok(500 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1K").is_err());
        assert!(parse_size("99999999999T").is_err(), "overflows u64");
    }

    #[test]
    fn shares_are_percentages_or_fractions_within_0_and_1() {
        assert_eq!(parse_share("5%"), Ok(0.05));
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert_eq!(parse_share("100 %"), Ok(1.0));
        assert!(parse_share("101%").is_err());
        assert!(parse_share("-1%").is_err());
        assert!(parse_share("half").is_err());
    }
}
