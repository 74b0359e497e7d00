//! A backtracking matcher for decoder patterns, compiled from the same syntax tree the `regex` crate builds, which
//! finds the same match and the same captures at a fraction of the cost.
//!
//! Resolving captures was most of a decoder's cost per line: the `regex` crate finds a match with its lazy DFA, then
//! runs its bounded backtracker over the match, which clears and checks a visited bit per automaton state and byte.
//! A decoder pattern is a few literals and runs of one class (`^Command: (.*?) : ([^:]*?) : (\S+)$`), which a
//! direct backtracker walks in a few instructions per byte. It explores alternatives in the same priority order
//! (leftmost-first, greedy or lazy as written), so its results are the crate's; the tests compare the two on the
//! corpus and on mutated lines. A pattern with a construct it does not compile (a loop whose body can match empty,
//! large counted repeats, line anchors) keeps the crate's engine, and a search that runs out of its step budget (a
//! pattern that backtracks exponentially on some line) is handed to the crate for that line.

use memchr::memmem;
use regex::{Captures, Regex};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Most capture groups a compiled pattern may have, the whole match included (decoder patterns have a handful; a
/// small array keeps a match cheap to pass around).
const MAX_GROUPS: usize = 12;

/// A slot no capture has set.
const UNSET: u32 = u32::MAX;

/// Most copies a counted repeat of something longer than one character is unrolled into.
const MAX_UNROLLED: u32 = 16;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Program {
    insts: Vec<Inst>,
    /// Every match starts at the start of the text.
    anchored: bool,
    /// Every match starts with these bytes: candidate starts are found with `memmem`.
    first_literal: Option<memmem::Finder<'static>>,
    /// Every match starts the text with these bytes: a text that does not is rejected before any set-up.
    required_start: Box<[u8]>,
}

/// The search gave up: the pattern backtracked past its budget on this text. Ask the `regex` crate instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// The spans of a match's capture groups, by group index (0 is the whole match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spans {
    slots: [u32; 2 * MAX_GROUPS],
}

impl Spans {
    /// The span of group `index`, when it took part in the match.
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        let start = *self.slots.get(2 * index)?;
        let end = *self.slots.get(2 * index + 1)?;
        (start != UNSET && end != UNSET).then_some((start as usize, end as usize))
    }
}

#[derive(Debug, Clone)]
enum Inst {
    /// These bytes.
    Literal(Box<[u8]>),
    /// One character of the class.
    Class(CharClass),
    /// `min..=max` characters of the class (`max` is `u32::MAX` for no bound). `then` is the first byte of the
    /// literal that must follow (captures aside), when one must: a run only stops where that byte is.
    Run { class: CharClass, min: u32, max: u32, greedy: bool, then: Option<u8>, skip: Option<Box<Skip>> },
    /// Go on at `first`; on failure, at `second`.
    Split { first: usize, second: usize },
    /// Go on at this instruction.
    Jump(usize),
    /// Record the position in this slot.
    Save(usize),
    /// A zero-width assertion.
    Assert(Assertion),
    /// The pattern matched.
    Match,
}

/// How a lazy run goes straight to the next place the literal after it occurs: for an unbounded run of a class that
/// admits every character but a few ASCII bytes (`.*?`, `[^:]*?`), reaching a place is only a matter of none of
/// those bytes lying in between. `Command: (.*?) : ` then costs one `memmem` per ` : ` instead of a step per byte.
#[derive(Debug, Clone)]
struct Skip {
    literal: memmem::Finder<'static>,
    excluded: Box<[u8]>,
}

#[derive(Debug, Clone, Copy)]
enum Assertion {
    Start,
    End,
    WordBoundary { unicode: bool, negate: bool },
}

/// A set of characters: a bit per ASCII character, ranges for the rest.
#[derive(Debug, Clone)]
struct CharClass {
    ascii: u128,
    other: Box<[(char, char)]>,
}

/// What a backtracking search can come back to.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// Go on at `pc` from `at`.
    Resume { pc: usize, at: usize },
    /// Put `old` back into `slot`.
    Restore { slot: usize, old: u32 },
    /// The greedy run at `run` now ends at `at` and may give characters back down to `floor`.
    GiveBack { run: usize, floor: usize, at: usize },
    /// The lazy run at `run` now ends at `at` after `count` characters and may take more.
    TakeMore { run: usize, at: usize, count: u32 },
}

