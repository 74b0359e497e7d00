//! Redaction of secrets typed on command lines (`-password X`, `-authcode X`, `-p X`...), applied to a frame's bytes
//! before it is parsed, so that no field, `event.original` included, and no stored raw copy can hold them.
//!
//! Which options are secret is data (`redact:` in a decoder file), because appliance releases add options.

use std::borrow::Cow;

use super::spec::RedactSpec;

/// What replaces a secret.
pub const MASK: &[u8] = b"***";

/// The shortest start of a secret option name taken for it: shorter ones (`-p`, `-pw`) count only when listed.
const SHORTEST_PREFIX: usize = 3;

/// The secret options, lower case and without dashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    options: Vec<Vec<u8>>,
    suffixes: Vec<Vec<u8>>,
    keep: Vec<Vec<u8>>,
}

impl Redactor {
    /// Adds the options of one `redact:` section.
    pub fn extend(&mut self, spec: &RedactSpec) {
        let lower = |list: &[String]| {
            list.iter().map(|o| o.trim_start_matches('-').to_ascii_lowercase().into_bytes()).collect::<Vec<_>>()
        };
        self.options.extend(lower(&spec.options));
        self.suffixes.extend(lower(&spec.option_suffixes));
        self.keep.extend(lower(&spec.keep));
    }

    /// Whether no option is secret (then nothing is ever redacted).
    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.suffixes.is_empty()
    }

    /// Whether an option name (without dashes) is secret: a secret option, one ending like one, or — as LunaSH takes
    /// any unambiguous start of an option name (`-authPa` for `-authPassword`) — the start, of [`SHORTEST_PREFIX`]
    /// letters or more, of a secret option and of no kept one.
    fn is_secret(&self, name: &[u8]) -> bool {
        let name = name.to_ascii_lowercase();
        if self.keep.contains(&name) {
            return false;
        }
        let starts = |names: &[Vec<u8>]| names.iter().any(|known| known.starts_with(&name));
        self.options.contains(&name)
            || self.suffixes.iter().any(|s| name.ends_with(s))
            || (name.len() >= SHORTEST_PREFIX && starts(&self.options) && !starts(&self.keep))
    }

    /// The line with the value of every secret option replaced by `***`; borrowed when there was none.
    pub fn redact<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if self.is_empty() {
            return Cow::Borrowed(line);
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        // Only a dash that starts a word can start an option: jump from dash to dash (memchr) rather than walk every
        // word of every line, most of which hold no option at all.
        while let Some(found) = memchr::memchr(b'-', &line[at..]) {
            let start = at + found;
            if start > 0 && !line[start - 1].is_ascii_whitespace() && line[start - 1] != b'(' {
                at = start + 1;
                continue;
            }
            let end = line[start..].iter().position(u8::is_ascii_whitespace).map_or(line.len(), |n| start + n);
            at = end;
            let word = &line[start..end];
            if word.len() < 2 {
                continue;
            }
            let dashes = word.iter().take_while(|&&b| b == b'-').count();
            let name = &word[dashes..];
            let secret = match name.iter().position(|&b| b == b'=' || b == b':') {
                Some(eq) if self.is_secret(&name[..eq]) => Some((start + dashes + eq + 1, end)),
                Some(_) => None,
                None if self.is_secret(name) => next_value(line, end),
                None => None,
            };
            if let Some((from, to)) = secret.filter(|(from, to)| from < to) {
                let buffer = out.get_or_insert_with(|| Vec::with_capacity(line.len()));
                buffer.extend_from_slice(&line[copied..from]);
                buffer.extend_from_slice(MASK);
                copied = to;
                at = to;
            }
        }
        match out {
            Some(mut buffer) => {
                buffer.extend_from_slice(&line[copied..]);
                Cow::Owned(buffer)
            }
            None => Cow::Borrowed(line),
        }
    }
}

/// The next run of non-whitespace at or after `from`.
fn next_word(line: &[u8], from: usize) -> Option<(usize, usize)> {
    let start = from + line.get(from..)?.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = line[start..].iter().position(u8::is_ascii_whitespace).map_or(line.len(), |n| start + n);
    Some((start, end))
}

