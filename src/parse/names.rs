//! Facility and severity names and codes (RFC 5424 §6.2.1), including the spellings the Luna file layout uses, and
//! month names.

/// Facility names by code, as RFC 5424 §6.2.1 numbers them (13–15 as Linux names them).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "audit", "alert", "clockd", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// Severity names by code.
const SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

/// The name of a facility code, `None` above 23.
pub fn facility_name(code: u8) -> Option<&'static str> {
    FACILITIES.get(usize::from(code)).copied()
}

/// The name of a severity code, `None` above 7.
pub fn severity_name(code: u8) -> Option<&'static str> {
    SEVERITIES.get(usize::from(code)).copied()
}

/// The number (1–12) of a three-letter month name, in any case (`Feb`, `FEB`), as syslog headers write it.
pub fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let index = MONTHS.iter().position(|month| month.eq_ignore_ascii_case(name))?;
    u32::try_from(index + 1).ok()
}

/// The code of a facility name as a file layout writes it (`local5`, `authpriv`, `security`...).
pub fn facility_code(name: &str) -> Option<u8> {
    let code = match name {
        "security" => 4,
        "console" => 14,
        "solaris-cron" | "cron2" => 15,
        _ => FACILITIES.iter().position(|f| *f == name)?,
    };
    u8::try_from(code).ok()
}

/// The code of a severity name as a file layout writes it (`warn`, `crit`, `error`, `panic`...).
pub fn severity_code(name: &str) -> Option<u8> {
    let code = match name {
        "panic" => 0,
        "error" => 3,
        "warn" => 4,
        _ => SEVERITIES.iter().position(|s| *s == name)?,
    };
    u8::try_from(code).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for code in 0..24u8 {
            assert_eq!(facility_code(facility_name(code).unwrap()), Some(code));
        }
        for code in 0..8u8 {
            assert_eq!(severity_code(severity_name(code).unwrap()), Some(code));
        }
        assert_eq!(facility_name(24), None);
        assert_eq!(severity_code("warn"), Some(4));
        assert_eq!(facility_code("local9"), None);
    }
}