/// A decoder regex and, when it compiles, its program: captures come from the program, or from the crate when there
/// is none or the program ran out of budget on the line.
#[derive(Debug)]
pub struct Matcher {
    regex: Regex,
    program: Option<Program>,
}

/// A match's groups, found by either engine.
#[derive(Debug)]
pub enum Found<'t> {
    /// Found by the program.
    Program(Spans),
    /// Found by the `regex` crate.
    Crate(Captures<'t>),
}

impl Found<'_> {
    /// The span of group `index`, when it took part in the match.
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        match self {
            Found::Program(spans) => spans.get(index),
            Found::Crate(captures) => captures.get(index).map(|m| (m.start(), m.end())),
        }
    }

    /// Where the whole match ends.
    pub fn end(&self) -> usize {
        self.get(0).map_or(0, |(_, end)| end)
    }
}

impl Matcher {
    /// `regex`, with a program compiled from the same pattern text when this matcher handles it.
    pub fn new(regex: Regex) -> Matcher {
        let program = Program::new(regex.as_str());
        Matcher { regex, program }
    }

    /// The crate's regex.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Whether captures come from the program.
    #[cfg(test)]
    pub fn has_program(&self) -> bool {
        self.program.is_some()
    }

    /// Whether a line that cannot match is turned away by a literal before any search: the program's leading
    /// literal at the start of an anchored pattern, or its first literal found nowhere in the line.
    pub fn has_literal_prefilter(&self) -> bool {
        self.program.as_ref().is_some_and(|p| !p.required_start.is_empty() || p.first_literal.is_some())
    }

    /// Whether the program finds what the crate finds in `text`, group by group (`Ok` also when it gave up, since the
    /// crate then answers); the difference otherwise.
    #[cfg(test)]
    pub fn agrees_with_crate(&self, text: &str) -> Result<(), String> {
        let expected = self
            .regex
            .captures(text)
            .map(|found| (0..found.len()).map(|i| found.get(i).map(|m| (m.start(), m.end()))).collect::<Vec<_>>());
        let Some(Ok(spans)) = self.program.as_ref().map(|program| program.captures(text)) else { return Ok(()) };
        let found = spans.map(|spans| (0..self.regex.captures_len()).map(|i| spans.get(i)).collect::<Vec<_>>());
        if found == expected {
            Ok(())
        } else {
            Err(format!("{:?} on {text:?}: program {found:?}, crate {expected:?}", self.regex.as_str()))
        }
    }

    /// The leftmost-first match in `text`, with its groups.
    pub fn captures<'t>(&self, text: &'t str) -> Option<Found<'t>> {
        match self.program.as_ref().map(|program| program.captures(text)) {
            Some(Ok(spans)) => spans.map(Found::Program),
            Some(Err(Exhausted)) | None => self.regex.captures(text).map(Found::Crate),
        }
    }
}

impl Program {
    /// Compiles `pattern` (with the `regex` crate's default flags), or `None` when it uses a construct this matcher
    /// does not handle.
    pub fn new(pattern: &str) -> Option<Program> {
        let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
        let mut insts = vec![Inst::Save(0)];
        compile(&hir, &mut insts).ok()?;
        insts.push(Inst::Save(1));
        insts.push(Inst::Match);
        link_runs_to_literals(&mut insts);
        if hir.properties().explicit_captures_len() + 1 > MAX_GROUPS {
            return None;
        }
        let first = insts.iter().find(|inst| !matches!(inst, Inst::Save(_)));
        let anchored = matches!(first, Some(Inst::Assert(Assertion::Start)));
        let first_literal = match first {
            Some(Inst::Literal(bytes)) => Some(memmem::Finder::new(bytes.as_ref()).into_owned()),
            _ => None,
        };
        let after_start = insts.iter().skip_while(|inst| !matches!(inst, Inst::Assert(Assertion::Start)));
        let required_start = match after_start.skip(1).find(|inst| !matches!(inst, Inst::Save(_))) {
            Some(Inst::Literal(bytes)) if anchored => bytes.clone(),
            _ => Box::default(),
        };
        Some(Program { insts, anchored, first_literal, required_start })
    }

