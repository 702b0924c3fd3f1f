//! The policy form, generated from the typed policy model rather than written by hand: every
//! setting of the built-in defaults (plus the optional ones, which the defaults leave out)
//! becomes a field whose widget follows the value's type. A setting added to
//! `tandem_proto::Policy` therefore appears in the form without touching this file, and the
//! test below fails if the form can no longer express the defaults.
//!
//! Arrays of objects (`it_commitments`) are kept as they are and edited in the raw editor.

use serde_json::{Map, Value};
use tandem_proto::Policy;

use super::forms::FormData;

/// Choices of the policy's enumerations, by the key they appear under.
fn choices(key: &str) -> Option<&'static [&'static str]> {
    match key {
        "severity" => Some(&["low", "medium", "high", "critical"]),
        "owner" => Some(&["", "user", "it"]),
        "source" => Some(&["idp_then_local", "local", "idp"]),
        _ => None,
    }
}

/// Optional settings the defaults leave out, as (pointer, kind).
const OPTIONAL: &[&str] = &[
    "/org/helpdesk_url",
    "/org/phishing_contact",
    "/checks/mfa/enroll_url",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Widget {
    Checkbox,
    Number,
    Text,
    Time,
    Select(Vec<&'static str>),
    /// Comma-separated strings.
    List,
    /// `key=value` lines.
    Map,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// RFC 6901 pointer; also the input's name.
    pub pointer: String,
    pub label: String,
    pub widget: Widget,
    /// The current value as the widget shows it.
    pub value: String,
    /// Whether blank means "leave the setting out".
    pub optional: bool,
}

impl Field {
    pub fn checked(&self) -> bool {
        self.value == "true"
    }
    pub fn is(&self, kind: &str) -> bool {
        matches!(
            (&self.widget, kind),
            (Widget::Checkbox, "checkbox")
                | (Widget::Number, "number")
                | (Widget::Text, "text")
                | (Widget::Time, "time")
                | (Widget::Select(_), "select")
                | (Widget::List, "list")
                | (Widget::Map, "map")
        )
    }
    pub fn options(&self) -> Vec<(&'static str, bool)> {
        match &self.widget {
            Widget::Select(o) => o.iter().map(|c| (*c, *c == self.value)).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub fields: Vec<Field>,
}

/// Every setting with its default, optional ones as `null`.
fn full_defaults() -> Value {
    let mut doc = serde_json::to_value(Policy::default()).unwrap_or(Value::Null);
    for pointer in OPTIONAL {
        set(&mut doc, pointer, Value::Null);
    }
    if let Some(Value::Object(checks)) = doc.get_mut("checks") {
        for (_, check) in checks.iter_mut() {
            if let Value::Object(c) = check {
                c.entry("owner").or_insert(Value::Null);
                c.entry("deadline").or_insert(Value::Null);
            }
        }
    }
    doc
}

/// `over` laid over `base`, object by object.
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match b.get(k) {
                    Some(bv) => merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let mut at = doc;
    for (i, t) in tokens.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else { return };
        if i + 1 == tokens.len() {
            map.insert(t.clone(), value);
            return;
        }
        at = map.entry(t.clone()).or_insert(Value::Object(Map::new()));
    }
}

fn remove(doc: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let target = if parent.is_empty() {
        Some(doc)
    } else {
        doc.pointer_mut(parent)
    };
    if let Some(Value::Object(map)) = target {
        map.remove(&unescape(last));
    }
}

fn label(key: &str) -> String {
    match key {
        "org" => return "Organisation".to_owned(),
        "url" | "enroll_url" | "helpdesk_url" => {
            return label(&key.replace("url", "URL"));
        }
        _ => {}
    }
    let text = key.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn walk(pointer: String, key: &str, template: &Value, current: &Value, out: &mut Vec<Field>) {
    let value_of = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let widget = match template {
        Value::Object(map) if key == "minimum" => {
            let _ = map;
            let lines = current
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", value_of(v)))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            out.push(Field {
                pointer,
                label: label(key),
                widget: Widget::Map,
                value: lines,
                optional: false,
            });
            return;
        }
        Value::Object(map) => {
            // The settings every check shares first, in the order people decide them.
            let first = ["enabled", "severity", "grace_days", "deadline", "owner"];
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| first.iter().position(|f| f == k).unwrap_or(first.len()));
            for k in keys {
                let c = current.get(k).unwrap_or(&Value::Null);
                walk(format!("{pointer}/{k}"), k, &map[k], c, out);
            }
            return;
        }
        Value::Array(items) if items.iter().all(Value::is_string) && key != "it_commitments" => {
            let list = current
                .as_array()
                .map(|a| a.iter().map(value_of).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            out.push(Field {
                pointer,
                label: label(key),
                widget: Widget::List,
                value: list,
                optional: false,
            });
            return;
        }
        Value::Array(_) => return,
        Value::Bool(_) => Widget::Checkbox,
        Value::Number(_) => Widget::Number,
        _ if choices(key).is_some() => {
            Widget::Select(choices(key).map(<[_]>::to_vec).unwrap_or_default())
        }
        Value::String(_) if key == "start" || key == "end" => Widget::Time,
        _ => Widget::Text,
    };
    let mut value = value_of(current);
    if widget == Widget::Time && value.len() == 8 {
        value.truncate(5);
    }
    out.push(Field {
        pointer,
        label: label(key),
        widget,
        value,
        optional: template.is_null(),
    });
}

/// The form's sections for a policy document (the group's current one).
pub fn sections(current: &Value) -> Vec<Section> {
    let template = full_defaults();
    let current = merge(&template, current);
    let mut sections = Vec::new();
    let Value::Object(top) = &template else {
        return sections;
    };
    // The order a reader expects: who, what is checked (in the agent's order), how people
    // are reminded, how often; then anything the model gained since, by name.
    let preferred = ["org", "checks", "nudges", "intervals"];
    let mut keys: Vec<&String> = top.keys().collect();
    keys.sort_by_key(|k| {
        preferred
            .iter()
            .position(|p| p == k)
            .unwrap_or(preferred.len())
    });
    for key in keys {
        let t = &top[key];
        let c = current.get(key).unwrap_or(&Value::Null);
        if key == "checks" {
            if let Value::Object(checks) = t {
                let mut names: Vec<&String> = checks.keys().collect();
                names.sort_by_key(|n| {
                    tandem_proto::CheckId::ALL
                        .iter()
                        .position(|id| id.as_str() == n.as_str())
                        .unwrap_or(usize::MAX)
                });
                for check in names {
                    let ct = &checks[check];
                    let mut fields = Vec::new();
                    let cc = c.get(check).unwrap_or(&Value::Null);
                    walk(format!("/checks/{check}"), check, ct, cc, &mut fields);
                    let title = check
                        .parse::<tandem_proto::CheckId>()
                        .map(|id| id.title().to_owned())
                        .unwrap_or_else(|_| label(check));
                    sections.push(Section {
                        title: format!("Check: {title}"),
                        fields,
                    });
                }
            }
            continue;
        }
        let mut fields = Vec::new();
        walk(format!("/{key}"), key, t, c, &mut fields);
        if !fields.is_empty() {
            sections.push(Section {
                title: label(key),
                fields,
            });
        }
    }
    sections
}

/// The document the form describes: `current` with every field set from the form. Errors
/// name the field whose value does not fit its type; the policy's own rules are checked
/// afterwards by `Policy::parse_strict`.
pub fn apply(current: &Value, form: &FormData) -> Result<Value, String> {
    let mut doc = merge(&full_defaults(), current);
    for section in sections(current) {
        for field in section.fields {
            let raw = form.get(&field.pointer).unwrap_or_default().trim();
            let value = match field.widget {
                Widget::Checkbox => Value::Bool(raw == "true"),
                Widget::Number => Value::Number(
                    raw.parse::<u64>()
                        .map(Into::into)
                        .map_err(|_| format!("{}: `{raw}` is not a whole number", field.pointer))?,
                ),
                Widget::Time => {
                    let t = if raw.len() == 5 {
                        format!("{raw}:00")
                    } else {
                        raw.to_owned()
                    };
                    Value::String(t)
                }
                Widget::List => Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                ),
                Widget::Map => {
                    let mut map = Map::new();
                    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        let (k, v) = line.split_once('=').ok_or_else(|| {
                            format!("{}: `{line}` is not key=value", field.pointer)
                        })?;
                        map.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
                    }
                    Value::Object(map)
                }
                Widget::Select(_) | Widget::Text if raw.is_empty() && field.optional => {
                    remove(&mut doc, &field.pointer);
                    continue;
                }
                Widget::Select(_) | Widget::Text => Value::String(raw.to_owned()),
            };
            set(&mut doc, &field.pointer, value);
        }
    }
    strip_nulls(&mut doc);
    Ok(doc)
}

