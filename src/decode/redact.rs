//! Redaction of secrets typed on command lines (`-password X`, `-authcode X`, `-p X`...), applied to a frame's bytes
//! before it is parsed, so that no field, `event.original` included, and no stored raw copy can hold them.
//!
//! Which options are secret is data (`redact:` in a decoder file), because appliance releases add options.

use std::borrow::Cow;

use super::spec::RedactSpec;
#[cfg(test)]
use super::spec::{DecoderFile, PositionalSpec};

/// What replaces a secret.
pub const MASK: &[u8] = b"***";

/// The shortest start of a secret option name taken for it: shorter ones (`-p`, `-pw`) count only when listed.
const SHORTEST_PREFIX: usize = 3;

/// The shortest start of a command word taken for it (`us pa bob X` for `user password bob X`).
const SHORTEST_COMMAND_WORD: usize = 2;

/// The secret options, lower case and without dashes, and the commands with a secret argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    options: Vec<Vec<u8>>,
    suffixes: Vec<Vec<u8>>,
    keep: Vec<Vec<u8>>,
    positional: Vec<Positional>,
}

/// A command whose argument at a position is secret: `words` lower case, `argument` counted from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Positional {
    words: Vec<Vec<u8>>,
    argument: usize,
}

impl Positional {
    /// Whether a word on the line stands for the command's word `index`: the word or a start of it (LunaSH takes
    /// those) of [`SHORTEST_COMMAND_WORD`] letters or more, any case.
    fn word_matches(&self, index: usize, word: &[u8]) -> bool {
        let full = &self.words[index];
        word.len() <= full.len()
            && word.len() >= SHORTEST_COMMAND_WORD.min(full.len())
            && full[..word.len()].eq_ignore_ascii_case(word)
    }
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
        self.positional.extend(spec.positional.iter().map(|p| Positional {
            words: p.command.split_whitespace().map(|w| w.to_ascii_lowercase().into_bytes()).collect(),
            argument: p.argument,
        }));
        self.positional.retain(|p| !p.words.is_empty() && p.argument > 0);
    }

    /// Whether no option is secret (then nothing is ever redacted).
    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.suffixes.is_empty() && self.positional.is_empty()
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

    /// The line with the value of every secret option and every secret argument replaced by `***`; borrowed when there
    /// was none.
    pub fn redact<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if self.is_empty() {
            return Cow::Borrowed(line);
        }
        match self.redact_options(line) {
            Cow::Borrowed(line) => self.redact_arguments(line),
            Cow::Owned(masked) => Cow::Owned(self.redact_arguments(&masked).into_owned()),
        }
    }

    /// The line with the value of every secret option masked.
    fn redact_options<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if self.options.is_empty() && self.suffixes.is_empty() {
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

    /// The line with every secret argument of a positional command masked: after the command's words, arguments are
    /// counted up to the first option (`-x`) or LunaSH's ` : ` separator.
    fn redact_arguments<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if self.positional.is_empty() {
            return Cow::Borrowed(line);
        }
        let mut spans = Vec::new();
        for command in &self.positional {
            // Only a word that starts with the command's first letter can start it: jump between those (memchr).
            let first = command.words[0][0];
            let mut at = 0;
            while let Some(found) = memchr::memchr2(first, first.to_ascii_uppercase(), &line[at..]) {
                let start = at + found;
                at = start + 1;
                if start > 0 && !line[start - 1].is_ascii_whitespace() {
                    continue;
                }
                let end = line[start..].iter().position(u8::is_ascii_whitespace).map_or(line.len(), |n| start + n);
                spans.extend(secret_argument(line, start, end, command));
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(line);
        }
        spans.sort_unstable();
        let mut out = Vec::with_capacity(line.len());
        let mut copied = 0;
        for (from, to) in spans {
            if from < copied {
                continue;
            }
            out.extend_from_slice(&line[copied..from]);
            out.extend_from_slice(MASK);
            copied = to;
        }
        out.extend_from_slice(&line[copied..]);
        Cow::Owned(out)
    }
}