    /// The leftmost-first match in `text` and its groups; `Err` when the search ran out of its step budget.
    pub fn captures(&self, text: &str) -> Result<Option<Spans>, Exhausted> {
        // Most patterns tried on a line fail on their first literal: say so before setting anything up.
        if !text.as_bytes().starts_with(&self.required_start) {
            return Ok(None);
        }
        // Offsets are kept as `u32`; a longer text (frames are far shorter) is the crate's.
        if u32::try_from(text.len()).is_err() {
            return Err(Exhausted);
        }
        let mut spans = Spans { slots: [UNSET; 2 * MAX_GROUPS] };
        STACK.with_borrow_mut(|stack| self.search(text, &mut spans, stack)).map(|found| found.then_some(spans))
    }

    /// Tries each candidate start in turn; whether one matched.
    fn search(&self, text: &str, spans: &mut Spans, stack: &mut Vec<Frame>) -> Result<bool, Exhausted> {
        // Generous for any sane pattern on a log line; an exponential one stops here and the caller falls back.
        let mut budget = 4096 + 64 * text.len();
        let mut start = 0;
        loop {
            if let Some(finder) = &self.first_literal {
                match finder.find(&text.as_bytes()[start..]) {
                    Some(offset) => start += offset,
                    None => return Ok(false),
                }
            }
            if self.run(text, start, &mut spans.slots, stack, &mut budget)? {
                return Ok(true);
            }
            if self.anchored || start >= text.len() {
                return Ok(false);
            }
            start = next_boundary(text, start);
        }
    }

    /// Runs the program anchored at `start`.
    fn run(
        &self,
        text: &str,
        start: usize,
        slots: &mut [u32],
        stack: &mut Vec<Frame>,
        budget: &mut usize,
    ) -> Result<bool, Exhausted> {
        let bytes = text.as_bytes();
        stack.clear();
        let (mut pc, mut at) = (0, start);
        loop {
            *budget = budget.checked_sub(1).ok_or(Exhausted)?;
            let advanced = match &self.insts[pc] {
                Inst::Match => return Ok(true),
                Inst::Literal(literal) => {
                    // The first byte decides most comparisons, without a call to `memcmp`.
                    let found = bytes.get(at) == literal.first() && bytes[at..].starts_with(literal);
                    if found {
                        at += literal.len();
                        pc += 1;
                    }
                    found
                }
                Inst::Class(class) => match class.step(text, at) {
                    Some(next) => {
                        at = next;
                        pc += 1;
                        true
                    }
                    None => false,
                },
                Inst::Run { class, min, max, greedy, .. } => match class.take(text, at, *min) {
                    None => false,
                    Some(floor) if *greedy => {
                        let (end, _) = class.take_up_to(text, floor, max - min);
                        if end > floor {
                            stack.push(Frame::GiveBack { run: pc, floor, at: end });
                        }
                        at = end;
                        pc += 1;
                        true
                    }
                    Some(floor) => {
                        if min < max {
                            stack.push(Frame::TakeMore { run: pc, at: floor, count: *min });
                        }
                        at = floor;
                        pc += 1;
                        true
                    }
                },
                Inst::Split { first, second } => {
                    stack.push(Frame::Resume { pc: *second, at });
                    pc = *first;
                    true
                }
                Inst::Jump(to) => {
                    pc = *to;
                    true
                }
                Inst::Save(slot) => {
                    stack.push(Frame::Restore { slot: *slot, old: slots[*slot] });
                    slots[*slot] = at as u32;
                    pc += 1;
                    true
                }
                Inst::Assert(assertion) => {
                    let holds = assertion.holds(text, at);
                    if holds {
                        pc += 1;
                    }
                    holds
                }
            };
            if !advanced {
                match self.backtrack(text, slots, stack, budget)? {
                    Some((next_pc, next_at)) => (pc, at) = (next_pc, next_at),
                    None => return Ok(false),
                }
            }
        }
    }

