//! Parser for `nft -j list ruleset` (nftables' JSON output, nftables ≥ 0.9).
//!
//! The question is not "are there rules" but "is incoming traffic filtered": Docker, for
//! example, loads NAT and forward rules on machines with no firewall at all, and Debian's
//! stock `/etc/nftables.conf` loads an input chain that accepts everything. A ruleset
//! filters incoming traffic when some base chain on the `input` hook (families `ip`, `ip6`,
//! `inet`) has policy `drop`, or holds a `drop`/`reject` verdict, directly or in a chain it
//! jumps or goes to.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// What the ruleset says about incoming traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftSummary {
    pub tables: usize,
    pub rules: usize,
    /// Input-hook base chains, as `family table chain (policy)`.
    pub input_chains: Vec<String>,
    /// True when an input chain drops or rejects something (see the module comment).
    pub filters_input: bool,
}

/// The ruleset is not nftables JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected nft output: {0}")]
pub struct NftParseError(pub String);

#[derive(Default)]
struct Chain {
    input_hook: bool,
    policy_drop: bool,
    drops: bool,
    targets: Vec<String>,
}

fn verdicts(expr: &Value, chain: &mut Chain) {
    match expr {
        Value::Object(map) => {
            for (k, v) in map {
                match k.as_str() {
                    "drop" | "reject" => chain.drops = true,
                    "jump" | "goto" => {
                        if let Some(t) = v.get("target").and_then(Value::as_str) {
                            chain.targets.push(t.to_owned());
                        }
                    }
                    _ => verdicts(v, chain),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| verdicts(i, chain)),
        _ => {}
    }
}

pub fn parse_ruleset(stdout: &str) -> Result<NftSummary, NftParseError> {
    let doc: Value =
        serde_json::from_str(stdout.trim()).map_err(|e| NftParseError(e.to_string()))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| NftParseError("no `nftables` array".into()))?;
    // Chains are keyed by (family, table, name): names repeat across tables.
    let mut chains: BTreeMap<(String, String, String), Chain> = BTreeMap::new();
    let mut input_chains = Vec::new();
    let (mut tables, mut rules) = (0, 0);
    let key = |o: &Value, name_field: &str| -> Option<(String, String, String)> {
        Some((
            o.get("family")?.as_str()?.to_owned(),
            o.get("table")?.as_str()?.to_owned(),
            o.get(name_field)?.as_str()?.to_owned(),
        ))
    };
    for item in items {
        if item.get("table").is_some() {
            tables += 1;
        } else if let Some(c) = item.get("chain") {
            let Some(k) = key(c, "name") else { continue };
            let entry = chains.entry(k.clone()).or_default();
            let hook = c.get("hook").and_then(Value::as_str);
            let family_ok = matches!(k.0.as_str(), "ip" | "ip6" | "inet");
            if hook == Some("input")
                && family_ok
                && c.get("type").and_then(Value::as_str) == Some("filter")
            {
                entry.input_hook = true;
                let policy = c.get("policy").and_then(Value::as_str).unwrap_or("accept");
                entry.policy_drop = policy == "drop";
                input_chains.push(format!("{} {} {} (policy {policy})", k.0, k.1, k.2));
            }
        } else if let Some(r) = item.get("rule") {
            rules += 1;
            let Some(k) = key(r, "chain") else { continue };
            let entry = chains.entry(k).or_default();
            if let Some(expr) = r.get("expr") {
                verdicts(expr, entry);
            }
        }
    }
    fn filters(
        chains: &BTreeMap<(String, String, String), Chain>,
        k: &(String, String, String),
        seen: &mut BTreeSet<(String, String, String)>,
    ) -> bool {
        if !seen.insert(k.clone()) {
            return false;
        }
        let Some(c) = chains.get(k) else { return false };
        c.policy_drop
            || c.drops
            || c.targets
                .iter()
                .any(|t| filters(chains, &(k.0.clone(), k.1.clone(), t.clone()), seen))
    }
    let filters_input = chains
        .iter()
        .filter(|(_, c)| c.input_hook)
        .any(|(k, _)| filters(&chains, k, &mut BTreeSet::new()));
    Ok(NftSummary {
        tables,
        rules,
        input_chains,
        filters_input,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ruleset_filters_nothing() {
        let s = parse_ruleset(r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]}"#).unwrap();
        assert_eq!(s.tables, 0);
        assert!(!s.filters_input);
    }

    #[test]
    fn jump_cycles_terminate() {
        let doc = r#"{"nftables":[{"chain":{"family":"inet","table":"t","name":"in","type":"filter","hook":"input","policy":"accept"}},
        {"rule":{"family":"inet","table":"t","chain":"in","expr":[{"jump":{"target":"a"}}]}},
        {"rule":{"family":"inet","table":"t","chain":"a","expr":[{"jump":{"target":"in"}}]}}]}"#;
        assert!(!parse_ruleset(doc).unwrap().filters_input);
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(parse_ruleset("Error: JSON support not compiled-in").is_err());
        assert!(parse_ruleset("{}").is_err());
    }
}
