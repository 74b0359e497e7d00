//! Redaction of secrets typed on command lines (`-password X`, `-authcode X`, `-p X`...), applied to a frame's bytes
//! before it is parsed, so that no field, `event.original` included, and no stored raw copy can hold them.
//!
//! Which options are secret is data (`redact:` in a decoder file), because appliance releases add options.

use std::borrow::Cow;

use super::spec::RedactSpec;

/// What replaces a secret.
pub const MASK: &[u8] = b"***";

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

    fn is_secret(&self, name: &[u8]) -> bool {
        let name = name.to_ascii_lowercase();
        !self.keep.contains(&name) && (self.options.contains(&name) || self.suffixes.iter().any(|s| name.ends_with(s)))
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
            if start > 0 && !line[start - 1].is_ascii_whitespace() {
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
            let secret = match name.iter().position(|&b| b == b'=') {
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

/// The value after an option ending at `after`: the next word, or a whole `"quoted value"`.
fn next_value(line: &[u8], after: usize) -> Option<(usize, usize)> {
    let (start, end) = next_word(line, after)?;
    if line[start] == b'"' {
        let close = line[start + 1..].iter().position(|&b| b == b'"').map_or(line.len(), |n| start + 1 + n + 1);
        return Some((start, close));
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        let mut r = Redactor::default();
        r.extend(&RedactSpec {
            options: ["p", "pw", "pwd", "password", "authcode", "opw", "npw", "oldpw", "newpw"]
                .map(String::from)
                .to_vec(),
            option_suffixes: ["password", "pwd", "pw"].map(String::from).to_vec(),
            keep: vec![],
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