    /// Unwinds to the most recent alternative: where to go on, or `None` when there is none left.
    fn backtrack(
        &self,
        text: &str,
        slots: &mut [u32],
        stack: &mut Vec<Frame>,
        budget: &mut usize,
    ) -> Result<Option<(usize, usize)>, Exhausted> {
        while let Some(frame) = stack.pop() {
            match frame {
                Frame::Restore { slot, old } => slots[slot] = old,
                Frame::Resume { pc, at } => return Ok(Some((pc, at))),
                Frame::GiveBack { run, floor, mut at } => {
                    let Inst::Run { then, .. } = &self.insts[run] else { continue };
                    // Give back until the byte that must follow is next (or nothing is left to give).
                    loop {
                        *budget = budget.checked_sub(1).ok_or(Exhausted)?;
                        at = previous_boundary(text, at);
                        if at == floor || then.is_none_or(|byte| text.as_bytes().get(at) == Some(&byte)) {
                            break;
                        }
                    }
                    if at > floor {
                        stack.push(Frame::GiveBack { run, floor, at });
                    }
                    return Ok(Some((run + 1, at)));
                }
                Frame::TakeMore { run, mut at, mut count } => {
                    let Inst::Run { class, max, then, skip, .. } = &self.insts[run] else { continue };
                    if let Some(skip) = skip {
                        match skip.next(text.as_bytes(), at) {
                            Some(next) => {
                                *budget = budget.checked_sub(1 + (next - at) / 16).ok_or(Exhausted)?;
                                stack.push(Frame::TakeMore { run, at: next, count });
                                return Ok(Some((run + 1, next)));
                            }
                            None => continue,
                        }
                    }
                    // Take until the byte that must follow is next; give up where the class ends.
                    let taken = loop {
                        *budget = budget.checked_sub(1).ok_or(Exhausted)?;
                        let Some(longer) = class.step(text, at) else { break false };
                        (at, count) = (longer, count + 1);
                        if count == *max || then.is_none_or(|byte| text.as_bytes().get(at) == Some(&byte)) {
                            break true;
                        }
                    };
                    if taken {
                        if count < *max {
                            stack.push(Frame::TakeMore { run, at, count });
                        }
                        return Ok(Some((run + 1, at)));
                    }
                }
            }
        }
        Ok(None)
    }
}

thread_local! {
    /// The backtracking stack, kept between searches so that a search allocates nothing.
    static STACK: std::cell::RefCell<Vec<Frame>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Tells each run which byte must follow it: the first byte of the next instruction when that is a literal (capture
/// slots between them aside). A run then only stops where that byte is; anywhere else the literal would fail.
fn link_runs_to_literals(insts: &mut [Inst]) {
    for at in 0..insts.len() {
        let literal = match insts[at + 1..].iter().find(|inst| !matches!(inst, Inst::Save(_))) {
            Some(Inst::Literal(literal)) => Some(literal.clone()),
            _ => None,
        };
        if let Inst::Run { class, max, greedy, then, skip, .. } = &mut insts[at] {
            *then = literal.as_ref().and_then(|literal| literal.first().copied());
            *skip = match (literal, class.excluded_ascii()) {
                (Some(literal), Some(excluded)) if !*greedy && *max == u32::MAX => {
                    Some(Box::new(Skip { literal: memmem::Finder::new(&literal).into_owned(), excluded }))
                }
                _ => None,
            };
        }
    }
}

/// Why a pattern has no program.
struct Unsupported;

fn compile(hir: &Hir, insts: &mut Vec<Inst>) -> Result<(), Unsupported> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(literal) if literal.0.is_empty() => {}
        HirKind::Literal(literal) => insts.push(Inst::Literal(literal.0.clone())),
        HirKind::Class(class) => insts.push(Inst::Class(CharClass::from_class(class)?)),
        HirKind::Look(look) => insts.push(Inst::Assert(assertion(*look)?)),
        HirKind::Capture(capture) => {
            let index = capture.index as usize;
            if index >= MAX_GROUPS {
                return Err(Unsupported);
            }
            insts.push(Inst::Save(2 * index));
            compile(&capture.sub, insts)?;
            insts.push(Inst::Save(2 * index + 1));
        }
        HirKind::Concat(parts) => {
            for part in parts {
                compile(part, insts)?;
            }
        }
        HirKind::Alternation(branches) => {
            let mut jumps = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                let split = (i + 1 < branches.len()).then(|| {
                    insts.push(Inst::Split { first: insts.len() + 1, second: 0 });
                    insts.len() - 1
                });
                compile(branch, insts)?;
                if let Some(split) = split {
                    jumps.push(insts.len());
                    insts.push(Inst::Jump(0));
                    let next = insts.len();
                    if let Inst::Split { second, .. } = &mut insts[split] {
                        *second = next;
                    }
                }
            }
            let end = insts.len();
            for jump in jumps {
                insts[jump] = Inst::Jump(end);
            }
        }
        HirKind::Repetition(repetition) => {
            let (min, max, greedy) = (repetition.min, repetition.max, repetition.greedy);
            if let HirKind::Class(class) = repetition.sub.kind() {
                let class = CharClass::from_class(class)?;
                let max = max.unwrap_or(u32::MAX);
                insts.push(Inst::Run { class, min, max, greedy, then: None, skip: None });
                return Ok(());
            }
            // A loop around something that can match empty needs the empty-iteration rules of the crate's engines;
            // such patterns keep the crate.
            if repetition.sub.properties().minimum_len().is_none_or(|len| len == 0) || min > MAX_UNROLLED {
                return Err(Unsupported);
            }
            for _ in 0..min {
                compile(&repetition.sub, insts)?;
            }
            match max {
                Some(max) => {
                    if max - min > MAX_UNROLLED {
                        return Err(Unsupported);
                    }
                    let mut splits = Vec::new();
                    for _ in min..max {
                        splits.push(insts.len());
                        insts.push(Inst::Split { first: 0, second: 0 });
                        compile(&repetition.sub, insts)?;
                    }
                    let end = insts.len();
                    for split in splits {
                        let (body, skip) = (split + 1, end);
                        insts[split] = split_in_order(body, skip, greedy);
                    }
                }
                None => {
                    let split = insts.len();
                    insts.push(Inst::Split { first: 0, second: 0 });
                    compile(&repetition.sub, insts)?;
                    insts.push(Inst::Jump(split));
                    let end = insts.len();
                    insts[split] = split_in_order(split + 1, end, greedy);
                }
            }
        }
    }
    Ok(())
}

