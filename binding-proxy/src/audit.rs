//! The audit log: one JSON line per execution event and per tool call. Every record is written (and
//! flushed to the operating system) before the request it describes is answered, so nothing is lost
//! when an execution fails, times out, or the executor dies; executions that never end are closed as
//! `abandoned` by the proxy itself.

use std::{
    fs::OpenOptions,
    io::Write,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value, json};

/// Where records go.
pub struct AuditLog {
    sink: Mutex<Box<dyn Write + Send>>,
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
        Ok(AuditLog { sink: Mutex::new(sink) })
    }

    /// A log that collects records in memory (tests).
    pub fn to_writer(w: Box<dyn Write + Send>) -> Self {
        AuditLog { sink: Mutex::new(w) }
    }

    /// Append one record: `event` plus `fields`, with a timestamp.
    pub fn record(&self, event: &str, fields: Value) {
        let mut obj = Map::new();
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        obj.insert("ts".into(), json!(ts));
        obj.insert("event".into(), json!(event));
        if let Value::Object(f) = fields {
            obj.extend(f);
        }
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // One write call per record keeps lines whole when several processes append to one file.
        if let Err(e) = sink.write_all(line.as_bytes()).and_then(|()| sink.flush()) {
            tracing::error!(error = %e, "cannot write an audit record");
        }
    }
}

/// The shape of a JSON value with its values left out: `{"a": "number", "b": ["string"]}`.
pub fn shape(value: &Value) -> Value {
    shape_at(value, 0)
}

fn shape_at(value: &Value, depth: usize) -> Value {
    if depth > 8 {
        return json!("…");
    }
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("boolean"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => match items.first() {
            None => json!([]),
            Some(first) => json!({ "array": items.len(), "of": shape_at(first, depth + 1) }),
        },
        Value::Object(map) => {
            Value::Object(map.iter().take(64).map(|(k, v)| (k.clone(), shape_at(v, depth + 1))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
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
}
