//! A structural diff of two JSON documents, for reviewing policy versions side by side.
//!
//! Written here rather than taken from a JSON Patch crate because a reviewer needs the value
//! before as well as after each change, which RFC 6902 patches leave out. Objects are
//! compared key by key; arrays and scalars are compared whole, because policy arrays are
//! short sets (`recognised`, `days`) where "element 2 changed" would only confuse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One difference, located by an RFC 6901 JSON pointer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub op: ChangeKind,
    pub pointer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The changes that turn `before` into `after`, in key order.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(&mut String::new(), before, after, &mut changes);
    changes
}

fn walk(pointer: &mut String, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                match (b.get(key), a.get(key)) {
                    (Some(bv), Some(av)) => walk(pointer, bv, av, out),
                    (Some(bv), None) => out.push(Change {
                        op: ChangeKind::Removed,
                        pointer: pointer.clone(),
                        before: Some(bv.clone()),
                        after: None,
                    }),
                    (None, Some(av)) => out.push(Change {
                        op: ChangeKind::Added,
                        pointer: pointer.clone(),
                        before: None,
                        after: Some(av.clone()),
                    }),
                    (None, None) => {}
                }
                pointer.truncate(len);
            }
        }
        (b, a) if b != a => out.push(Change {
            op: ChangeKind::Changed,
            pointer: pointer.clone(),
            before: Some(b.clone()),
            after: Some(a.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_changes_are_located_by_pointer() {
        let before = json!({
            "org": {"name": "A"},
            "checks": {"firewall": {"enabled": true}, "a/b": 1},
            "intervals": {"check_minutes": 60}
        });
        let after = json!({
            "org": {"name": "B"},
            "checks": {"firewall": {"enabled": true, "owner": "it"}},
            "intervals": {"check_minutes": 60},
            "nudges": {"max_per_day": 2}
        });
        let changes = serde_json::to_value(diff(&before, &after)).unwrap();
        assert_eq!(
            changes,
            json!([
                {"op": "removed", "pointer": "/checks/a~1b", "before": 1},
                {"op": "added", "pointer": "/checks/firewall/owner", "after": "it"},
                {"op": "added", "pointer": "/nudges", "after": {"max_per_day": 2}},
                {"op": "changed", "pointer": "/org/name", "before": "A", "after": "B"},
            ])
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn arrays_and_type_changes_compare_whole() {
        let changes = diff(&json!({"x": [1, 2]}), &json!({"x": [2, 1]}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].pointer, "/x");
        let changes = diff(&json!({"x": 1}), &json!(5));
        assert_eq!(changes[0].pointer, "");
    }
}