/// A split that tries the body first when greedy, the way past it first when lazy.
fn split_in_order(body: usize, skip: usize, greedy: bool) -> Inst {
    if greedy {
        Inst::Split { first: body, second: skip }
    } else {
        Inst::Split { first: skip, second: body }
    }
}

fn assertion(look: Look) -> Result<Assertion, Unsupported> {
    Ok(match look {
        Look::Start => Assertion::Start,
        Look::End => Assertion::End,
        Look::WordAscii => Assertion::WordBoundary { unicode: false, negate: false },
        Look::WordAsciiNegate => Assertion::WordBoundary { unicode: false, negate: true },
        Look::WordUnicode => Assertion::WordBoundary { unicode: true, negate: false },
        Look::WordUnicodeNegate => Assertion::WordBoundary { unicode: true, negate: true },
        _ => return Err(Unsupported),
    })
}

impl Assertion {
    fn holds(self, text: &str, at: usize) -> bool {
        match self {
            Assertion::Start => at == 0,
            Assertion::End => at == text.len(),
            Assertion::WordBoundary { unicode, negate } => {
                let is_word = |c: char| {
                    if unicode {
                        regex_syntax::is_word_character(c)
                    } else {
                        c.is_ascii_alphanumeric() || c == '_'
                    }
                };
                let before = text[..at].chars().next_back().is_some_and(is_word);
                let after = text[at..].chars().next().is_some_and(is_word);
                (before != after) != negate
            }
        }
    }
}

impl Skip {
    /// The next place after `at` where the literal occurs and the run can reach.
    fn next(&self, bytes: &[u8], at: usize) -> Option<usize> {
        // At least one more character: the literal is searched from the byte after `at` (a match never starts
        // inside a character, since the literal is UTF-8 too).
        let next = at + 1 + self.literal.find(bytes.get(at + 1..)?)?;
        let between = &bytes[at..next];
        let blocked = match *self.excluded {
            [] => false,
            [a] => memchr::memchr(a, between).is_some(),
            [a, b] => memchr::memchr2(a, b, between).is_some(),
            [a, b, c] => memchr::memchr3(a, b, c, between).is_some(),
            _ => between.iter().any(|byte| self.excluded.contains(byte)),
        };
        (!blocked).then_some(next)
    }
}

