//! MCP tool results to what sandboxed code sees: the plain value a successful call resolves to, and the
//! message of a failed one.

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use serde_json::{Map, Value, json};

/// Longest error message, in bytes (including the "…" that marks a cut).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 2048;

/// The message of an `is_error` result that carries no text.
pub const DEFAULT_ERROR_MESSAGE: &str = "the tool reported an error";

const ELLIPSIS: char = '…';

/// The plain JSON value sandboxed code receives for a successful result: `structured_content` first (kept
/// as is, even an explicit `null`); else, when the content is a single text item whose text parses as
/// JSON, the parsed value; else a single text item as a string; else (several items or other kinds) an
/// array where text items are strings and other items are typed objects: `{type:"image", mimeType, data}`,
/// `{type:"audio", mimeType, data}`, `{type:"resource", uri, mimeType?, text? | blob?}`,
/// `{type:"resource_link", uri, name, mimeType?, description?}`. Empty content and no structured content
/// → `null`.
pub fn plain_value(result: &CallToolResult) -> Value {
    if let Some(structured) = &result.structured_content {
        return structured.clone();
    }
    match result.content.as_slice() {
        [] => Value::Null,
        [ContentBlock::Text(text)] => {
            serde_json::from_str(&text.text).unwrap_or_else(|_| Value::String(text.text.clone()))
        }
        items => Value::Array(items.iter().map(content_value).collect()),
    }
}

/// One content item of a multi-item result.
fn content_value(item: &ContentBlock) -> Value {
    match item {
        ContentBlock::Text(text) => Value::String(text.text.clone()),
        ContentBlock::Image(image) => {
            json!({"type": "image", "mimeType": image.mime_type, "data": image.data})
        }
        ContentBlock::Audio(audio) => {
            json!({"type": "audio", "mimeType": audio.mime_type, "data": audio.data})
        }
        ContentBlock::Resource(embedded) => resource_value(&embedded.resource),
        ContentBlock::ResourceLink(link) => {
            let mut out = Map::new();
            out.insert("type".into(), "resource_link".into());
            out.insert("uri".into(), link.uri.clone().into());
            out.insert("name".into(), link.name.clone().into());
            if let Some(mime_type) = &link.mime_type {
                out.insert("mimeType".into(), mime_type.clone().into());
            }
            if let Some(description) = &link.description {
                out.insert("description".into(), description.clone().into());
            }
            Value::Object(out)
        }
        // Kinds newer than this code: their wire form, without metadata.
        other => typed_fallback(other, "unknown"),
    }
}

fn resource_value(resource: &ResourceContents) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), "resource".into());
    let (uri, mime_type) = match resource {
        ResourceContents::TextResourceContents { uri, mime_type, text, .. } => {
            out.insert("text".into(), text.clone().into());
            (uri, mime_type)
        }
        ResourceContents::BlobResourceContents { uri, mime_type, blob, .. } => {
            out.insert("blob".into(), blob.clone().into());
            (uri, mime_type)
        }
        other => return typed_fallback(other, "resource"),
    };
    out.insert("uri".into(), uri.clone().into());
    if let Some(mime_type) = mime_type {
        out.insert("mimeType".into(), mime_type.clone().into());
    }
    Value::Object(out)
}

/// The serialised form of a value of a kind this code does not know, without `_meta` and `annotations`,
/// with `type` set to its own tag or `default_type`.
fn typed_fallback<T: serde::Serialize>(value: &T, default_type: &str) -> Value {
    let mut out = match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    out.remove("_meta");
    out.remove("annotations");
    if !out.get("type").is_some_and(Value::is_string) {
        out.insert("type".into(), default_type.into());
    }
    Value::Object(out)
}

/// The message of an `is_error` result: its text items joined with "\n" (or "the tool reported an error"
/// when there is no text), sanitised and truncated by [`sanitize_message`].
pub fn error_message(result: &CallToolResult) -> String {
    let texts: Vec<&str> =
        result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.as_str()).collect();
    let message = sanitize_message(&texts.join("\n"));
    if message.trim().is_empty() { DEFAULT_ERROR_MESSAGE.to_owned() } else { message }
}

