//! How much one file may make the parser build: nesting, nodes, alias expansion, and for JSON a count of values
//! taken before parsing.
//!
//! The source caps what is read (`--max-blob-bytes`, `--max-total-bytes`); this caps what the bytes become. A
//! parsed value costs several hundred bytes per key, so a file of short keys, or an alias bomb (anchors replayed
//! by aliases: a few hundred bytes describing gigabytes), would outgrow the agent's memory limit long before
//! its bytes did. Files are parsed one at a time and their values dropped once validated, so a per-file budget
//! bounds what parsing holds at once.

/// Documents nested more deeply than this are refused (a YAML bomb, not a manifest). serde_json stops JSON at
/// the same depth; the YAML parser's budget stops YAML there, before a value is built.
pub(super) const MAX_DEPTH: usize = 128;

/// What a YAML file may expand into beyond its own size: it may yield at most twice its size in scalar bytes and
/// in nodes, plus this much for small files; a commit's files are capped (`--max-files`, `--max-total-bytes`),
/// so what all of them can expand into stays bounded too.
const YAML_SLACK: usize = 256;

/// Parser events one YAML file may produce (about 200,000 keys with their values): twice the densest CRD
/// bundles in the wild, and, built into a value, about 65 MiB, well inside the agent's 256Mi limit.
const MAX_EVENTS: usize = 400_000;

/// Values (keys, elements, scalars) one JSON file may hold: what [`MAX_EVENTS`] lets YAML build.
const MAX_JSON_VALUES: usize = MAX_EVENTS / 2;

/// The YAML parser's budget for a file of `len` bytes: nesting, events, and nodes, scalar bytes and alias replay
/// bounded by the file's own size (see [`YAML_SLACK`]).
pub(super) fn yaml_options(len: usize) -> serde_saphyr::Options {
    let grown = len.saturating_mul(2).saturating_add(YAML_SLACK);
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_events: MAX_EVENTS,
            max_nodes: grown,
            max_total_scalar_bytes: grown,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: grown,
        },
    }
}

/// Where a JSON text goes over [`MAX_JSON_VALUES`] — (byte offset, 1-based document) — counting separators and
/// openers outside strings, without building anything; `None` within budget.
pub(super) fn json_over_budget(text: &str) -> Option<(usize, usize)> {
    let (mut values, mut depth, mut document) = (1usize, 0usize, 1usize);
    let (mut in_string, mut escaped) = (false, false);
    for (offset, b) in text.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b':' => values += 1,
            b'[' | b'{' => {
                values += 1;
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    document += 1;
                }
            }
            _ => {}
        }
        if values > MAX_JSON_VALUES {
            return Some((offset, document));
        }
    }
    None
}

/// The error text of a JSON file over budget.
pub(super) fn json_message() -> String {
    format!("over the JSON budget: more than {MAX_JSON_VALUES} values in one file (split it)")
}

/// The parser's word for a broken budget, said in ours: which cap, and why it exists.
pub(super) fn explain(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("depth") || lower.contains("recursion limit") || lower.contains("nesting") {
        return format!(
            "nested more than {MAX_DEPTH} levels deep, which no Kubernetes object is ({message})"
        );
    }
    if lower.contains("budget breached") || lower.contains("alias replay") {
        return format!(
            "over the YAML budget: at most twice its own size in nodes and in scalar bytes (aliases replaying \
             anchors beyond that are an alias bomb) and {MAX_EVENTS} parser events per file ({message})"
        );
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_counted_outside_strings_only() {
        let within = format!("{{\"a\": \"{}\"}}", ",:[{".repeat(MAX_JSON_VALUES));
        assert_eq!(json_over_budget(&within), None);
        let entries: Vec<String> = (0..MAX_JSON_VALUES).map(|i| format!("\"k{i}\":1")).collect();
        let over = format!("{{\"a\":1}}\n{{{}}}", entries.join(","));
        let (offset, document) = json_over_budget(&over).expect("over budget");
        assert_eq!(document, 2);
        assert!(offset > 8 && offset < over.len());
    }
}
