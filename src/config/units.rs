//! Human units in the config file: durations (`50ms`, `1h`) and byte sizes (`64KiB`, `8MiB`, or a plain number).

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

/// A size in bytes, written as a number or with a unit (`B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `65536`, `64KiB`, `8 MiB`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 =
            number.parse().map_err(|_| format!("invalid size `{text}`: expected e.g. 65536, 64KiB, 8MiB"))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!("invalid size unit `{other}` in `{text}`: use B, KiB, MiB, GiB, KB, MB or GB"))
            }
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("size `{text}` is too large"))
    }

    /// The size as a `usize`, saturating.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Free space to keep on a filesystem: a size, or a percentage of the filesystem (`1%`, `256MiB`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeSpace {
    /// This many bytes.
    Bytes(u64),
    /// This percentage of the filesystem's size, at most [`FreeSpace::PERCENT_CAP`] bytes.
    Percent(f64),
}

impl FreeSpace {
    /// A percentage never asks for more than this: 1% of a 100 TB volume is not a reserve, it is waste.
    pub const PERCENT_CAP: u64 = 256 << 20;

    /// Parses `1%`, `0.5%`, `256MiB`, `0`.
    pub fn parse(text: &str) -> Result<FreeSpace, String> {
        match text.trim().strip_suffix('%') {
            Some(number) => match number.trim().parse::<f64>() {
                Ok(percent) if (0.0..=50.0).contains(&percent) => Ok(FreeSpace::Percent(percent)),
                _ => Err(format!("invalid free space `{text}`: a percentage from 0% to 50%")),
            },
            None => ByteSize::parse(text).map(|size| FreeSpace::Bytes(size.0)),
        }
    }

    /// The bytes to keep free on a filesystem of `total` bytes.
    pub fn bytes_of(self, total: u64) -> u64 {
        match self {
            FreeSpace::Bytes(bytes) => bytes,
            FreeSpace::Percent(percent) => ((total as f64) * percent / 100.0).min(Self::PERCENT_CAP as f64) as u64,
        }
    }
}

impl<'de> Deserialize<'de> for FreeSpace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        number_or_text(deserializer, FreeSpace::Bytes, FreeSpace::parse)
    }
}

/// A value the config may write as a plain number or as text with a unit (`65536`, `64KiB`, `1%`).
fn number_or_text<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    number: fn(u64) -> T,
    text: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(number(n)),
        Raw::Text(written) => text(&written).map_err(serde::de::Error::custom),
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{}MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{}KiB", n >> 10),
            n => write!(f, "{n}B"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        number_or_text(deserializer, ByteSize, ByteSize::parse)
    }
}

/// Parses a humantime duration, with an error that says what a duration looks like.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("invalid duration `{text}`: {e} (e.g. 50ms, 30s, 5m, 26h, 7d)"))
}

/// `with = "units::duration"`: a humantime duration such as `50ms`, `5m`, `1h 30m`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes a humantime duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        super::parse_duration(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// `with = "units::optional_duration"`: an optional humantime duration.
pub mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes an optional humantime duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_duration(&text))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// `with = "units::networks"`: a list of networks, each `10.0.0.0/8`, `2001:db8::/32`, or a bare address (one host).
pub mod networks {
    use serde::{Deserialize, Deserializer};

    /// Parses one network or address.
    pub fn parse(text: &str) -> Result<ipnet::IpNet, String> {
        let text = text.trim();
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| format!("`{text}` is neither a network (10.0.0.0/8) nor an address"))
    }

    /// Deserializes the list.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| parse(text))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

/// `with = "units::network"`: one network or bare address, as in [`networks`].
pub mod network {
    use serde::{Deserialize, Deserializer};

