//! Redaction of held secrets from everything that leaves the binding proxy: results, error messages
//! and log lines. An upstream server that echoes a token back (by bug or by design) never gets it to the
//! sandbox.

use std::{borrow::Cow, sync::RwLock};

/// Secrets shorter than this are not redacted: replacing every occurrence of a two-letter "secret" would
/// destroy results while protecting nothing. The config documentation says so.
const MIN_SECRET_LEN: usize = 6;
pub const REDACTED: &str = "[REDACTED]";

/// The set of secret values the proxy has held, including rotated-out ones.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: RwLock<Vec<String>>,
}

impl Redactor {
    /// Remember a secret (and its base64 form, a common way to smuggle it back).
    pub fn add(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        let mut secrets = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        for s in [secret.to_string(), encoded] {
            if !secrets.contains(&s) {
                secrets.push(s);
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Cow::Borrowed(text);
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        out
    }

    /// Redact every string (and object key) inside a JSON value, in place.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => {
                let needs_key_change = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if needs_key_change {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(self.redact(&k).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_json(v));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_everywhere() {
        let r = Redactor::default();
        r.add("tok-123456");
        r.add("abc"); // too short: ignored
        assert_eq!(r.redact("Bearer tok-123456!"), "Bearer [REDACTED]!");
        assert_eq!(r.redact("dG9rLTEyMzQ1Ng=="), "[REDACTED]");
        assert_eq!(r.redact("abc"), "abc");
        let mut v = serde_json::json!({"h": ["x tok-123456"], "tok-123456": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"h": ["x [REDACTED]"], "[REDACTED]": 1}));
    }
}
