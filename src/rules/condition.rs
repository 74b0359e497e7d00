//! The `condition` expression over selection names: `and`, `or`, `not`, parentheses, `1 of sel_*`, `all of sel_*`.
//! As in Sigma, `or` binds weakest, then `and`, then `not`: `a and not b or c` is `(a and (not b)) or c`.

use crate::event::did_you_mean;

/// A compiled condition over selection indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The selection with this index matches.
    Selection(usize),
    /// Negation.
    Not(Box<Condition>),
    /// Every operand.
    And(Vec<Condition>),
    /// Any operand.
    Or(Vec<Condition>),
}

impl Condition {
    /// Evaluates with the results of each selection.
    pub fn eval(&self, selected: &[bool]) -> bool {
        match self {
            Condition::Selection(i) => selected[*i],
            Condition::Not(inner) => !inner.eval(selected),
            Condition::And(all) => all.iter().all(|c| c.eval(selected)),
            Condition::Or(any) => any.iter().any(|c| c.eval(selected)),
        }
    }

    /// Selections of which at least one must match for the condition to hold (`None`: no such set, e.g. under
    /// `not`), for indexing rules by action.
    pub fn required(&self) -> Option<Vec<usize>> {
        match self {
            Condition::Selection(i) => Some(vec![*i]),
            Condition::Not(_) => None,
            // One required selection of any operand is enough to pin an AND.
            Condition::And(all) => all.iter().find_map(Condition::required),
            Condition::Or(any) => {
                let mut options = Vec::new();
                for operand in any {
                    options.extend(operand.required()?);
                }
                Some(options)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    And,
    Or,
    Not,
    Open,
    Close,
    One,
    All,
    Of,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            chars.next();
            out.push(Token::Open);
        } else if c == ')' {
            chars.next();
            out.push(Token::Close);
        } else if c.is_alphanumeric() || c == '_' || c == '*' || c == '.' || c == '-' {
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '*' || c == '.' || c == '-' {
                    end = i + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let word = &text[start..end];
            out.push(match word {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                "1" | "any" => Token::One,
                "all" => Token::All,
                "of" => Token::Of,
                _ => Token::Name(word.to_owned()),
            });
        } else {
            return Err(format!("unexpected `{c}` at column {}", start + 1));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a [String],
}

/// Parses `text` over the selection `names` (in their index order).
pub fn parse(text: &str, names: &[String]) -> Result<Condition, String> {
    let mut parser = Parser { tokens: tokens(text)?, at: 0, names };
    if parser.tokens.is_empty() {
        return Err("the condition is empty".into());
    }
    let condition = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(condition),
        Some(token) => Err(format!("unexpected {} after a complete condition", describe(token))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(n) => format!("`{n}`"),
        Token::And => "`and`".into(),
        Token::Or => "`or`".into(),
        Token::Not => "`not`".into(),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::One => "`1`".into(),
        Token::All => "`all`".into(),
        Token::Of => "`of`".into(),
    }
}

impl Parser<'_> {
    fn next_is(&self, token: &Token) -> bool {
        self.tokens.get(self.at) == Some(token)
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut operands = vec![self.and()?];
        while self.next_is(&Token::Or) {
            self.at += 1;
            operands.push(self.and()?);
        }
        Ok(if operands.len() == 1 { operands.remove(0) } else { Condition::Or(operands) })
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut operands = vec![self.not()?];
        while self.next_is(&Token::And) {
            self.at += 1;
            operands.push(self.not()?);
        }
        Ok(if operands.len() == 1 { operands.remove(0) } else { Condition::And(operands) })
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.next_is(&Token::Not) {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("the condition ends where a selection was expected")?;
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if !self.next_is(&Token::Close) {
                    return Err("a `(` is not closed".into());
                }
                self.at += 1;
                Ok(inner)
            }
            Token::One | Token::All => {
                if !self.next_is(&Token::Of) {
                    return Err(format!("{} must be followed by `of` and a selection pattern", describe(&token)));
                }
                self.at += 1;
                let Some(Token::Name(pattern)) = self.tokens.get(self.at).cloned() else {
                    return Err("`of` must be followed by a selection name or pattern such as `sel_*`".into());
                };
                self.at += 1;
                let matched = self.matching(&pattern)?;
                let operands = matched.into_iter().map(Condition::Selection).collect();
                Ok(if token == Token::One { Condition::Or(operands) } else { Condition::And(operands) })
            }
            Token::Name(name) => {
                if name.contains('*') {
                    return Err(format!("`{name}`: a pattern needs `1 of` or `all of` before it"));
                }
                self.names.iter().position(|n| *n == name).map(Condition::Selection).ok_or_else(|| {
                    let known: Vec<&str> = self.names.iter().map(String::as_str).collect();
                    let hint = did_you_mean(&name, &known);
                    format!("unknown selection `{name}`{hint}; selections are: {}", known.join(", "))
                })
            }
            other => Err(format!("unexpected {} where a selection was expected", describe(&other))),
        }
    }

    fn matching(&self, pattern: &str) -> Result<Vec<usize>, String> {
        let (prefix, suffix) = pattern.split_once('*').unwrap_or((pattern, ""));
        let exact = !pattern.contains('*');
        let found: Vec<usize> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                if exact {
                    *n == pattern
                } else {
                    n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= prefix.len() + suffix.len()
                }
            })
            .map(|(i, _)| i)
            .collect();
        if found.is_empty() {
            return Err(format!("`{pattern}` matches no selection"));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["a", "b", "c", "sel_x", "sel_y"].iter().map(|s| s.to_string()).collect()
    }

    fn eval(text: &str, values: [bool; 5]) -> bool {
        parse(text, &names()).unwrap().eval(&values)
    }

    #[test]
    fn precedence_is_sigmas() {
        // a and not b or c == (a and (not b)) or c
        assert!(eval("a and not b or c", [false, false, true, false, false]));
        assert!(eval("a and not b or c", [true, false, false, false, false]));
        assert!(!eval("a and not b or c", [true, true, false, false, false]));
        assert!(!eval("a and (not b or c)", [false, false, true, false, false]));
        assert!(eval("not not a", [true, false, false, false, false]));
    }

    #[test]
    fn of_forms() {
        assert!(eval("1 of sel_*", [false, false, false, false, true]));
        assert!(!eval("all of sel_*", [false, false, false, false, true]));
        assert!(eval("all of sel_* and not a", [false, false, false, true, true]));
        assert!(eval("any of sel_*", [false, false, false, true, false]));
    }

    #[test]
    fn mistakes_are_explained() {
        let error = |text: &str| parse(text, &names()).unwrap_err();
        assert!(error("sel_z").contains("did you mean `sel_x`"), "{}", error("sel_z"));
        assert!(error("a and").contains("ends where a selection was expected"));
        assert!(error("(a or b").contains("not closed"));
        assert!(error("1 of zz*").contains("matches no selection"));
        assert!(error("sel_*").contains("needs `1 of`"));
        assert!(error("a b").contains("unexpected `b`"));
        assert!(error("a & b").contains("unexpected `&`"));
        assert!(error("").contains("empty"));
    }

    #[test]
    fn required_selections() {
        let required = |text: &str| parse(text, &names()).unwrap().required();
        assert_eq!(required("a and not b"), Some(vec![0]));
        assert_eq!(required("a or b"), Some(vec![0, 1]));
        assert_eq!(required("not a"), None);
        assert_eq!(required("a or not b"), None);
    }
}
