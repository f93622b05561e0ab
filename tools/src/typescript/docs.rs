//! Text from untrusted schemas made safe for doc comments: it can never close the comment early.

use serde_json::Value;

use super::{INDENT, MAX_DESCRIPTION_CHARS, SINGLE_LINE_COMMENT_WIDTH};

/// The description of a schema (its `title` when it has none).
pub(super) fn description_of(schema: &Value) -> Option<&str> {
    schema
        .get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .or_else(|| schema.get("title").and_then(Value::as_str))
}

/// Text made safe for a doc comment: control and bidirectional-override characters removed (tabs become
/// spaces), `*/` escaped, cut to `max_chars` (with "…"), split into trimmed lines without runs of blank
/// lines or leading/trailing blank lines.
pub(super) fn sanitize_doc(text: &str, max_chars: usize) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut cut = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\r' | '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        if count == max_chars {
            cut = true;
            break;
        }
        cleaned.push(c);
        count += 1;
    }
    if cut {
        cleaned.truncate(cleaned.trim_end().len());
        cleaned.push('…');
    }
    let cleaned = cleaned.replace("*/", "*\\/");

    let mut lines: Vec<String> = Vec::new();
    for line in cleaned.lines() {
        let line = line.trim_end();
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line.to_owned());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Unicode bidirectional embedding/override/isolate controls (the "Trojan Source" characters).
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A description as doc comment lines.
pub(super) fn doc_lines(text: &str) -> Vec<String> {
    sanitize_doc(text, MAX_DESCRIPTION_CHARS)
}

/// Text made safe for a doc comment, on one line.
pub(super) fn one_line(text: &str, max_chars: usize) -> String {
    sanitize_doc(text, max_chars)
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A doc comment (ending in a newline) for already-sanitised lines at an indentation level; empty when
/// there are no lines.
pub(super) fn doc_comment(lines: &[String], indent: usize) -> String {
    let pad = INDENT.repeat(indent);
    match lines {
        [] => String::new(),
        [line] if line.len() <= SINGLE_LINE_COMMENT_WIDTH => format!("{pad}/** {line} */\n"),
        lines => {
            let mut out = format!("{pad}/**\n");
            for line in lines {
                if line.is_empty() {
                    out.push_str(&format!("{pad} *\n"));
                } else {
                    out.push_str(&format!("{pad} * {line}\n"));
                }
            }
            out.push_str(&format!("{pad} */\n"));
            out
        }
    }
}