fn strip_nulls(doc: &mut Value) {
    if let Value::Object(map) = doc {
        map.retain(|_, v| !v.is_null());
        for v in map.values_mut() {
            strip_nulls(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form filled in with what it shows must give back the policy it showed.
    fn round_trip(current: &Value) -> Value {
        let mut fields = Vec::new();
        for s in sections(current) {
            for f in s.fields {
                fields.push((f.pointer.clone(), f.value.clone()));
            }
        }
        apply(current, &FormData(fields)).unwrap()
    }

    #[test]
    fn the_form_expresses_the_defaults_and_every_setting() {
        let doc = round_trip(&serde_json::json!({}));
        let parsed = Policy::parse_strict(&doc).unwrap();
        assert_eq!(parsed, Policy::default());
        // Every leaf of the defaults has a field.
        let pointers: Vec<String> = sections(&serde_json::json!({}))
            .into_iter()
            .flat_map(|s| s.fields.into_iter().map(|f| f.pointer))
            .collect();
        for p in [
            "/checks/os_updates/security_grace_days",
            "/nudges/escalation/overdue_every_hours",
            "/intervals/report_minutes",
            "/checks/screen_lock/max_idle_minutes",
            "/org/name",
            "/checks/os_supported/minimum",
            "/checks/password_manager/recognised",
        ] {
            assert!(
                pointers.contains(&p.to_owned()),
                "{p} missing from {pointers:?}"
            );
        }
    }

    #[test]
    fn changed_fields_reach_the_document() {
        let current = serde_json::json!({"org": {"name": "Acme"}, "it_commitments": [{"title": "t", "by": "b", "detail": "d"}]});
        let mut fields: Vec<(String, String)> = sections(&current)
            .into_iter()
            .flat_map(|s| s.fields.into_iter().map(|f| (f.pointer, f.value)))
            .collect();
        for (k, v) in &mut fields {
            match k.as_str() {
                "/checks/firewall/enabled" => *v = "false".into(),
                "/checks/screen_lock/max_idle_minutes" => *v = "5".into(),
                "/org/helpdesk_url" => *v = "https://help.example".into(),
                _ => {}
            }
        }
        let doc = apply(&current, &FormData(fields.clone())).unwrap();
        let p = Policy::parse_strict(&doc).unwrap();
        assert!(!p.checks.firewall.enabled);
        assert_eq!(p.checks.screen_lock.max_idle_minutes, 5);
        assert_eq!(p.org.name, "Acme");
        assert_eq!(p.org.helpdesk_url.as_deref(), Some("https://help.example"));
        assert_eq!(p.it_commitments.len(), 1);
        for (k, v) in &mut fields {
            if k == "/intervals/check_minutes" {
                *v = "many".into();
            }
        }
        let bad = FormData(fields);
        assert!(apply(&current, &bad)
            .unwrap_err()
            .contains("/intervals/check_minutes"));
    }
}
