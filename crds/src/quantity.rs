//! Kubernetes-style quantities for sizes (`64Mi`, `1G`, `512Ki`, or a plain number of bytes) and
//! durations (`30s`, `250ms`, `1m30s`), as users of a Kubernetes product write them.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A size in bytes, written as a Kubernetes quantity (`64Mi`, `1G`, `512Ki`) or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    pub const fn gib(n: u64) -> Self {
        Self(n * 1024 * 1024 * 1024)
    }
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// The size as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

const SUFFIXES: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (digits, multiplier) =
            SUFFIXES.iter().find_map(|(suffix, m)| s.strip_suffix(suffix).map(|d| (d, *m))).unwrap_or((s, 1));
        let n: u64 = digits.parse().map_err(|_| {
            format!("`{s}` is not a size: use a whole number of bytes or a quantity such as 64Mi, 512Ki, 1G")
        })?;
        n.checked_mul(multiplier).map(ByteSize).ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (suffix, m) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if self.0 >= m && self.0.is_multiple_of(m) {
                return write!(f, "{}{suffix}", self.0 / m);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 64Mi, 512Ki, 1G or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a Kubernetes quantity such as 64Mi, 512Ki, 1G, or a whole number of bytes.",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+(Ki|Mi|Gi|Ti|k|K|M|G|T)?$" }
            ]
        })
    }
}

/// A duration, written like `30s`, `250ms`, `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    pub const fn millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for DurationSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(DurationSpec)
            .map_err(|e| format!("`{s}` is not a duration ({e}): write it like 30s, 250ms or 1m30s"))
    }
}

/// Written like `1h 30m`, `250ms`: hours and smaller units only (`48h`, never `2days`), the units the
/// CRDs' schema pattern and CEL's `duration()` read, so a duration written back parses everywhere.
impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0.as_secs(), u64::from(self.0.subsec_nanos()));
        if secs == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (secs / 3600, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (nanos / 1_000_000, "ms"),
            (nanos / 1000 % 1000, "us"),
            (nanos % 1000, "ns"),
        ];
        let mut first = true;
        for (value, unit) in parts.into_iter().filter(|(v, _)| *v > 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{value}{unit}")?;
            first = false;
        }
        Ok(())
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration such as 30s, 250ms or 1m30s.",
            "type": "string",
            "pattern": "^([0-9]+(ns|us|ms|s|m|h) ?)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_parse_like_kubernetes_quantities() {
        assert_eq!("64Mi".parse::<ByteSize>().unwrap(), ByteSize::mib(64));
        assert_eq!("1G".parse::<ByteSize>().unwrap(), ByteSize(1_000_000_000));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert!("64MB".parse::<ByteSize>().unwrap_err().contains("64MB"));
        assert!("-1".parse::<ByteSize>().is_err());
        assert!("99999999999Ti".parse::<ByteSize>().unwrap_err().contains("too large"));
        assert_eq!(ByteSize::mib(64).to_string(), "64Mi");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn durations_parse_humanly() {
        assert_eq!("250ms".parse::<DurationSpec>().unwrap(), DurationSpec::millis(250));
        assert_eq!("1m30s".parse::<DurationSpec>().unwrap(), DurationSpec::secs(90));
        assert!("soon".parse::<DurationSpec>().unwrap_err().contains("soon"));
    }

    #[test]
    fn durations_are_written_in_hours_and_smaller_units() {
        for (d, text) in [
            (DurationSpec::secs(24 * 3600), "24h"),
            (DurationSpec::secs(3 * 86400 + 3661), "73h 1m 1s"),
            (DurationSpec::millis(1500), "1s 500ms"),
            (DurationSpec(Duration::from_nanos(2_003_004)), "2ms 3us 4ns"),
            (DurationSpec::secs(600), "10m"),
            (DurationSpec::secs(0), "0s"),
        ] {
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<DurationSpec>().unwrap(), d, "{text} reads back");
        }
    }
}