    /// Deserializes one network.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ipnet::IpNet, D::Error> {
        super::networks::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`), with a "did you mean" for a near miss.
pub fn parse_zone(text: &str) -> Result<chrono_tz::Tz, String> {
    let text = text.trim();
    text.parse::<chrono_tz::Tz>().map_err(|_| {
        let known: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name()).collect();
        format!(
            "unknown time zone `{text}`: use an IANA name such as Europe/Berlin or UTC{}",
            crate::event::did_you_mean(text, &known)
        )
    })
}

/// `with = "units::zone"`: an IANA time zone name.
pub mod zone {
    use serde::{Deserialize, Deserializer};

    /// Deserializes a zone name.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<chrono_tz::Tz, D::Error> {
        super::parse_zone(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Parses `1h` (back from now), `2026-01-01` or an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time_at(text, Utc::now())
}

fn parse_time_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return within_years(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(), text);
    }
    let back = humantime::parse_duration(text)
        .map_err(|_| format!("`{text}` is neither a duration (30m, 1h, 7d) nor a time (2026-01-01T00:00:00Z)"))?;
    let at = chrono::Duration::from_std(back).ok().and_then(|back| now.checked_sub_signed(back));
    within_years(at.ok_or_else(|| format!("`{text}` is too long ago"))?, text)
}

/// `at`, when it lies in the years 1 to 9999 (what RFC 3339 writes); a filter further out is a typo, and times near
/// the ends of chrono's range overflow the arithmetic done with them.
fn within_years(at: DateTime<Utc>, text: &str) -> Result<DateTime<Utc>, String> {
    if (1..=9999).contains(&at.year()) {
        Ok(at)
    } else {
        Err(format!("`{text}` is outside the years 1 to 9999"))
    }
}

/// `deserialize_with = "units::external_url"`: an `http://` or `https://` address without a query or fragment, kept
/// without its trailing slash.
pub fn external_url<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not an address: {e}")))?;
    if !["http", "https"].contains(&url.scheme()) || url.host_str().is_none() {
        return Err(serde::de::Error::custom(format!("`{text}` is not an http:// or https:// address")));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(serde::de::Error::custom(format!(
            "`{text}`: give the dashboard's address only (no user, query or fragment)"
        )));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("65536"), Ok(ByteSize(65536)));
        assert_eq!(ByteSize::parse("64KiB"), Ok(ByteSize(65536)));
        assert_eq!(ByteSize::parse("8 MiB"), Ok(ByteSize(8 << 20)));
        assert!(ByteSize::parse("8 parsecs").is_err());
        assert!(ByteSize::parse("MiB").is_err());
        assert_eq!(ByteSize(8 << 20).to_string(), "8MiB");
        assert_eq!(ByteSize(100).to_string(), "100B");
    }

    #[test]
    fn networks_and_bare_addresses() {
        assert_eq!(networks::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(networks::parse("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(networks::parse("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        assert!(networks::parse("10.0.0.0/33").is_err());
        assert!(networks::parse("hsm-01").is_err());
    }

    #[test]
    fn zones_are_iana_names() {
        assert_eq!(parse_zone("Europe/Berlin"), Ok(chrono_tz::Europe::Berlin));
        assert_eq!(parse_zone("UTC"), Ok(chrono_tz::Tz::UTC));
        let error = parse_zone("Europe/Berln").unwrap_err();
        assert!(error.contains("did you mean `Europe/Berlin`"), "{error}");
        assert!(parse_zone("CEST+2").is_err());
    }

    #[test]
    fn times_parse_as_durations_dates_and_instants() {
        let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        assert_eq!(parse_time_at("1h", now).unwrap().to_rfc3339(), "2026-03-01T11:00:00+00:00");
        assert_eq!(parse_time_at("7d", now).unwrap().to_rfc3339(), "2026-02-22T12:00:00+00:00");
        assert_eq!(parse_time_at("2026-01-01", now).unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(parse_time_at("2026-01-01T05:00:00+01:00", now).unwrap().to_rfc3339(), "2026-01-01T04:00:00+00:00");
        assert!(parse_time_at("yesterday-ish", now).is_err());
        // Regression: far-back durations overflowed and panicked the query (exit 101, a dropped connection).
        assert_eq!(parse_time_at("99999999999d", now).unwrap_err(), "`99999999999d` is too long ago");
        assert_eq!(parse_time_at("3000000y", now).unwrap_err(), "`3000000y` is too long ago");
        assert_eq!(parse_time_at("2100y", now).unwrap_err(), "`2100y` is outside the years 1 to 9999");
        assert!(parse_time_at("+20000-01-01", now).is_err());
        assert!(parse_time_at("2000y", now).is_ok());
    }
}
