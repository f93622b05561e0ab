//! The audit log: one JSON line per execution event and per tool call. Every record is written (and
//! flushed to the operating system) before the request it describes is answered, so nothing is lost
//! when an execution fails, times out, or the executor dies; executions that never end are closed as
//! `abandoned` by the proxy itself.

use std::{
    fs::OpenOptions,
    io::Write,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The longest audit line, in bytes. A larger record keeps its small fields, its large ones are
/// replaced by `"…"`, and it says so with `"truncated": true` and `"originalBytes"`.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// A field longer than this (serialised) is dropped from a record that is over [`MAX_LINE_BYTES`].
const MAX_FIELD_BYTES_WHEN_TRUNCATED: usize = 1024;
/// Argument shapes: how deep, how many keys per object, how long a key, how many nodes in all.
const SHAPE_MAX_DEPTH: usize = 8;
const SHAPE_MAX_KEYS: usize = 64;
pub const SHAPE_MAX_KEY_BYTES: usize = 64;
const SHAPE_MAX_NODES: usize = 512;

/// An audit record could not be written. The proxy fails closed on it: the execution is not opened,
/// the call's result is withheld, and further calls are refused while the log cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log cannot be written")]
pub struct AuditError;

/// Where records go.
pub struct AuditLog {
    sink: Mutex<Box<dyn Write + Send>>,
    /// Whether the last write failed.
    failing: AtomicBool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// `-` writes to standard error; anything else is a file opened for appending.
    pub fn open(path: &str) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stderr())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(path)?)
        };
        Ok(Self::to_writer(sink))
    }

    /// A log that collects records in memory (tests).
    pub fn to_writer(w: Box<dyn Write + Send>) -> Self {
        AuditLog { sink: Mutex::new(w), failing: AtomicBool::new(false) }
    }

    /// Whether the last write failed (the proxy then refuses work until a write succeeds again).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Append one record: `event` plus `fields`, with a timestamp, in at most [`MAX_LINE_BYTES`].
    /// An error means the record is not on file; callers fail closed on it.
    pub fn record(&self, event: &str, fields: Value) -> Result<(), AuditError> {
        let mut obj = Map::new();
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        obj.insert("ts".into(), json!(ts));
        obj.insert("event".into(), json!(event));
        if let Value::Object(f) = fields {
            obj.extend(f);
        }
        let mut line = bounded_line(obj);
        line.push('\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // One write call per record keeps lines whole when several processes append to one file.
        match sink.write_all(line.as_bytes()).and_then(|()| sink.flush()) {
            Ok(()) => {
                self.failing.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.failing.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, event, "cannot write an audit record; failing closed");
                Err(AuditError)
            }
        }
    }
}

/// The record as one JSON line of at most [`MAX_LINE_BYTES`] (before the newline).
fn bounded_line(obj: Map<String, Value>) -> String {
    let line = Value::Object(obj.clone()).to_string();
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    let original = line.len();
    let mut cut = Map::new();
    for (k, v) in obj {
        let small = k.len() <= SHAPE_MAX_KEY_BYTES && v.to_string().len() <= MAX_FIELD_BYTES_WHEN_TRUNCATED;
        if small {
            cut.insert(k, v);
        } else if k.len() <= SHAPE_MAX_KEY_BYTES {
            cut.insert(k, json!("…"));
        }
    }
    cut.insert("truncated".into(), json!(true));
    cut.insert("originalBytes".into(), json!(original));
    let line = Value::Object(cut.clone()).to_string();
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    // Many small fields: keep only what identifies the record.
    let keep = ["ts", "event", "execution", "caller", "policy", "server", "tool", "outcome"];
    let mut minimal: Map<String, Value> =
        cut.into_iter().filter(|(k, _)| keep.contains(&k.as_str())).collect();
    minimal.insert("truncated".into(), json!(true));
    minimal.insert("originalBytes".into(), json!(original));
    Value::Object(minimal).to_string()
}

/// The shape of a JSON value with its values left out: `{"a": "number", "b": ["string"]}`. Bounded:
/// at most 8 levels, 64 keys per object (then `"…": "<n> more keys"`), 512 nodes in all; a key longer
/// than 64 bytes is replaced by `sha256:<first 16 hex digits>`, so keys cannot carry data (a tool's
/// result fed back as a key) into the log.
pub fn shape(value: &Value) -> Value {
    let mut nodes = 0;
    shape_at(value, 0, &mut nodes)
}

/// A key as the shape records it.
pub fn shape_key(key: &str) -> String {
    if key.len() <= SHAPE_MAX_KEY_BYTES {
        key.to_string()
    } else {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        format!("sha256:{}", &digest[..16])
    }
}

