//! Canonical JSON bytes for signatures.
//!
//! Both ends must produce the same bytes for the same policy, whatever serde_json features
//! other crates in a build switch on (`preserve_order` changes map ordering). This writer
//! therefore sorts object keys itself and emits compact JSON with serde_json's escaping and
//! number formatting.

use serde_json::Value;

/// Compact JSON with object keys sorted by their UTF-8 bytes, recursively.
pub fn to_canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (n, (key, v)) in entries.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, v) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_value(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers have exactly one compact rendering.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// The bytes a signed policy's signature covers: a domain-separation line, the version, the
/// group, then the canonical policy JSON.
pub fn policy_signing_bytes(version: i64, group: &str, policy: &Value) -> Vec<u8> {
    format!(
        "tandem-policy-v1\n{version}\n{group}\n{}",
        to_canonical_json(policy)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_output_is_compact() {
        let v = json!({"b": 1, "a": {"z": [true, null, "x\"y"], "c": 1.5}});
        assert_eq!(
            to_canonical_json(&v),
            r#"{"a":{"c":1.5,"z":[true,null,"x\"y"]},"b":1}"#
        );
    }

    #[test]
    fn equal_values_from_different_texts_have_equal_bytes() {
        let a: Value = serde_json::from_str(r#"{ "x": 1, "y": "é" }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":"\u00e9","x":1}"#).unwrap();
        assert_eq!(
            policy_signing_bytes(3, "default", &a),
            policy_signing_bytes(3, "default", &b)
        );
        assert_ne!(
            policy_signing_bytes(3, "default", &a),
            policy_signing_bytes(4, "default", &a)
        );
    }
}
