//! A linear pre-scan that bounds how deeply the oxc parser (and the passes after it) will recurse,
//! so hostile input cannot overflow the stack and abort the process.
//!
//! Why: oxc 0.146 has no recursion guard. `((((…` 3,000 deep, `a.b.c…` 7,000 long or `if(a)if(a)…`
//! overflow an 8 MB stack in debug builds (parse, semantic, transform or codegen). So before parsing
//! we estimate the depth with a small tokenizer that mirrors oxc's lexer:
//!
//! * every bracket (`(`, `[`, `{`, `${`) opens a frame; the estimate is the sum over open frames
//!   of (1 + tokens seen in that frame since its last `,` or `;`). Long operator or member chains
//!   (`a+a+…`, `a.b.c…`) and statement prefixes (`if(a)if(a)…`, `else if` chains) therefore count,
//!   while ordinary code (statements ended by `;`, arguments split by `,`) stays small.
//! * strings, templates, comments and regular expressions are skipped exactly like oxc does, so
//!   brackets inside them do not count. A `/` is classified as division or regular expression from
//!   the previous token (the parser-free rule that is exact for valid code), and where that is not
//!   possible (`/` right after `}`, `of` or `>`) the code is rejected instead of guessed: a wrong
//!   guess could hide real nesting inside what we think is a literal.
//! * on input oxc stops at (unterminated literal, invalid character, unmatched bracket), we stop:
//!   oxc's parser ends at its first fatal error, so nothing after it can recurse.
//!
//! Measured in debug builds (the worst case), one unit of the estimate costs at most ~2 KB of stack
//! across parse, semantic, transform, checks and codegen (nested tuple types and arrays are the
//! most expensive), and the real depth is at most about twice the estimate (a `,` resets the count
//! under `if (…)` prefixes). Every shape we tried at `MAX_NESTING` passes on a 32 MB stack; the
//! validator runs deep inputs on a thread with a 64 MB stack and shallow ones (the common case)
//! inline (see `mod.rs`).

use oxc::syntax::identifier::{is_identifier_part, is_identifier_start_unicode, is_irregular_whitespace};

/// Largest accepted nesting estimate.
pub(crate) const MAX_NESTING: u32 = 8192;

/// Most `<` a statement may leave open (not closed by `>`), over all its open brackets. In TypeScript
/// every `<` after an operand may begin type arguments, so oxc parses what follows speculatively and,
/// when that fails, parses it again as an expression; open `<` interleaved with brackets make that cost
/// grow exponentially (fuzzing found 250 bytes that take seconds, `fuzz/regressions/validator/`).
/// Ordinary code leaves a few open (`i < n`, `a < b && c < d`); generics close theirs.
pub(crate) const MAX_OPEN_ANGLES: u32 = 32;

/// Most brackets that may be open inside a statement after one of its open `<` (each is parsed once as
/// a type and once as an expression, nested): `a < f([{ b: [1] }])` has 4.
pub(crate) const MAX_BRACKETS_AFTER_ANGLE: u32 = 16;

/// Result of the scan.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Highest nesting estimate seen.
    Depth(u32),
    /// The estimate passed `MAX_NESTING` at this byte offset.
    TooDeep(usize),
    /// A construct at this byte offset the scan cannot classify safely; the `&str` names it.
    Ambiguous(usize, &'static str),
    /// More than `MAX_OPEN_ANGLES` open `<` in one statement at this byte offset.
    TooManyAngles(usize),
}

pub(crate) fn scan(source: &str) -> Scan {
    let mut s = Scanner {
        src: source,
        bytes: source.as_bytes(),
        pos: 0,
        frames: vec![Frame::new(FrameKind::Root, Prev::Div)],
        sum: 1,
        max: 1,
        angles: 0,
        after_angle: 0,
        prev: Prev::Regex,
        kw: Kw::None,
        after_dot: false,
        after_as: false,
        newline: false,
    };
    match s.run() {
        Ok(()) | Err(Stop::End) => Scan::Depth(s.max),
        Err(Stop::TooDeep) => Scan::TooDeep(s.pos),
        Err(Stop::Ambiguous(what)) => Scan::Ambiguous(s.pos, what),
        Err(Stop::TooManyAngles) => Scan::TooManyAngles(s.pos),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Root,
    Paren,
    Bracket,
    Brace,
    /// `${` … `}` inside a template literal.
    Subst,
}

/// What a `/` right after the previous token means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Start of a regular expression (after operators, keywords, `(` …).
    Regex,
    /// Division (after identifiers, literals, `]`, `)` of a call …).
    Div,
    /// Needs a parser to tell; a `/` here is rejected.
    Ambiguous(&'static str),
}

/// Keyword context of the previous word, for the `)` of `if (…)` and friends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kw {
    None,
    /// `if`, `while`, `for`, `with`: a `/` after the matching `)` starts a regular expression.
    Cond,
    /// `for`: may be followed by `await`.
    For,
    /// An escaped keyword (`\u0069f`): oxc may or may not treat it as the keyword.
    Escaped,
}

