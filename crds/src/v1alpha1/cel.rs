//! CEL rules (`x-kubernetes-validations`) added to the generated schemas. The limit ranges are generated
//! from the constants in [`crate::limits`], so the apiserver and the executor agree on them.

use schemars::Schema;
use serde_json::{Value, json};

use crate::limits::{self, Range};
use crate::quantity::{ByteSize, DurationSpec};

/// A rule with the message the apiserver returns when it fails.
pub(crate) fn rule(rule: &str, message: &str) -> Value {
    json!({ "rule": rule, "message": message })
}

/// Append rules to a schema's `x-kubernetes-validations`.
pub(crate) fn add_rules(schema: &mut Schema, rules: impl IntoIterator<Item = Value>) {
    let Some(obj) = schema.as_object_mut() else { return };
    let entry = obj.entry("x-kubernetes-validations").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        list.extend(rules);
    }
}

/// CEL for a size field (int-or-string): between `min` and `max` bytes.
fn size_rule(r: &Range<ByteSize>) -> Value {
    let f = r.field;
    let (min, max) = (r.min.bytes(), r.max.bytes());
    rule(
        &format!(
            "type(self.{f}) == int ? (self.{f} >= {min} && self.{f} <= {max}) : \
             (isQuantity(self.{f}) && quantity(self.{f}).compareTo(quantity('{min}')) >= 0 && \
             quantity(self.{f}).compareTo(quantity('{max}')) <= 0)"
        ),
        &format!("limits.{f} must be between {} and {}", r.min, r.max),
    )
}

/// The Go duration CEL understands has no spaces; ours may (`1m 30s`).
fn duration_of(field: &str) -> String {
    format!("duration(self.{field}.replace(' ', ''))")
}

fn go_duration(d: DurationSpec) -> String {
    format!("{}ms", d.duration().as_millis())
}

fn duration_rule(r: &Range<DurationSpec>) -> Value {
    let v = duration_of(r.field);
    rule(
        &format!("{v} >= duration('{}') && {v} <= duration('{}')", go_duration(r.min), go_duration(r.max)),
        &format!("limits.{} must be between {} and {}", r.field, r.min, r.max),
    )
}

/// The schema transform for `spec.limits`: every range of [`crate::limits`], and CPU time within wall time.
pub(crate) fn limits_rules(schema: &mut Schema) {
    let tc = &limits::TOOL_CALLS;
    let dc = &limits::DISCOVERY_CALLS;
    add_rules(
        schema,
        [
            size_rule(&limits::MEMORY),
            size_rule(&limits::STACK),
            duration_rule(&limits::CPU_TIME),
            duration_rule(&limits::WALL_TIME),
            size_rule(&limits::OUTPUT),
            rule(
                &format!("self.toolCalls >= {} && self.toolCalls <= {}", tc.min, tc.max),
                &format!("limits.toolCalls must be between {} and {}", tc.min, tc.max),
            ),
            rule(
                &format!("self.discoveryCalls >= {} && self.discoveryCalls <= {}", dc.min, dc.max),
                &format!("limits.discoveryCalls must be between {} and {}", dc.min, dc.max),
            ),
            size_rule(&limits::CODE_SIZE),
            rule(
                &format!("{} <= {}", duration_of("cpuTime"), duration_of("wallTime")),
                "limits.cpuTime must not be longer than limits.wallTime",
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_the_ranges_users_write() {
        let r = size_rule(&limits::MEMORY);
        assert_eq!(r["message"], "limits.memory must be between 1Mi and 4Gi");
        let r = duration_rule(&limits::CPU_TIME);
        assert_eq!(r["message"], "limits.cpuTime must be between 1ms and 10m");
        assert!(r["rule"].as_str().is_some_and(|s| s.contains("duration('600000ms')")));
    }
}