fn shape_at(value: &Value, depth: usize, nodes: &mut usize) -> Value {
    *nodes += 1;
    if depth > SHAPE_MAX_DEPTH || *nodes > SHAPE_MAX_NODES {
        return json!("…");
    }
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("boolean"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => match items.first() {
            None => json!([]),
            Some(first) => json!({ "array": items.len(), "of": shape_at(first, depth + 1, nodes) }),
        },
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter().take(SHAPE_MAX_KEYS) {
                if *nodes >= SHAPE_MAX_NODES {
                    break;
                }
                out.insert(shape_key(k), shape_at(v, depth + 1, nodes));
            }
            if out.len() < map.len() {
                out.insert("…".into(), json!(format!("{} more keys", map.len() - out.len())));
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shapes_hide_values() {
        let s = shape(&json!({"user": "alice", "n": 3, "tags": ["a", "b"], "deep": {"ok": true, "x": null}}));
        assert_eq!(
            s,
            json!({"user": "string", "n": "number", "tags": {"array": 2, "of": "string"}, "deep": {"ok": "boolean", "x": "null"}})
        );
        assert!(!s.to_string().contains("alice"));
    }

    #[test]
    fn shapes_are_bounded_and_long_keys_hashed() {
        let long = "k".repeat(SHAPE_MAX_KEY_BYTES + 1);
        let s = shape(&json!({ long.clone(): 1, "short": true }));
        let digest = hex::encode(Sha256::digest(long.as_bytes()));
        assert_eq!(s, json!({ format!("sha256:{}", &digest[..16]): "number", "short": "boolean" }));
        // A key of exactly the limit is kept.
        let edge = "e".repeat(SHAPE_MAX_KEY_BYTES);
        assert_eq!(shape(&json!({ edge.clone(): 1 })), json!({ edge: "number" }));
        // Many keys, huge keys, deep nesting: the shape stays small.
        let mut wide = Map::new();
        for i in 0..10_000 {
            wide.insert(format!("{i}-{}", "x".repeat(1000)), json!({"a": {"b": [1]}}));
        }
        let s = shape(&Value::Object(wide)).to_string();
        assert!(s.len() < 8 * 1024, "{} bytes", s.len());
        assert!(!s.contains("xxxxxxxxxx"), "keys over the limit are hashed");
        assert!(s.contains("more keys"), "{s}");
        // Nested objects of many keys do not multiply.
        let level: Map<String, Value> = (0..64).map(|i| (format!("k{i}"), json!(1))).collect();
        let mut v = Value::Object(level.clone());
        for _ in 0..2 {
            v = Value::Object(level.keys().map(|k| (k.clone(), v.clone())).collect());
        }
        let s = shape(&v).to_string();
        assert!(s.len() < 16 * 1024, "{} bytes", s.len());
    }

    /// An audit sink tests read, and can make fail (set `.1`).
    #[derive(Clone, Default)]
    pub(crate) struct Sink(pub(crate) std::sync::Arc<Mutex<Vec<u8>>>, pub(crate) std::sync::Arc<AtomicBool>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.1.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("disk full"));
            }
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        pub(crate) fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_string).collect()
        }
    }

    #[test]
    fn audit_lines_are_capped_and_say_so() {
        let sink = Sink::default();
        let log = AuditLog::to_writer(Box::new(sink.clone()));
        log.record(
            "tool_call",
            json!({"execution": "e1", "tool": "echo", "argumentShape": {"k": "x".repeat(20 * 1024 * 1024)}, "outcome": "ok"}),
        )
        .unwrap();
        let many: Map<String, Value> = (0..5000).map(|i| (format!("field{i}"), json!(i))).collect();
        log.record("tool_call", Value::Object(many)).unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert!(line.len() <= MAX_LINE_BYTES, "{} bytes", line.len());
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["truncated"], true, "{v}");
            assert!(v["originalBytes"].as_u64().unwrap() > MAX_LINE_BYTES as u64);
            assert_eq!(v["event"], "tool_call");
        }
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["execution"], "e1");
        assert_eq!(first["outcome"], "ok");
        assert_eq!(first["argumentShape"], "…");
    }

    #[test]
    fn a_failing_sink_is_an_error() {
        let sink = Sink::default();
        let log = AuditLog::to_writer(Box::new(sink.clone()));
        assert!(log.record("x", json!({})).is_ok());
        sink.1.store(true, Ordering::SeqCst);
        assert_eq!(log.record("x", json!({})), Err(AuditError));
        assert!(log.failing());
        sink.1.store(false, Ordering::SeqCst);
        assert!(log.record("x", json!({})).is_ok());
        assert!(!log.failing());
    }
}