struct Frame {
    kind: FrameKind,
    /// Tokens in this frame since its last `,`/`;`.
    run: u32,
    /// A `;` was seen: reset `run` at the next token unless it is `else`/`while` (which continue
    /// the statement before the `;`: `if (a) x; else …`, `do x; while (…)`).
    pending_reset: bool,
    /// What a `/` after this frame's closing bracket means.
    close_prev: Prev,
    /// `<` seen in this frame's statement and not closed by `>`.
    angles: u32,
    /// Opened while a `<` was open.
    after_angle: bool,
}

impl Frame {
    fn new(kind: FrameKind, close_prev: Prev) -> Self {
        Self { kind, run: 0, pending_reset: false, close_prev, angles: 0, after_angle: false }
    }
}

enum Stop {
    /// oxc stops parsing here (or the input ended): nothing after can nest deeper.
    End,
    TooDeep,
    Ambiguous(&'static str),
    TooManyAngles,
}

type Step = Result<(), Stop>;

struct Scanner<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
    frames: Vec<Frame>,
    /// Sum over frames of (1 + run).
    sum: u32,
    max: u32,
    /// Sum over frames of their open `<`.
    angles: u32,
    /// Open frames opened while a `<` was open.
    after_angle: u32,
    prev: Prev,
    kw: Kw,
    /// The previous token was `.` or `?.`, so a word is a property name, never a keyword.
    after_dot: bool,
    /// The previous token was the word `as` or `satisfies`: a type follows (`x as const / 2`).
    after_as: bool,
    /// A line terminator was seen since the previous token.
    newline: bool,
}

/// Reserved words after which a `/` starts a regular expression (`return /re/`, `typeof /re/`).
#[rustfmt::skip]
const REGEX_KEYWORDS: &[&str] = &[
    "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default",
    "delete", "do", "else", "enum", "export", "extends", "finally", "for", "function", "if",
    "implements", "import", "in", "instanceof", "interface", "let", "new", "package", "private",
    "protected", "public", "return", "static", "switch", "throw", "try", "typeof", "var", "void",
    "while", "with", "yield",
];

/// Words that can continue an expression or statement on the next line (`a\n in b`,
/// `do {} \n while (x)`, `} \n else`), so a line break before them is no statement boundary.
#[rustfmt::skip]
const CONTINUATION_WORDS: &[&str] = &[
    "as", "assert", "asserts", "catch", "else", "extends", "finally", "from", "implements", "in",
    "instanceof", "is", "of", "satisfies", "while", "with",
];