impl CharClass {
    /// The ASCII bytes the class leaves out, when it admits every other character and leaves out at most three.
    fn excluded_ascii(&self) -> Option<Box<[u8]>> {
        let excluded: Vec<u8> = (0..128u8).filter(|&byte| self.ascii >> byte & 1 == 0).collect();
        if excluded.len() > 3 {
            return None;
        }
        // The ranges beyond ASCII must cover every character (surrogates are no characters).
        let mut next = 0x80u32;
        for &(low, high) in self.other.iter() {
            let low = u32::from(low);
            if low > next && !(next == 0xD800 && low == 0xE000) {
                return None;
            }
            next = next.max(u32::from(high) + 1);
        }
        (next == 0x11_0000).then(|| excluded.into())
    }

    fn from_class(class: &Class) -> Result<CharClass, Unsupported> {
        let mut ascii = 0u128;
        let mut other = Vec::new();
        let mut add = |start: u32, end: u32| {
            for code in start..=end.min(127) {
                ascii |= 1 << code;
            }
            if end >= 128 {
                let low = char::from_u32(start.max(128)).unwrap_or('\u{80}');
                let high = char::from_u32(end).unwrap_or(char::MAX);
                other.push((low, high));
            }
        };
        match class {
            Class::Unicode(unicode) => {
                for range in unicode.ranges() {
                    add(u32::from(range.start()), u32::from(range.end()));
                }
            }
            Class::Bytes(bytes) => {
                // Byte classes beyond ASCII would match inside UTF-8 sequences; the crate rejects them in its UTF-8
                // mode, and so does this.
                for range in bytes.ranges() {
                    if range.end() >= 128 {
                        return Err(Unsupported);
                    }
                    add(u32::from(range.start()), u32::from(range.end()));
                }
            }
        }
        Ok(CharClass { ascii, other: other.into() })
    }