/// Where the secret argument of `command` is, when the command's words start at the word `start..end`.
fn secret_argument(line: &[u8], start: usize, end: usize, command: &Positional) -> Option<(usize, usize)> {
    if !command.word_matches(0, &line[start..end]) {
        return None;
    }
    let mut at = end;
    for index in 1..command.words.len() {
        let (start, end) = next_word(line, at)?;
        if !command.word_matches(index, &line[start..end]) {
            return None;
        }
        at = end;
    }
    for position in 1..=command.argument {
        let (start, end) = next_value(line, at)?;
        if line[start] == b'-' || &line[start..end] == b":" {
            return None;
        }
        if position == command.argument {
            return Some((start, end));
        }
        at = end;
    }
    None
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
            positional: vec![PositionalSpec { command: "user password".into(), argument: 2 }],
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
    fn secret_arguments_are_masked_by_position() {
        let cases = [
            ("Command: user password bob X : admin : Console", "Command: user password bob *** : admin : Console"),
            ("Command: user password bob : admin : Console", "Command: user password bob : admin : Console"),
            ("Command: USER passw bob 'two words' : a", "Command: USER passw bob *** : a"),
            ("Command: us pa bob X", "Command: us pa bob ***"),
            ("Command: user password bob -x X", "Command: user password bob -x X"),
            ("Command: user passwordx bob X", "Command: user passwordx bob X"),
            ("Command: user u bob X", "Command: user u bob X"),
            ("Command: user password", "Command: user password"),
            ("user password a b user password c d", "user password a *** user password c ***"),
            ("x -pw P user password bob Y", "x -pw *** user password bob ***"),
        ];
        for (line, expected) in cases {
            assert_eq!(redacted(line), expected, "{line}");
        }
    }

    /// The redactor of the shipped `redaction.yaml`.
    fn shipped() -> (RedactSpec, Redactor) {
        let file: DecoderFile =
            serde_yaml_ng::from_str(include_str!("../../rules/decoders/redaction.yaml")).expect("shipped file parses");
        let spec = file.redact.expect("shipped file has redact:");
        let mut redactor = Redactor::default();
        redactor.extend(&spec);
        (spec, redactor)
    }

    fn masks(redactor: &Redactor, line: &str) -> bool {
        let out = redactor.redact(line.as_bytes());
        !String::from_utf8_lossy(&out).contains("V4lue")
    }

    #[test]
    fn every_shipped_option_and_every_start_of_it_is_masked_in_every_spelling() {
        let (spec, redactor) = shipped();
        let kept = |start: &str| spec.keep.iter().any(|k| k.to_ascii_lowercase().starts_with(start));
        let mut checked = 0;
        for option in &spec.options {
            let option = option.to_ascii_lowercase();
            let shortest = SHORTEST_PREFIX.min(option.len());
            for end in shortest..=option.len() {
                let start = &option[..end];
                if end < option.len() && kept(start) {
                    continue;
                }
                for spelling in [format!("-{start} V4lue"), format!("--{start}=V4lue"), format!("-{start}:V4lue")] {
                    for line in [format!("Command: x {spelling} : admin : Console"), format!("x ({spelling}) y")] {
                        assert!(masks(&redactor, &line), "{line}");
                        checked += 1;
                    }
                }
                let upper = format!("x -{} 'V4lue two' y", start.to_ascii_uppercase());
                assert!(masks(&redactor, &upper), "{upper}");
            }
        }
        for suffix in &spec.option_suffixes {
            let line = format!("x -some{suffix} V4lue y");
            assert!(masks(&redactor, &line), "{line}");
        }
        for keep in &spec.keep {
            let line = format!("x -{keep} V4lue y");
            assert!(!masks(&redactor, &line), "{keep} is kept: {line}");
        }
        assert!(checked > 200, "{checked} spellings checked");
    }

    #[test]
    fn every_shipped_positional_command_and_its_shortenings_are_masked() {
        let (spec, redactor) = shipped();
        assert!(!spec.positional.is_empty());
        for positional in &spec.positional {
            let words: Vec<&str> = positional.command.split_whitespace().collect();
            let arguments: Vec<String> = (1..=positional.argument)
                .map(|n| if n == positional.argument { "V4lue".to_owned() } else { format!("a{n}") })
                .collect();
            for cut in SHORTEST_COMMAND_WORD..=words.iter().map(|w| w.len()).max().unwrap_or(0) {
                let command: Vec<&str> = words.iter().map(|w| &w[..cut.min(w.len())]).collect();
                let line = format!("Command: {} {} : admin : Console", command.join(" "), arguments.join(" "));
                assert!(masks(&redactor, &line), "{line}");
            }
            let short = format!("Command: {} : admin : Console", words.join(" "));
            assert_eq!(redactor.redact(short.as_bytes()).as_ref(), short.as_bytes(), "no argument, nothing masked");
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