impl Scanner<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn run(&mut self) -> Step {
        while let Some(b) = self.peek(0) {
            match b {
                b' ' | b'\t' | 0x0B | 0x0C => self.pos += 1,
                b'\n' | b'\r' => {
                    self.newline = true;
                    self.pos += 1;
                }
                b'/' => match self.peek(1) {
                    Some(b'/') => self.line_comment(),
                    Some(b'*') => self.block_comment()?,
                    _ => self.slash()?,
                },
                b'\'' | b'"' => {
                    self.token(None, Prev::Div)?;
                    self.string(b)?;
                }
                b'`' => {
                    self.token(None, Prev::Div)?;
                    self.pos += 1;
                    self.template()?;
                }
                b'(' | b'[' | b'{' => self.open(b)?,
                b')' | b']' | b'}' => self.close(b)?,
                b',' => {
                    self.pos += 1;
                    self.separator(false);
                }
                b';' => {
                    self.pos += 1;
                    self.separator(true);
                }
                b'0'..=b'9' => self.number()?,
                b'.' => self.dot()?,
                b'?' => {
                    let optional_chain =
                        self.peek(1) == Some(b'.') && !matches!(self.peek(2), Some(b'0'..=b'9'));
                    self.token(None, Prev::Regex)?;
                    self.pos += if optional_chain { 2 } else { 1 };
                    self.after_dot = optional_chain;
                }
                b'=' => {
                    self.token(None, Prev::Regex)?;
                    self.pos += if self.peek(1) == Some(b'>') { 2 } else { 1 };
                }
                b'>' => {
                    // `>`, `>>`, `>>>` may close TS type arguments (`x as A<B> / 2`): ambiguous.
                    let mut n = 1;
                    while self.peek(n) == Some(b'>') {
                        n += 1;
                    }
                    self.close_angles(n);
                    let assign = self.peek(n) == Some(b'=');
                    self.token(None, if assign { Prev::Regex } else { Prev::Ambiguous("`>`") })?;
                    self.pos += n + usize::from(assign);
                }
                b'<' if self.src.get(self.pos..).is_some_and(|r| r.starts_with("<!--")) => {
                    // An HTML-like comment on a new line is skipped by oxc with a non-fatal error.
                    return Err(Stop::Ambiguous("`<!--`"));
                }
                b'+' | b'-' if self.peek(1) == Some(b) => {
                    // Postfix `++` ends an operand (`i++ / 2`); prefix starts one.
                    let next = self.after_operand(Prev::Regex);
                    self.token(None, next)?;
                    self.pos += 2;
                }
                b'!' if self.peek(1) != Some(b'=') => {
                    // TypeScript's postfix non-null `x!` ends an operand; prefix `!x` starts one.
                    let next = self.after_operand(Prev::Regex);
                    self.token(None, next)?;
                    self.pos += 1;
                }
                b'#' if self.pos == 0 && self.peek(1) == Some(b'!') => self.line_comment(),
                b'#' => {
                    self.token(None, Prev::Div)?;
                    self.pos += 1;
                    self.word_end();
                }
                b'\\' | b'$' | b'_' | b'a'..=b'z' | b'A'..=b'Z' => self.word()?,
                b'<' => {
                    self.token(None, Prev::Regex)?;
                    self.pos += 1;
                    // `<=` and the second `<` of `<<` never begin type arguments.
                    if !matches!(self.peek(0), Some(b'=' | b'<'))
                        && self.bytes.get(self.pos.wrapping_sub(2)) != Some(&b'<')
                    {
                        self.open_angle()?;
                    }
                }
                b'!' | b'%' | b'&' | b'*' | b'+' | b'-' | b':' | b'@' | b'^' | b'|' | b'~' => {
                    self.token(None, Prev::Regex)?;
                    self.pos += 1;
                }
                0x80.. => self.non_ascii()?,
                // Any other ASCII byte is an invalid character: a fatal error in oxc.
                _ => return Err(Stop::End),
            }
        }
        Ok(())
    }

    /// Counts one token in the innermost frame and sets what a following `/` means.
    fn token(&mut self, word: Option<&str>, prev: Prev) -> Step {
        let continues_statement = matches!(word, Some("else" | "while"));
        // Automatic semicolon insertion: after an operand, on a new line, a word that cannot
        // continue the expression starts a new statement, so code without `;` stays shallow.
        let asi = self.newline
            && matches!(self.prev, Prev::Div | Prev::Ambiguous("`}`"))
            && word.is_some_and(|w| !CONTINUATION_WORDS.contains(&w));
        if let Some(frame) = self.frames.last_mut() {
            let pending = std::mem::take(&mut frame.pending_reset);
            if asi || (pending && !continues_statement) {
                self.sum -= frame.run;
                frame.run = 0;
                // A new statement: the `<` of the one before cannot begin its type arguments.
                self.angles -= frame.angles;
                frame.angles = 0;
            }
            frame.run += 1;
        }
        self.sum += 1;
        self.max = self.max.max(self.sum);
        self.prev = prev;
        self.kw = Kw::None;
        self.after_dot = false;
        self.after_as = false;
        self.newline = false;
        if self.sum > MAX_NESTING { Err(Stop::TooDeep) } else { Ok(()) }
    }

    fn open_angle(&mut self) -> Step {
        if let Some(frame) = self.frames.last_mut() {
            frame.angles += 1;
            self.angles += 1;
        }
        if self.angles > MAX_OPEN_ANGLES { Err(Stop::TooManyAngles) } else { Ok(()) }
    }

    /// `n` closing `>` (of `>`, `>>`, `>>>`) close as many open `<` of the innermost frame.
    fn close_angles(&mut self, n: usize) {
        if let Some(frame) = self.frames.last_mut() {
            let closed = frame.angles.min(u32::try_from(n).unwrap_or(u32::MAX));
            frame.angles -= closed;
            self.angles -= closed;
        }
    }

    /// What follows a postfix-capable operator: an operand end if it directly follows one.
    fn after_operand(&self, otherwise: Prev) -> Prev {
        match self.prev {
            Prev::Div if !self.newline => Prev::Div,
            Prev::Ambiguous(what) => Prev::Ambiguous(what),
            _ => otherwise,
        }
    }

    fn separator(&mut self, semicolon: bool) {
        if let Some(frame) = self.frames.last_mut() {
            if semicolon {
                frame.pending_reset = true;
            } else {
                self.sum -= frame.run;
                frame.run = 0;
                frame.pending_reset = false;
            }
        }
        self.prev = Prev::Regex;
        self.kw = Kw::None;
        self.after_dot = false;
        self.after_as = false;
        self.newline = false;
    }

    fn open(&mut self, b: u8) -> Step {
        let (kind, close_prev) = match b {
            b'(' => (
                FrameKind::Paren,
                match self.kw {
                    Kw::Cond | Kw::For => Prev::Regex,
                    Kw::Escaped => Prev::Ambiguous("an escaped keyword"),
                    Kw::None => Prev::Div,
                },
            ),
            b'[' => (FrameKind::Bracket, Prev::Div),
            _ => (FrameKind::Brace, Prev::Ambiguous("`}`")),
        };
        self.token(None, Prev::Regex)?;
        self.push(kind, close_prev)?;
        self.pos += 1;
        Ok(())
    }

    fn push(&mut self, kind: FrameKind, close_prev: Prev) -> Step {
        let mut frame = Frame::new(kind, close_prev);
        if self.angles > 0 {
            frame.after_angle = true;
            self.after_angle += 1;
            if self.after_angle > MAX_BRACKETS_AFTER_ANGLE {
                return Err(Stop::TooManyAngles);
            }
        }
        self.frames.push(frame);
        self.sum += 1;
        self.max = self.max.max(self.sum);
        if self.sum > MAX_NESTING { Err(Stop::TooDeep) } else { Ok(()) }
    }

    fn close(&mut self, b: u8) -> Step {
        let want = match b {
            b')' => FrameKind::Paren,
            b']' => FrameKind::Bracket,
            _ => FrameKind::Brace,
        };
        let top = self.frames.last().map_or(FrameKind::Root, |f| f.kind);
        let is_subst = b == b'}' && top == FrameKind::Subst;
        if top != want && !is_subst {
            // Unmatched closer: a fatal syntax error in oxc.
            return Err(Stop::End);
        }
        let Some(frame) = self.frames.pop() else { return Err(Stop::End) };
        self.sum -= 1 + frame.run;
        self.angles -= frame.angles;
        self.after_angle -= u32::from(frame.after_angle);
        self.pos += 1;
        self.newline = false;
        self.kw = Kw::None;
        self.after_dot = false;
        self.after_as = false;
        if is_subst {
            self.template()
        } else {
            self.prev = frame.close_prev;
            Ok(())
        }
    }

    fn slash(&mut self) -> Step {
        match self.prev {
            Prev::Ambiguous(what) => Err(Stop::Ambiguous(what)),
            Prev::Div => {
                self.token(None, Prev::Regex)?;
                self.pos += if self.peek(1) == Some(b'=') { 2 } else { 1 };
                Ok(())
            }
            Prev::Regex => {
                self.token(None, Prev::Div)?;
                self.regex()
            }
        }
    }

    /// A regular expression literal; mirrors oxc's `read_regex`.
    fn regex(&mut self) -> Step {
        self.pos += 1;
        let (mut escape, mut class) = (false, false);
        loop {
            let Some(c) = self.src.get(self.pos..).and_then(|r| r.chars().next()) else {
                return Err(Stop::End);
            };
            if is_line_break(c) {
                return Err(Stop::End); // unterminated: oxc gives up on the rest of the file
            }
            self.pos += c.len_utf8();
            match c {
                _ if escape => escape = false,
                '/' if !class => break,
                '[' => class = true,
                '\\' => escape = true,
                ']' => class = false,
                _ => {}
            }
        }
        while matches!(self.peek(0), Some(b'$' | b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9')) {
            self.pos += 1;
        }
        Ok(())
    }

    fn string(&mut self, quote: u8) -> Step {
        self.pos += 1;
        loop {
            match self.peek(0) {
                None | Some(b'\n' | b'\r') => return Err(Stop::End), // unterminated: fatal in oxc
                Some(b) if b == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    let crlf = self.peek(1) == Some(b'\r') && self.peek(2) == Some(b'\n');
                    self.pos += if crlf { 3 } else { 2 };
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Template text up to the closing backtick, or up to `${` (which opens a frame).
    fn template(&mut self) -> Step {
        loop {
            match self.peek(0) {
                None => return Err(Stop::End),
                Some(b'`') => {
                    self.pos += 1;
                    self.prev = Prev::Div;
                    return Ok(());
                }
                Some(b'\\') => self.pos += 2,
                Some(b'$') if self.peek(1) == Some(b'{') => {
                    self.pos += 2;
                    self.prev = Prev::Regex;
                    return self.push(FrameKind::Subst, Prev::Div);
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn line_comment(&mut self) {
        while let Some(c) = self.src.get(self.pos..).and_then(|r| r.chars().next()) {
            if is_line_break(c) {
                return;
            }
            self.pos += c.len_utf8();
        }
    }

    fn block_comment(&mut self) -> Step {
        let rest = self.src.get(self.pos + 2..).unwrap_or("");
        let Some(end) = rest.find("*/") else { return Err(Stop::End) };
        if rest[..end].chars().any(is_line_break) {
            self.newline = true;
        }
        self.pos += 2 + end + 2;
        Ok(())
    }

    fn number(&mut self) -> Step {
        self.token(None, Prev::Div)?;
        let radix = self.peek(0) == Some(b'0')
            && matches!(self.peek(1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'));
        while let Some(b) = self.peek(0) {
            let exponent_sign = !radix
                && matches!(b, b'+' | b'-')
                && self.pos > 0
                && matches!(self.bytes.get(self.pos - 1), Some(b'e' | b'E'));
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || exponent_sign {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn dot(&mut self) -> Step {
        if matches!(self.peek(1), Some(b'0'..=b'9')) {
            return self.number();
        }
        let spread = self.peek(1) == Some(b'.') && self.peek(2) == Some(b'.');
        self.token(None, Prev::Regex)?;
        self.pos += if spread { 3 } else { 1 };
        self.after_dot = !spread;
        Ok(())
    }

    fn non_ascii(&mut self) -> Step {
        let Some(c) = self.src.get(self.pos..).and_then(|r| r.chars().next()) else {
            return Err(Stop::End);
        };
        if c == '\u{2028}' || c == '\u{2029}' {
            self.newline = true;
            self.pos += c.len_utf8();
            Ok(())
        } else if is_irregular_whitespace(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else if is_identifier_start_unicode(c) {
            self.word()
        } else {
            Err(Stop::End) // U+FFFD (binary file) or an invalid character: oxc stops
        }
    }

    /// An identifier or keyword (possibly with `\u` escapes).
    fn word(&mut self) -> Step {
        let start = self.pos;
        let escaped = self.word_end();
        let raw = self.src.get(start..self.pos).unwrap_or("");
        let decoded;
        let name = if escaped {
            decoded = decode_escapes(raw);
            decoded.as_str()
        } else {
            raw
        };
        // Operands end before a `/`: property names (`x.if`), types after `as` (`x as const / 2`)
        // and the keywords that are values.
        let operand = self.after_dot
            || (self.after_as && matches!(name, "const" | "void"))
            || matches!(name, "this" | "super" | "null" | "true" | "false");
        let (prev, kw) = if operand {
            (Prev::Div, Kw::None)
        } else if name == "of" {
            (Prev::Ambiguous("`of`"), Kw::None) // `for (x of /re/…)` versus a variable `of / 2`
        } else if REGEX_KEYWORDS.contains(&name) {
            if escaped {
                (Prev::Ambiguous("an escaped keyword"), Kw::Escaped)
            } else {
                let kw = match name {
                    "if" | "while" | "with" => Kw::Cond,
                    "for" => Kw::For,
                    "await" if self.kw == Kw::For => Kw::For, // `for await (…)`
                    _ => Kw::None,
                };
                (Prev::Regex, kw)
            }
        } else {
            (Prev::Div, Kw::None)
        };
        let is_as = !self.after_dot && !escaped && matches!(name, "as" | "satisfies");
        self.token(Some(name), prev)?;
        self.kw = kw;
        self.after_as = is_as;
        Ok(())
    }

    /// Advances over identifier characters; returns whether a `\` escape was seen.
    fn word_end(&mut self) -> bool {
        let mut escaped = false;
        while let Some(c) = self.src.get(self.pos..).and_then(|r| r.chars().next()) {
            if c == '\\' {
                escaped = true;
                self.pos += 1;
                if self.peek(0) == Some(b'u') {
                    self.pos += 1;
                    if self.peek(0) == Some(b'{') {
                        while let Some(b) = self.peek(0) {
                            self.pos += 1;
                            if b == b'}' {
                                break;
                            }
                        }
                    }
                }
            } else if is_identifier_part(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        escaped
    }
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// Decodes `\uXXXX` and `\u{X…}` escapes in an identifier (best effort: only used to recognise
/// escaped keywords).
fn decode_escapes(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        let (hex, tail) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            (&inner[..end], inner.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.char_indices().nth(4).map_or(rest.len(), |(i, _)| i);
            (&rest[..end], &rest[end..])
        };
        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            Some(c) => out.push(c),
            None => out.push('\u{FFFD}'),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(src: &str) -> u32 {
        let result = scan(src);
        assert!(matches!(result, Scan::Depth(_)), "{src}: {result:?}");
        if let Scan::Depth(d) = result { d } else { 0 }
    }

    #[test]
    fn ordinary_code_is_shallow() {
        let src = "const r = await mcp.search({ q: 'x(' });\nfor (const i of r.items) {\n  if (i.ok) console.log(i.name);\n}\nreturn r.items.length;\n";
        assert!(depth(src) < 32, "{}", depth(src));
    }

    #[test]
    fn code_without_semicolons_is_shallow() {
        let src = "const a = f(x)\nlet b = a.b.c\nfoo()\nif (a) {\n  b = 2\n}\nreturn b\n".repeat(500);
        assert!(depth(&src) < 32, "{}", depth(&src));
        // But a line break inside an expression does not reset: `a\n+ a\n+ a …` is one chain.
        assert!(depth(&"a\n+ ".repeat(1000)) > 1000);
        assert!(depth(&"if (a) x\nelse ".repeat(1000)) > 1000);
    }

    #[test]
    fn literals_hide_brackets() {
        assert_eq!(depth("'(((('; \"[[[[\"; `{{{{`; /((((/; // ((((\n/* (((( */ x"), 2);
    }

    #[test]
    fn nesting_and_chains_count() {
        assert!(depth(&"(".repeat(100)) > 100);
        assert!(depth(&format!("x = a{}", ".b".repeat(100))) > 200);
        assert!(depth(&format!("{}x", "if (a) ".repeat(100))) > 200);
        assert_eq!(scan(&"(".repeat(20_000)), Scan::TooDeep(4095));
    }

    #[test]
    fn regex_versus_division() {
        assert!(matches!(scan("if (x) /)/.test(s); ((y))"), Scan::Depth(_)));
        assert!(matches!(scan("a = (b) / 2 / (c)"), Scan::Depth(_)));
        assert!(matches!(scan("i++ / 2; x! / 3; y as const / 4"), Scan::Depth(_)));
        assert!(matches!(scan("x.if(a) / 2"), Scan::Depth(_)));
        assert!(matches!(scan("function f() {}\n/re/.test(s)"), Scan::Ambiguous(_, "`}`")));
        assert!(matches!(scan("for (x of /a/.exec(s)) {}"), Scan::Ambiguous(_, "`of`")));
        assert!(matches!(scan("x as A<B> / 2"), Scan::Ambiguous(_, "`>`")));
        assert!(matches!(scan("\\u0069f (x) /re/"), Scan::Ambiguous(..)));
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(decode_escapes("\\u0069f"), "if");
        assert_eq!(decode_escapes("e\\u{76}al"), "eval");
    }
}
