//! Byte offsets to 1-based line:column (columns in characters), and the map from positions in the
//! prepared script back to the submitted source.
//!
//! Lines are split like the oxc parser and its source maps do: `\n`, `\r\n`, `\r`, U+2028, U+2029.
//! Source-map columns are UTF-16 code units; we convert them to characters (they differ only after
//! astral characters such as emoji), so every column this module hands out counts characters.

use std::sync::Arc;

/// Line starts of one text, for offset → (line, column) lookups.
pub(crate) struct LineIndex<'s> {
    text: &'s str,
    /// Byte offset where each line starts; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        let mut starts = vec![0];
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => starts.push(i + 1),
                // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
                0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => {
                    starts.push(i + 3);
                    i += 2;
                }
                _ => {}
            }
            i += 1;
        }
        Self { text, starts }
    }

    /// 1-based line and 1-based column in characters of a byte offset (clamped to the text).
    pub(crate) fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..)
            .map_or(0, |rest| rest.char_indices().take_while(|(i, _)| start + i < offset).count());
        (to_u32(line) + 1, to_u32(column) + 1)
    }
}

/// Positions (0-based line, UTF-16 column) of astral characters, sorted: subtracting those before a
/// UTF-16 column on the same line gives the character column.
fn astral_positions(text: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    if text.is_ascii() {
        return out;
    }
    let (mut line, mut col) = (0u32, 0u32);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => {
                line += 1;
                col = 0;
                continue;
            }
            _ => {}
        }
        let width = to_u32(c.len_utf16());
        if width == 2 {
            out.push((line, col));
        }
        col = col.saturating_add(width);
    }
    out
}

fn char_col(astral: &[(u32, u32)], line: u32, utf16_col: u32) -> u32 {
    let from = astral.partition_point(|&p| p < (line, 0));
    let to = astral.partition_point(|&p| p < (line, utf16_col));
    utf16_col.saturating_sub(to_u32(to - from))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One source-map mapping: 0-based generated (line, column) to 0-based source (line, column), all
/// columns in characters.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Mapping {
    gen_line: u32,
    gen_col: u32,
    src_line: u32,
    src_col: u32,
}

/// Maps positions in the prepared script back to the submitted source. Cheap to clone (shared).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PositionMap {
    inner: Option<Arc<MapInner>>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MapInner {
    /// 1-based script line holding generated line 0 (the wrapper's lines come before it).
    first_line: u32,
    /// Characters of wrapper text before generated code on that first line.
    first_line_prefix: u32,
    /// Number of generated lines; later script lines are wrapper code.
    gen_lines: u32,
    /// Sorted by (gen_line, gen_col).
    mappings: Vec<Mapping>,
}

impl PositionMap {
    /// Builds the map from codegen's source map. `first_line`/`first_line_prefix` say where the
    /// generated code starts in the prepared script.
    pub(crate) fn new(
        map: &oxc_sourcemap::SourceMap<'_>,
        source: &str,
        generated: &str,
        first_line: u32,
        first_line_prefix: u32,
    ) -> Self {
        let src_astral = astral_positions(source);
        let gen_astral = astral_positions(generated);
        let mut mappings: Vec<Mapping> = map
            .get_tokens()
            .map(|t| Mapping {
                gen_line: t.get_dst_line(),
                gen_col: char_col(&gen_astral, t.get_dst_line(), t.get_dst_col()),
                src_line: t.get_src_line(),
                src_col: char_col(&src_astral, t.get_src_line(), t.get_src_col()),
            })
            .collect();
        mappings.sort_by_key(|m| (m.gen_line, m.gen_col));
        let gen_lines = to_u32(LineIndex::new(generated).starts.len());
        Self { inner: Some(Arc::new(MapInner { first_line, first_line_prefix, gen_lines, mappings })) }
    }

    /// 1-based (line, column) in the prepared script to 1-based (line, column) in the submitted
    /// source: the nearest mapped position at or before it. `None` for wrapper code.
    pub fn original(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let inner = self.inner.as_deref()?;
        let gen_line = line.checked_sub(inner.first_line)?;
        if gen_line >= inner.gen_lines {
            return None;
        }
        let mut gen_col = column.checked_sub(1)?;
        if gen_line == 0 {
            gen_col = gen_col.checked_sub(inner.first_line_prefix)?;
        }
        let after = inner.mappings.partition_point(|m| (m.gen_line, m.gen_col) <= (gen_line, gen_col));
        let m = inner.mappings.get(after.checked_sub(1)?)?;
        Some((m.src_line + 1, m.src_col + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_and_all_line_breaks() {
        let text = "a\r\nb\rc\u{2028}d\n😀x";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(5), (3, 1));
        assert_eq!(idx.line_col(9), (4, 1));
        let x = text.find('x').unwrap_or_default();
        assert_eq!(idx.line_col(x), (5, 2));
    }

    #[test]
    fn astral_columns() {
        let astral = astral_positions("ab\n😀😀x");
        assert_eq!(astral, vec![(1, 0), (1, 2)]);
        assert_eq!(char_col(&astral, 1, 4), 2);
        assert_eq!(char_col(&astral, 0, 2), 2);
    }
}