    /// The position after the character at `at`, when it is in the class.
    #[inline]
    fn step(&self, text: &str, at: usize) -> Option<usize> {
        let byte = *text.as_bytes().get(at)?;
        if byte < 128 {
            return (self.ascii >> byte & 1 == 1).then_some(at + 1);
        }
        if self.other.is_empty() {
            return None;
        }
        let c = text[at..].chars().next()?;
        let inside = self.other.binary_search_by(|(low, high)| {
            if *high < c {
                std::cmp::Ordering::Less
            } else if *low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        inside.is_ok().then_some(at + c.len_utf8())
    }

    /// The position after exactly `count` characters of the class from `at`, when there are that many.
    fn take(&self, text: &str, mut at: usize, count: u32) -> Option<usize> {
        for _ in 0..count {
            at = self.step(text, at)?;
        }
        Some(at)
    }

    /// The position after as many characters of the class as there are from `at`, at most `most`; and how many.
    fn take_up_to(&self, text: &str, mut at: usize, most: u32) -> (usize, u32) {
        let mut taken = 0;
        while taken < most {
            match self.step(text, at) {
                Some(next) => at = next,
                None => break,
            }
            taken += 1;
        }
        (at, taken)
    }
}

/// The start of the character after the one at `at`.
fn next_boundary(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(at + 1, |c| at + c.len_utf8())
}

/// The start of the character before `at`.
fn previous_boundary(text: &str, at: usize) -> usize {
    text[..at].chars().next_back().map_or(0, |c| at - c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    /// Asserts that the program finds what the crate finds, group by group.
    fn same_as_crate(pattern: &str, text: &str) {
        let matcher = Matcher::new(Regex::new(pattern).expect("a valid pattern"));
        assert!(matcher.has_program(), "{pattern:?} compiles");
        assert_ne!(Program::new(pattern).map(|p| p.captures(text)), Some(Err(Exhausted)), "{pattern:?} on {text:?}");
        matcher.agrees_with_crate(text).unwrap();
    }

    const PATTERNS: &[&str] = &[
        r"^Command: (?P<c>.*?) : (?P<u>[^:]*?) : (?P<s>\S+)$",
        r"^Lush user login : (?P<u>[^:]+?) : (?P<s>\S+)$",
        r"(?P<code>ALM\d{4}): (?P<text>.+?)\s*$",
        r"^Fail to establish a secure channel with client : (?P<p>\S+?)(?: : (?P<rc>RC_\w+))?\s*$",
        r"^(?:Identify|Handshake) result from: (?P<p>[^,\s]+), result: (?P<r>\w+)",
        r"\((?P<v>[0-9A-Fa-f]{1,8}) : (?P<rc>LUNA_RET_\w+)\)",
        r"(?i)external tamper latched",
        r"^pam_unix\(sshd:auth\): authentication failure;.*?\brhost=(?P<ip>\S+)(?:\s+user=(?P<u>\S+))?",
        r"^(?:[^\^\s]*\^)?(?P<seq>\d+)\s*,[^,]*,\s*(?:S/N (?P<sn>\d+) )?session (?P<s>\d+)",
        r"(a|ab)(c|bcd)(d*)",
        r"(?:ab){2,3}?c",
        r"(?:ab){1,3}(b)?",
        r"x(?:y|yz)+?z",
        r"\bfoo\b|\Bbar",
        r"é+(.)",
        r"[^a]{2}(.)",
        r"a.{0,3}?b",
        r"(\w+)\s(\w+)$",
        r"^$",
        r"",
    ];

    #[test]
    fn known_cases_match_the_crate() {
        let texts = [
            "Command: partition create -par p1 : admin : Console",
            "Command: a : b : c : d : 10.0.0.1/22",
            "Command: a\nb : u : Console",
            "Command: a : b\n : c : Console",
            "Lush user login : a\n : b : Console",
            "Lush user login : op : er : Console",
            "k7pf0: ALM0012: HSM tamper  \t",
            "Fail to establish a secure channel with client : 1.2.3.4/5 : RC_SSL_X ",
            "Handshake result from: 1.2.3.4/5, result: 0",
            "x (A00000 : LUNA_RET_UM_PIN_INCORRECT) (0 : LUNA_RET_OK)",
            "EXTERNAL Tamper LATCHED",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 rhost=10.1.1.1  user=root",
            "hsm_1^1048 ,03/20/26,S/N 150518 session 3",
            "abcd abd ababc abababc xyzz xyzyzz foo bar foobar ébar",
            "ééé1 é ab b aé_b a-b",
            "",
            "naïve café",
        ];
        for pattern in PATTERNS {
            for text in texts {
                same_as_crate(pattern, text);
            }
        }
    }

    #[test]
    fn lazy_runs_of_nearly_every_character_skip_to_the_next_literal() {
        let skips = |pattern: &str| {
            let program = Program::new(pattern).expect("compiles");
            program.insts.iter().filter(|inst| matches!(inst, Inst::Run { skip: Some(_), .. })).count()
        };
        assert_eq!(skips(r"^a (.*?) : ([^:]*?) : (\S+)$"), 2);
        assert_eq!(skips(r"^a (.*) : "), 0, "greedy");
        assert_eq!(skips(r"^a (.{0,9}?) : "), 0, "bounded");
        assert_eq!(skips(r"^a ([^:;,\s]*?) : "), 0, "too many exclusions");
        assert_eq!(skips(r"^a ([a-z]*?) : "), 0, "not nearly every character");
    }

    #[test]
    fn unsupported_constructs_have_no_program() {
        assert!(Program::new(r"(?:a*)*b").is_none(), "a loop around an empty match");
        assert!(Program::new(r"(?m)^a$").is_none(), "line anchors");
        assert!(Program::new(r"(?:ab){40}").is_none(), "a large counted repeat");
        assert!(Program::new(r"(").is_none(), "an invalid pattern");
    }

    #[test]
    fn exponential_backtracking_runs_out_of_budget() {
        let program = Program::new(r"^(?:a|a)+(?:a|a)+(?:a|a)+b$").expect("compiles");
        assert_eq!(program.captures(&"a".repeat(40)), Err(Exhausted));
    }

    proptest! {
        #[test]
        fn arbitrary_texts_match_the_crate(
            pattern in proptest::sample::select(PATTERNS),
            text in "[a-dxyzCé:() ,_\\-0-9ALMRUN^\t]{0,40}",
        ) {
            same_as_crate(pattern, &text);
        }
    }
}
