//! Small helpers shared by the firewall, disk-encryption, screen-lock, antivirus,
//! automatic-update and OS-version checks: evidence excerpts, exit-code wording and the
//! PowerShell command shape. They live here because each check owns its own directory; they
//! are candidates for a common module.

use std::time::Duration;

use tandem_proto::check::Evidence;

use crate::host::{Cmd, CmdOutput};

/// Windows PowerShell 5.1, present on every supported Windows.
pub const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";
/// The registry command-line tool.
pub const REG_EXE: &str = r"C:\Windows\System32\reg.exe";

/// A PowerShell command that prints JSON. `-NoProfile` keeps user profiles (and their
/// output) out; `-NonInteractive` makes a prompt an error instead of a hang.
pub fn powershell(script: &str) -> Cmd {
    Cmd::new(
        POWERSHELL,
        &["-NoProfile", "-NonInteractive", "-Command", script],
    )
    .timeout(Duration::from_secs(30))
}

/// `reg.exe query KEY [/v NAME]`.
pub fn reg_query(key: &str, value: Option<&str>) -> Cmd {
    match value {
        Some(v) => Cmd::new(REG_EXE, &["query", key, "/v", v]),
        None => Cmd::new(REG_EXE, &["query", key]),
    }
}

/// The first lines of a text, cut at 2000 bytes on a character boundary.
pub fn excerpt(text: &str) -> String {
    let mut s: String = text
        .trim_start()
        .lines()
        .take(20)
        .collect::<Vec<_>>()
        .join("\n");
    if s.len() > 2000 {
        let mut cut = 2000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The lines of a text that mention one of `needles` (with the first line, which names the
/// registry key), for evidence from long outputs.
pub fn excerpt_matching(text: &str, needles: &[&str]) -> String {
    let mut lines = text.trim_start().lines();
    let head = lines.next().unwrap_or("");
    let picked: Vec<&str> = std::iter::once(head)
        .chain(lines.filter(|l| needles.iter().any(|n| l.contains(n))))
        .collect();
    excerpt(&picked.join("\n"))
}

/// Evidence for one command run: its stdout, or stderr when stdout is empty.
pub fn cmd_evidence(cmd: &Cmd, out: &CmdOutput) -> Evidence {
    let text = if out.stdout.trim().is_empty() {
        &out.stderr
    } else {
        &out.stdout
    };
    Evidence {
        source: cmd.display(),
        excerpt: excerpt(text),
    }
}

/// "exited with 3: first line of stderr (or stdout)", for reasons; the line is cut at 200
/// characters.
pub fn exit_text(program: &str, out: &CmdOutput) -> String {
    let first = |t: &str| {
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    let mut line = first(&out.stderr)
        .or_else(|| first(&out.stdout))
        .unwrap_or_else(|| "no message".into());
    if line.chars().count() > 200 {
        line = line.chars().take(200).collect::<String>() + "…";
    }
    format!(
        "{program} exited with {}: {line}",
        out.exit_code
            .map_or_else(|| "a signal".to_owned(), |c| c.to_string())
    )
}

/// `ConvertTo-Json` prints one object bare and several as an array, and nothing at all for
/// an empty pipeline: this returns the items in every case, or `None` for text that is not
/// JSON.
pub fn json_items(stdout: &str) -> Option<Vec<serde_json::Value>> {
    let text = stdout.trim().trim_start_matches('\u{feff}');
    if text.is_empty() {
        return Some(Vec::new());
    }
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Array(items) => Some(items),
        v @ serde_json::Value::Object(_) => Some(vec![v]),
        _ => None,
    }
}

/// A JSON field as a boolean, accepting the shapes PowerShell produces: `true`, `1`, `"True"`.
pub fn json_bool(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => n.as_u64().map(|n| n != 0),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_to_json_shapes() {
        assert_eq!(json_items("").unwrap().len(), 0);
        assert_eq!(json_items("{\"a\":1}").unwrap().len(), 1);
        assert_eq!(json_items("[{\"a\":1},{\"a\":2}]").unwrap().len(), 2);
        assert!(json_items("Get-CimInstance : Access denied").is_none());
        assert_eq!(json_bool(&serde_json::json!("True")), Some(true));
        assert_eq!(json_bool(&serde_json::json!(0)), Some(false));
    }
}