/// The value after an option ending at `after`: the next word, or a whole `"quoted value"` or `'quoted value'` (a
/// backslash escapes the next byte; an unclosed quote runs to the end of the line).
fn next_value(line: &[u8], after: usize) -> Option<(usize, usize)> {
    let (start, end) = next_word(line, after)?;
    let quote = line[start];
    if quote == b'"' || quote == b'\'' {
        let mut at = start + 1;
        while at < line.len() && line[at] != quote {
            at += if line[at] == b'\\' { 2 } else { 1 };
        }
        return Some((start, (at + 1).min(line.len())));
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        let mut r = Redactor::default();
        r.extend(&RedactSpec {
            options: [
                "p",
                "pw",
                "pwd",
                "password",
                "authcode",
                "opw",
                "npw",
                "oldpw",
                "newpw",
                "authpassword",
                "privpassword",
                "passphrase",
                "domain",
                "cupin",
                "userpin",
                "authpass",
                "privpass",
                "community",
                "secretkey",
                "apikey",
                "token",
            ]
            .map(String::from)
            .to_vec(),
            option_suffixes: ["password", "pwd", "pw"].map(String::from).to_vec(),
            keep: ["partition", "par", "policy", "port", "protocol", "privprotocol", "authprotocol", "user"]
                .map(String::from)
                .to_vec(),
        });
        r
    }

    fn redacted(line: &str) -> String {
        String::from_utf8(redactor().redact(line.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn secrets_are_masked_and_nothing_else() {
        let cases = [
            (
                "Command: hsm init -label x -password S3cr3t : admin : Console",
                "Command: hsm init -label x -password *** : admin : Console",
            ),
            (
                "Command: hsm init -label x -p Qz9-init-55 : admin : Console",
                "Command: hsm init -label x -p *** : admin : Console",
            ),
            (
                "-authpassword A -privprotocol AES -privpassword B",
                "-authpassword *** -privprotocol AES -privpassword ***",
            ),
            ("changePw -oldpw 0ld -newpw N3w : a", "changePw -oldpw *** -newpw *** : a"),
            ("x -PASSWORD=abc y", "x -PASSWORD=*** y"),
            ("x -password \"two words\" y", "x -password *** y"),
            (
                "partition create -partition par1 -policy 1 -port 5 -protocol tcp",
                "partition create -partition par1 -policy 1 -port 5 -protocol tcp",
            ),
            ("no options at all", "no options at all"),
            ("trailing -password", "trailing -password"),
            ("a-password b", "a-password b"),
            ("-pwd first\tx", "-pwd ***\tx"),
            ("2026-03-01 x - - -p one -p=two --password three", "2026-03-01 x - - -p *** -p=*** --password ***"),
            ("x -password \"quoted\"-pwd y", "x -password ***-pwd y"),
            ("x -password a -password b", "x -password *** -password ***"),
            // #21: other spellings of a value, and the starts of option names LunaSH takes.
            ("x -password:abc y", "x -password:*** y"),
            ("x (-password abc) y", "x (-password *** y"),
            ("x -password 'two words' y", "x -password *** y"),
            (r#"x -password "a \" b" y"#, "x -password *** y"),
            ("x -password \"unclosed y", "x -password ***"),
            (
                "sysconf snmp user add -s m -authPa A1 -privPa P2 -authProtocol SHA",
                "sysconf snmp user add -s m -authPa *** -privPa *** -authProtocol SHA",
            ),
            ("hsm init -label l -domain D0m -dom D1", "hsm init -label l -domain *** -dom ***"),
            (
                "x -passp pp -tok t -secretk k -apik a -communi c",
                "x -passp *** -tok *** -secretk *** -apik *** -communi ***",
            ),
            ("x -cupin 1 -userpin 2 -authpass 3 -privpass 4", "x -cupin *** -userpin *** -authpass *** -privpass ***"),
            (
                "partition show -par p1 -parti p2 -pol 1 -priv x -auth y",
                "partition show -par p1 -parti p2 -pol 1 -priv x -auth y",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(redacted(line), expected, "{line}");
        }
    }

    #[test]
    fn lines_without_secrets_are_not_copied() {
        assert!(matches!(redactor().redact(b"Command: hsm show -x 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn invalid_utf8_is_redacted_too() {
        assert_eq!(redactor().redact(b"\xff -pwd s\xfe x").as_ref(), b"\xff -pwd *** x");
    }
}
