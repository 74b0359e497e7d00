//! Rewrites the Perl classes of a decoder regex (`\d`, `\w`, `\s` and their negations) into their ASCII forms.
//!
//! The `regex` crate makes these classes Unicode-aware: `\w` alone is hundreds of ranges, which compiles into a large
//! automaton, and capturing (the bounded backtracker clears a bit per state and byte of every line) costs in
//! proportion. Log lines are ASCII in practice, and PCRE-based tools (rsyslog, Wazuh, syslog-ng) use ASCII classes by
//! default, so decoder authors expect these semantics anyway. `.` and explicit `\p{..}` classes stay Unicode.

/// `pattern` with every Perl class outside and inside brackets replaced by its ASCII equivalent.
pub fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Nesting depth of bracketed classes (the regex crate allows `[a[b]]`).
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(class @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) => out.push_str(&replacement(class, depth > 0)),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if depth > 0 && chars.peek() == Some(&':') => {
                // A POSIX class inside brackets, `[:alpha:]`: copied whole, its `]` does not close anything.
                out.push('[');
                let mut previous = '[';
                for inner in chars.by_ref() {
                    out.push(inner);
                    if previous == ':' && inner == ']' {
                        break;
                    }
                    previous = inner;
                }
            }
            '[' => {
                depth += 1;
                out.push('[');
                // A `]` first in a class (after an optional `^`) is a literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}

fn replacement(class: char, in_brackets: bool) -> String {
    let name = match class.to_ascii_lowercase() {
        'd' => "digit",
        'w' => "word",
        _ => "space",
    };
    let negated = if class.is_ascii_uppercase() { "^" } else { "" };
    if in_brackets {
        format!("[:{negated}{name}:]")
    } else {
        format!("[[:{negated}{name}:]]")
    }
}

#[cfg(test)]
mod tests {
    use super::ascii_classes;

    #[test]
    fn classes_outside_brackets_become_ascii_classes() {
        assert_eq!(ascii_classes(r"(?P<n>\d+)\s*\w"), r"(?P<n>[[:digit:]]+)[[:space:]]*[[:word:]]");
        assert_eq!(ascii_classes(r"\S+\D\W"), r"[[:^space:]]+[[:^digit:]][[:^word:]]");
    }

    #[test]
    fn classes_inside_brackets_become_posix_members() {
        assert_eq!(ascii_classes(r"[^\^\s]*\^"), r"[^\^[:space:]]*\^");
        assert_eq!(ascii_classes(r"[\d.]+"), r"[[:digit:].]+");
        assert_eq!(ascii_classes(r"[]\d]"), r"[][:digit:]]");
        assert_eq!(ascii_classes(r"[[:alpha:]\w]x\d"), r"[[:alpha:][:word:]]x[[:digit:]]");
    }

    #[test]
    fn escapes_and_other_text_are_kept() {
        assert_eq!(ascii_classes(r"\\d \. \x41 \p{L} a\]b"), r"\\d \. \x41 \p{L} a\]b");
        assert_eq!(ascii_classes(r"C:\\s"), r"C:\\s");
    }

    #[test]
    fn rewritten_patterns_match_ascii_like_the_originals() {
        let cases = [
            (r"^(?:[^\^\s]*\^)?(?P<seq>\d+)\s*,", "hsm_150518^1048      ,03/20"),
            (r"(?P<code>ALM\d{4}): (?P<text>.+?)\s*$", "k7pf0: ALM0012: HSM tamper 1 "),
            (r"^Fan sensor (?P<s>.+?) \.(?:.*?\(Reading (?P<r>-?[\d.]+))?", "Fan sensor FAN1 .x (Reading 12.5"),
        ];
        for (pattern, line) in cases {
            let original = regex::Regex::new(pattern).unwrap();
            let ascii = regex::Regex::new(&ascii_classes(pattern)).unwrap();
            let names: Vec<_> = original.capture_names().collect();
            let (a, b) = (original.captures(line).unwrap(), ascii.captures(line).unwrap());
            for i in 0..names.len() {
                assert_eq!(a.get(i).map(|m| m.range()), b.get(i).map(|m| m.range()), "{pattern} group {i}");
            }
        }
        assert!(!regex::Regex::new(&ascii_classes(r"^\d$")).unwrap().is_match("٣"), "Arabic-Indic digit");
    }
}