/// Upstream-provided message text made safe to show: control characters other than `\n` and `\t` removed
/// (a `\r\n` becomes `\n`), as are Unicode bidirectional override/isolate characters; then truncated to
/// at most [`MAX_ERROR_MESSAGE_BYTES`] bytes on a char boundary, ending in "…" when cut (the "…" counts).
pub fn sanitize_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_MESSAGE_BYTES));
    let budget = MAX_ERROR_MESSAGE_BYTES - ELLIPSIS.len_utf8();
    let mut cut_at: Option<usize> = None;
    let kept = text.chars().filter(|&c| matches!(c, '\n' | '\t') || !(c.is_control() || is_bidi_control(c)));
    for c in kept {
        if cut_at.is_none() && out.len() + c.len_utf8() > budget {
            cut_at = Some(out.len());
        }
        if out.len() + c.len_utf8() > MAX_ERROR_MESSAGE_BYTES {
            // Over the limit even without an ellipsis: cut where the ellipsis still fits.
            out.truncate(cut_at.unwrap_or(out.len()));
            out.push(ELLIPSIS);
            return out;
        }
        out.push(c);
    }
    out
}

/// Unicode bidirectional embedding/override/isolate controls (the "Trojan Source" characters).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use rmcp::model::{EmbeddedResource, Resource, ResourceContents};

    use super::*;

    #[test]
    fn structured_content_comes_first() {
        let result = CallToolResult::structured(json!({"temperature": 22.5}));
        assert_eq!(plain_value(&result), json!({"temperature": 22.5}));
        let mut result = CallToolResult::success(vec![ContentBlock::text("not this")]);
        result.structured_content = Some(json!([1, 2]));
        assert_eq!(plain_value(&result), json!([1, 2]));
        // An explicit `null` is a value like any other.
        result.structured_content = Some(Value::Null);
        assert_eq!(plain_value(&result), Value::Null);
    }

    #[test]
    fn single_json_text_is_parsed() {
        let result = CallToolResult::success(vec![ContentBlock::text(r#" {"a": [1, true, null]} "#)]);
        assert_eq!(plain_value(&result), json!({"a": [1, true, null]}));
        assert_eq!(plain_value(&CallToolResult::success(vec![ContentBlock::text("42")])), json!(42));
        assert_eq!(plain_value(&CallToolResult::success(vec![ContentBlock::text("\"hi\"")])), json!("hi"));
        assert_eq!(plain_value(&CallToolResult::success(vec![ContentBlock::text("null")])), Value::Null);
    }

    #[test]
    fn single_non_json_text_is_a_string() {
        let result = CallToolResult::success(vec![ContentBlock::text("hello world")]);
        assert_eq!(plain_value(&result), json!("hello world"));
        let result = CallToolResult::success(vec![ContentBlock::text("")]);
        assert_eq!(plain_value(&result), json!(""));
        let result = CallToolResult::success(vec![ContentBlock::text("{\"a\": 1} trailing")]);
        assert_eq!(plain_value(&result), json!("{\"a\": 1} trailing"));
        // Nesting deeper than serde_json's recursion limit is not JSON to us: the text stays a string.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let result = CallToolResult::success(vec![ContentBlock::text(deep.clone())]);
        assert_eq!(plain_value(&result), Value::String(deep));
    }

    #[test]
    fn empty_content_is_null() {
        assert_eq!(plain_value(&CallToolResult::success(vec![])), Value::Null);
        assert_eq!(plain_value(&CallToolResult::default()), Value::Null);
    }

    #[test]
    fn several_text_items_are_strings() {
        let result =
            CallToolResult::success(vec![ContentBlock::text("one"), ContentBlock::text("{\"two\": 2}")]);
        assert_eq!(plain_value(&result), json!(["one", "{\"two\": 2}"]));
    }

    #[test]
    fn images_and_audio_are_typed_objects() {
        let result = CallToolResult::success(vec![ContentBlock::image("aGVsbG8=", "image/png")]);
        assert_eq!(
            plain_value(&result),
            json!([{"type": "image", "mimeType": "image/png", "data": "aGVsbG8="}])
        );
        let result = CallToolResult::success(vec![
            ContentBlock::text("caption"),
            ContentBlock::audio("UklGRg==", "audio/wav"),
        ]);
        assert_eq!(
            plain_value(&result),
            json!(["caption", {"type": "audio", "mimeType": "audio/wav", "data": "UklGRg=="}])
        );
    }

    #[test]
    fn embedded_resources_are_typed_objects() {
        let text = ContentBlock::embedded_text("file:///a.txt", "contents");
        let blob = ContentBlock::resource(ResourceContents::blob("AAEC", "file:///b.bin"));
        let blob_typed = ContentBlock::resource(
            ResourceContents::blob("AAEC", "file:///c.bin").with_mime_type("application/zip"),
        );
        let mut annotated = EmbeddedResource::new(ResourceContents::text("x", "mem://x"));
        annotated.meta = Some(Default::default());
        let result = CallToolResult::success(vec![text, blob, blob_typed, ContentBlock::Resource(annotated)]);
        assert_eq!(
            plain_value(&result),
            json!([
                {"type": "resource", "uri": "file:///a.txt", "mimeType": "text/plain", "text": "contents"},
                {"type": "resource", "uri": "file:///b.bin", "blob": "AAEC"},
                {"type": "resource", "uri": "file:///c.bin", "mimeType": "application/zip", "blob": "AAEC"},
                {"type": "resource", "uri": "mem://x", "mimeType": "text/plain", "text": "x"},
            ])
        );
    }

    #[test]
    fn resource_links_are_typed_objects() {
        let bare = ContentBlock::resource_link(Resource::new("file:///r", "r"));
        let full = ContentBlock::resource_link(
            Resource::new("https://x/y", "y")
                .with_mime_type("text/html")
                .with_description("The y page")
                .with_title("Y"),
        );
        let result = CallToolResult::success(vec![bare, full]);
        assert_eq!(
            plain_value(&result),
            json!([
                {"type": "resource_link", "uri": "file:///r", "name": "r"},
                {"type": "resource_link", "uri": "https://x/y", "name": "y", "mimeType": "text/html", "description": "The y page"},
            ])
        );
    }

    #[test]
    fn results_parsed_from_the_wire() {
        let result: CallToolResult = serde_json::from_value(json!({
            "content": [{"type": "text", "text": "[1,2]"}],
            "isError": false
        }))
        .unwrap();
        assert_eq!(plain_value(&result), json!([1, 2]));
        let result: CallToolResult =
            serde_json::from_value(json!({"content": [], "structuredContent": {"ok": true}})).unwrap();
        assert_eq!(plain_value(&result), json!({"ok": true}));
    }

    #[test]
    fn error_message_joins_text_items() {
        let result = CallToolResult::error(vec![
            ContentBlock::text("first"),
            ContentBlock::image("AA==", "image/png"),
            ContentBlock::text("second"),
        ]);
        assert_eq!(error_message(&result), "first\nsecond");
    }

    #[test]
    fn error_message_without_text_has_a_default() {
        assert_eq!(error_message(&CallToolResult::error(vec![])), DEFAULT_ERROR_MESSAGE);
        let result = CallToolResult::error(vec![ContentBlock::image("AA==", "image/png")]);
        assert_eq!(error_message(&result), "the tool reported an error");
        let result = CallToolResult::error(vec![ContentBlock::text("\u{1b}\u{0}")]);
        assert_eq!(error_message(&result), DEFAULT_ERROR_MESSAGE);
    }

    #[test]
    fn error_message_is_sanitised_and_truncated() {
        let result =
            CallToolResult::error(vec![ContentBlock::text("bad\u{1b}[31m thing\r\nhappened\tthere\u{7f}")]);
        assert_eq!(error_message(&result), "bad[31m thing\nhappened\tthere");
        let result = CallToolResult::error(vec![ContentBlock::text("x".repeat(10_000))]);
        let message = error_message(&result);
        assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn sanitize_removes_control_and_bidi_characters() {
        assert_eq!(sanitize_message("a\u{0}b\u{8}c\u{85}d\u{9b}e"), "abcde");
        assert_eq!(sanitize_message("keep\nnew\tlines"), "keep\nnew\tlines");
        assert_eq!(sanitize_message("a\r\nb\rc"), "a\nbc");
        assert_eq!(sanitize_message("x\u{202e}y\u{2066}z\u{200f}"), "xyz");
        assert_eq!(sanitize_message("héllo 🌍"), "héllo 🌍");
        assert_eq!(sanitize_message(""), "");
    }

    #[test]
    fn sanitize_truncates_on_char_boundaries() {
        let exact = "a".repeat(MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(sanitize_message(&exact), exact, "a message of exactly the limit is kept whole");

        let over = "a".repeat(MAX_ERROR_MESSAGE_BYTES + 1);
        let cut = sanitize_message(&over);
        assert_eq!(cut.len(), MAX_ERROR_MESSAGE_BYTES);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.trim_end_matches('…'), "a".repeat(MAX_ERROR_MESSAGE_BYTES - 3));

        for unit in ["é", "€", "🌍"] {
            let text = unit.repeat(MAX_ERROR_MESSAGE_BYTES);
            let cut = sanitize_message(&text);
            assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES, "{unit}: {}", cut.len());
            assert!(cut.len() > MAX_ERROR_MESSAGE_BYTES - 3 - unit.len(), "{unit}: {}", cut.len());
            assert!(cut.ends_with('…'));
            assert!(cut.trim_end_matches('…').chars().all(|c| c.to_string() == unit));
        }

        // Removed characters do not count against the limit.
        let text = format!("{}{}", "\u{0}".repeat(5000), "b".repeat(100));
        assert_eq!(sanitize_message(&text), "b".repeat(100));
    }
}
