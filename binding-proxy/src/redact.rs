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

    /// Remember the secret-looking parts of a configured upstream URL: the whole URL, its userinfo,
    /// its query string and each query value (raw and decoded), and path segments that look like
    /// tokens. Parts shorter than the minimum secret length are ignored, as for [`Redactor::add`].
    pub fn add_url(&self, url: &str) {
        self.add(url);
        let Ok(parsed) = url::Url::parse(url) else { return };
        self.add(parsed.as_str());
        if !parsed.username().is_empty() {
            self.add(parsed.username());
            self.add(&decode(parsed.username()));
        }
        if let Some(password) = parsed.password() {
            self.add(password);
            self.add(&decode(password));
        }
        if let Some(query) = parsed.query() {
            self.add(query);
            for pair in query.split('&') {
                let value = pair.split_once('=').map_or(pair, |(_, v)| v);
                self.add(value);
            }
            for (_, value) in parsed.query_pairs() {
                self.add(&value);
            }
        }
        if let Some(fragment) = parsed.fragment() {
            self.add(fragment);
        }
        for segment in parsed.path_segments().into_iter().flatten() {
            if looks_like_token(segment) {
                self.add(segment);
                self.add(&decode(segment));
            }
        }
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

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map_or_else(|| s.to_string(), |(_, v)| v.into_owned())
}

/// A path segment that is more likely a credential than a name: long, or mixing letters and digits
/// at a length where words rarely do (`/mcp/v1/tools` keeps its segments; `/hook/T0A1B2C3D4E5` does not).
fn looks_like_token(segment: &str) -> bool {
    let letters = segment.chars().filter(char::is_ascii_alphabetic).count();
    let digits = segment.chars().filter(char::is_ascii_digit).count();
    segment.len() >= 24 || (segment.len() >= 12 && letters > 0 && digits >= 2)
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

    #[test]
    fn configured_url_parts_are_redacted() {
        let r = Redactor::default();
        let url = "https://svc-user:pa%24%24word-77@mcp.example.com:8443/v1/hooks/T0A1B2C3D4E5F6/mcp?key=SECRETVALUE&sig=abc%2Fdef12";
        r.add_url(url);
        for (text, leaked) in [
            (url.to_string(), url),
            ("key=SECRETVALUE&sig=abc%2Fdef12".to_string(), "SECRETVALUE"),
            ("error: SECRETVALUE".to_string(), "SECRETVALUE"),
            ("sig abc/def12".to_string(), "abc/def12"),
            ("user svc-user".to_string(), "svc-user"),
            ("password pa$$word-77".to_string(), "pa$$word-77"),
            ("password pa%24%24word-77".to_string(), "pa%24%24word-77"),
            ("path T0A1B2C3D4E5F6".to_string(), "T0A1B2C3D4E5F6"),
        ] {
            let out = r.redact(&text);
            assert!(!out.contains(leaked), "{leaked} survives in {out}");
            assert!(out.contains(REDACTED), "{out}");
        }
        // Names in the path and the host stay readable.
        assert_eq!(r.redact("mcp.example.com /v1/hooks/mcp"), "mcp.example.com /v1/hooks/mcp");
    }
}
