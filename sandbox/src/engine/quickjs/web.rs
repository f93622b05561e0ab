//! The host side of the web built-ins (`web.js`): WHATWG URL parsing and the
//! `application/x-www-form-urlencoded` format, with the `url` crate (the URL Standard's algorithms,
//! including its setters in `url::quirks`). Pure functions of their arguments: no I/O, no state.

use serde_json::{Value, json};
use url::{Url, form_urlencoded, quirks};

/// The largest input (all arguments together) one operation takes: the host's copies of it live outside
/// the isolate's metered heap.
pub(super) const MAX_INPUT: usize = 1 << 20;

/// One URL operation for `web.js`. `None` means "failure" (the caller throws the right error):
/// - `parse(input, base?)`: the components of `input` resolved against `base`;
/// - `set(href, part, value)`: the components after the setter of `part` (`href`, `protocol`, ...);
/// - `formParse(text)`: `[[name, value], ...]` of a query string;
/// - `formSerialize(json)`: a query string of `[[name, value], ...]`.
pub(super) fn url(op: &str, a: &str, b: Option<&str>, c: Option<&str>) -> Option<String> {
    match op {
        "parse" => {
            let url = match b {
                Some(base) => Url::options().base_url(Some(&Url::parse(base).ok()?)).parse(a).ok()?,
                None => Url::parse(a).ok()?,
            };
            Some(components(&url))
        }
        "set" => {
            let mut url = Url::parse(a).ok()?;
            let value = c.unwrap_or_default();
            // Setters that fail leave the URL as it was, as the standard says; only `href` throws.
            match b? {
                "href" => quirks::set_href(&mut url, value).ok()?,
                "protocol" => {
                    let _ = quirks::set_protocol(&mut url, value);
                }
                "username" => {
                    let _ = quirks::set_username(&mut url, value);
                }
                "password" => {
                    let _ = quirks::set_password(&mut url, value);
                }
                "host" => {
                    let _ = quirks::set_host(&mut url, value);
                }
                "hostname" => {
                    let _ = quirks::set_hostname(&mut url, value);
                }
                "port" => {
                    let _ = quirks::set_port(&mut url, value);
                }
                "pathname" => quirks::set_pathname(&mut url, value),
                "search" => quirks::set_search(&mut url, value),
                "hash" => quirks::set_hash(&mut url, value),
                _ => return None,
            }
            Some(components(&url))
        }
        "formParse" => {
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(a.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            serde_json::to_string(&pairs).ok()
        }
        "formSerialize" => {
            let pairs: Vec<(String, String)> = serde_json::from_str(a).ok()?;
            Some(form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish())
        }
        _ => None,
    }
}

fn components(url: &Url) -> String {
    let v: Value = json!({
        "href": quirks::href(url),
        "origin": quirks::origin(url),
        "protocol": quirks::protocol(url),
        "username": quirks::username(url),
        "password": quirks::password(url),
        "host": quirks::host(url),
        "hostname": quirks::hostname(url),
        "port": quirks::port(url),
        "pathname": quirks::pathname(url),
        "search": quirks::search(url),
        "hash": quirks::hash(url),
    });
    v.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parts(s: Option<String>) -> Value {
        serde_json::from_str(&s.unwrap()).unwrap()
    }

    #[test]
    fn urls_parse_resolve_and_set_as_the_standard_says() {
        let u = parts(url("parse", "../a?b=1#c", Some("https://user:pw@Example.COM:8443/x/y/z"), None));
        assert_eq!(u["href"], "https://user:pw@example.com:8443/x/a?b=1#c");
        assert_eq!(u["origin"], "https://example.com:8443");
        assert_eq!(u["port"], "8443");
        assert_eq!(url("parse", "not a url", None, None), None);
        assert_eq!(url("parse", "/a", Some("also not"), None), None);
        let u = parts(url("set", "https://example.com/", Some("port"), Some("443")));
        assert_eq!(u["port"], "", "the default port is not kept");
        let u = parts(url("set", "https://example.com/", Some("protocol"), Some("mailto")));
        assert_eq!(u["protocol"], "https:", "special to non-special is refused, silently");
        assert_eq!(url("set", "https://example.com/", Some("href"), Some("::")), None);
    }

    #[test]
    fn forms_round_trip() {
        let pairs = url("formParse", "a=1&b=x+y&c=%E2%82%AC&d", None, None).unwrap();
        assert_eq!(pairs, r#"[["a","1"],["b","x y"],["c","€"],["d",""]]"#);
        assert_eq!(url("formSerialize", &pairs, None, None).unwrap(), "a=1&b=x+y&c=%E2%82%AC&d=");
    }
}
