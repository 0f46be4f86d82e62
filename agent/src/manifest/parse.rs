//! Parsing one file into manifests: multi-document YAML, JSON (also single-line JSON in a `.yaml` file, as
//! EMCO writes it), and `List` kinds flattened into their items.
//!
//! Every error names the file, the document, the line and, for a validation error, the field.

use serde_json::Value;

use super::budget::{self, MAX_DEPTH};
use super::bundle::{Manifest, Origin};

/// A file that cannot become manifests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not UTF-8 text.
    #[error("{file}: not UTF-8 text")]
    NotText {
        /// Repository path of the file.
        file: String,
    },
    /// YAML or JSON syntax error.
    #[error("{file}: document {document}, line {line}, column {column}: {message}")]
    Syntax {
        /// Repository path of the file.
        file: String,
        /// 1-based document index.
        document: usize,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// The parser's description, first line only.
        message: String,
    },
    /// Valid syntax, invalid object.
    #[error("{origin}: field {field}: {problem}")]
    Field {
        /// Where the document is.
        origin: Origin,
        /// The field at fault (`kind`, `metadata.name`, `items[2].apiVersion`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Error {
    /// The kind of failure as a metric label value: short, snake_case, from a fixed set.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NotText { .. } => "manifest_not_text",
            Error::Syntax { .. } => "manifest_syntax",
            Error::Field { .. } => "manifest_field",
        }
    }
}

/// Parse `data`, the content of repository file `file`, into validated manifests.
pub fn parse_file(file: &str, data: &[u8]) -> Result<Vec<Manifest>, Error> {
    let text = std::str::from_utf8(data).map_err(|_| Error::NotText {
        file: file.to_owned(),
    })?;
    let docs = if looks_like_json(file, text) {
        // Over budget is final: YAML would build the same value.
        if let Some((offset, document)) = budget::json_over_budget(text) {
            return Err(Error::Syntax {
                file: file.to_owned(),
                document,
                line: line_of(text, offset),
                column: 1,
                message: budget::json_message(),
            });
        }
        match parse_json(file, text) {
            Ok(docs) => docs,
            // `{a: b}` in a .yaml file is a YAML flow mapping, not JSON: let YAML have a go before reporting
            // the JSON error. A .json file is JSON and nothing else.
            Err(json_err) if file.ends_with(".json") => return Err(json_err),
            Err(json_err) => parse_yaml(file, text).map_err(|_| json_err)?,
        }
    } else {
        parse_yaml(file, text)?
    };
    let mut out = Vec::new();
    for (index, (line, value)) in docs.into_iter().enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            document: index + 1,
            line,
            sealed: Default::default(),
        };
        collect(value, origin, "", &mut out)?;
    }
    Ok(out)
}

/// JSON when the extension says so or the first non-blank character opens an object or array.
fn looks_like_json(file: &str, text: &str) -> bool {
    file.ends_with(".json") || matches!(text.trim_start().chars().next(), Some('{') | Some('['))
}

/// A stream of JSON values; each is one document (line = where it starts).
fn parse_json(file: &str, text: &str) -> Result<Vec<(u64, Value)>, Error> {
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let skipped = text[start..].len() - text[start..].trim_start().len();
                docs.push((line_of(text, start + skipped), value));
            }
            Some(Err(e)) => {
                return Err(Error::Syntax {
                    file: file.to_owned(),
                    document: docs.len() + 1,
                    line: e.line() as u64,
                    column: e.column() as u64,
                    message: budget::explain(&e.to_string()),
                });
            }
        }
    }
    Ok(docs)
}

/// Multi-document YAML; empty documents (a leading `---`, `---` twice) are skipped.
fn parse_yaml(file: &str, text: &str) -> Result<Vec<(u64, Value)>, Error> {
    let docs: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, budget::yaml_options(text.len())).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            Error::Syntax {
                file: file.to_owned(),
                document: document_at_line(text, line),
                line,
                column,
                message: budget::explain(&first_line(&e.to_string())),
            }
        })?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| (d.referenced.line(), d.value))
        .collect())
}

/// Validate one document and push it, or its items when it is a `List`.
fn collect(value: Value, origin: Origin, prefix: &str, out: &mut Vec<Manifest>) -> Result<(), Error> {
    let field_err = |field: &str, problem: &str| Error::Field {
        origin: origin.clone(),
        field: format!("{prefix}{field}"),
        problem: problem.to_owned(),
    };
    if depth(&value) > MAX_DEPTH {
        return Err(field_err(
            "(document)",
            "nested too deeply to be a Kubernetes object",
        ));
    }
    let Value::Object(map) = &value else {
        return Err(field_err(
            "(document)",
            "must be a mapping with apiVersion, kind and metadata",
        ));
    };
    let api_version = required_string(map.get("apiVersion")).map_err(|p| field_err("apiVersion", p))?;
    let kind = required_string(map.get("kind")).map_err(|p| field_err("kind", p))?;
    if kind.ends_with("List") && map.get("items").is_some() {
        let Some(Value::Array(items)) = map.get("items") else {
            return Err(field_err("items", "must be a list"));
        };
        for (i, item) in items.iter().enumerate() {
            collect(item.clone(), origin.clone(), &format!("{prefix}items[{i}]."), out)?;
        }
        return Ok(());
    }
    let metadata = match map.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(field_err("metadata", "must be a mapping")),
        None => return Err(field_err("metadata", "is missing")),
    };
    let name = required_string(metadata.get("name")).map_err(|p| field_err("metadata.name", p))?;
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) if ns.is_empty() => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(_) => return Err(field_err("metadata.namespace", "must be a string")),
    };
    if !api_version.contains('/') && api_version != "v1" {
        return Err(field_err("apiVersion", "must be `v1` or `group/version`"));
    }
    let body = serde_json::value::to_raw_value(&value).map_err(|e| field_err("", &e.to_string()))?;
    out.push(Manifest {
        origin,
        api_version,
        kind,
        name,
        namespace,
        body,
    });
    Ok(())
}

/// A non-empty string, or why not.
fn required_string(v: Option<&Value>) -> Result<String, &'static str> {
    match v {
        None | Some(Value::Null) => Err("is missing"),
        Some(Value::String(s)) if s.trim().is_empty() => Err("is empty"),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err("must be a string"),
    }
}

/// Nesting depth of a value.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> u64 {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count() as u64
        + 1
}

/// Which document (1-based, among non-empty ones) contains `line`, counting `---` separators before it.
fn document_at_line(text: &str, line: u64) -> usize {
    let mut document = 0usize;
    let mut has_content = false;
    for (i, l) in text.lines().enumerate() {
        let is_separator = l.starts_with("---") && l[3..].chars().next().is_none_or(char::is_whitespace);
        if is_separator {
            if has_content {
                document += 1;
            }
            has_content = false;
        } else if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            has_content = true;
        }
        if i as u64 + 1 >= line {
            break;
        }
    }
    document + 1
}

/// The first line of a possibly multi-line parser message (snippets are for terminals, not logs), without
/// the parser's own `error: line N column M:` prefix (our message already says where).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("error:").unwrap_or(line).trim_start();
    if let Some(rest) = line.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
        && rest
            .split_once(": ")
            .is_some_and(|(loc, _)| loc.contains("column"))
    {
        return after.to_owned();
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ms: &[Manifest]) -> Vec<String> {
        ms.iter().map(|m| m.display_name()).collect()
    }

    #[test]
    fn multi_document_yaml_keeps_every_document() {
        // kube#2026: leading separator, empty documents, and a last document without a newline.
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: ns\ndata: {k: v}";
        let ms = parse_file("c/x.yaml", text.as_bytes()).unwrap();
        assert_eq!(names(&ms), ["ConfigMap/a", "ConfigMap/ns/b"]);
        assert_eq!(ms[0].origin.document, 1);
        assert_eq!(ms[1].origin.document, 2);
        assert_eq!(ms[1].origin.line, 9);
        assert_eq!(ms[1].value()["data"]["k"], "v");
    }

    #[test]
    fn single_line_json_in_a_yaml_file_is_parsed() {
        let text = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"x"},"spec":{"replicas":2}}"#;
        let ms = parse_file("context/1/app/web/web+Deployment.yaml", text.as_bytes()).unwrap();
        assert_eq!(names(&ms), ["Deployment/x/web"]);
        assert_eq!(ms[0].group(), "apps");
        assert_eq!(ms[0].version(), "v1");
        assert_eq!(ms[0].value()["spec"]["replicas"], 2);
    }

    #[test]
    fn list_kinds_are_flattened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n";
        let ms = parse_file("l.yaml", text.as_bytes()).unwrap();
        assert_eq!(names(&ms), ["ConfigMap/a", "Secret/b"]);
    }

    #[test]
    fn syntax_errors_name_file_document_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   bad: indent\n";
        let err = parse_file("clusters/e/app/bad.yaml", text.as_bytes()).unwrap_err();
        let Error::Syntax {
            file, document, line, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(file, "clusters/e/app/bad.yaml");
        assert_eq!(*document, 2);
        assert!((8..=9).contains(line), "line {line}: {err}");
        assert!(
            err.to_string()
                .contains("clusters/e/app/bad.yaml: document 2, line"),
            "{err}"
        );
        assert!(!err.to_string().contains("error:"), "parser prefix kept: {err}");
    }

    #[test]
    fn json_syntax_errors_have_a_line() {
        let err = parse_file("x.json", b"{\n\"apiVersion\": \"v1\",\n\"kind\": }\n").unwrap_err();
        assert!(matches!(err, Error::Syntax { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_file("f.yaml", b"apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml (document 1, line 1): field kind: is missing"
        );
        let err = parse_file("f.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap_err();
        assert!(
            err.to_string().contains("field metadata.name: is missing"),
            "{err}"
        );
        let err = parse_file(
            "f.yaml",
            b"apiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("field items[0].apiVersion: is missing"),
            "{err}"
        );
        let err = parse_file("f.yaml", b"- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("must be a mapping"), "{err}");
    }

    #[test]
    fn binary_files_are_rejected_by_name() {
        let err = parse_file("img.yaml", &[0xff, 0xfe, 0x00]).unwrap_err();
        assert_eq!(err.to_string(), "img.yaml: not UTF-8 text");
    }

    /// Nine anchors, each a list of nine of the previous: 9^9 strings if expanded.
    fn alias_bomb() -> String {
        let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n");
        text.push_str("  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("  {name}: &{name} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_naming_file_and_document() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ok}}\n---\n{}",
            alias_bomb()
        );
        let err = parse_file("clusters/c/app/bomb.yaml", text.as_bytes()).unwrap_err();
        let Error::Syntax { file, document, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (file.as_str(), *document),
            ("clusters/c/app/bomb.yaml", 2),
            "{err}"
        );
        assert!(err.to_string().contains("alias bomb"), "{err}");
        assert!(err.to_string().contains("twice its own size"), "{err}");
    }

    #[test]
    fn a_long_scalar_aliased_many_times_is_refused() {
        let long = "x".repeat(100_000);
        let refs = vec!["*s"; 50].join(", ");
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata:\n  s: &s {long}\n  l: [{refs}]\n"
        );
        let err = parse_file("long.yaml", text.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Syntax { document: 1, .. }), "{err}");
    }

    #[test]
    fn a_few_anchors_as_manifests_use_them_still_parse() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w, labels: &l {app: w}}\nspec:\n  selector: {matchLabels: *l}\n  template: {metadata: {labels: *l}}\n";
        let ms = parse_file("d.yaml", text.as_bytes()).unwrap();
        assert_eq!(
            ms[0].value()["spec"]["template"]["metadata"]["labels"]["app"],
            "w"
        );
    }

    #[test]
    fn ten_thousand_levels_of_nesting_are_refused_in_yaml_and_json() {
        let flow = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let block = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata:\n  x:\n  {}x\n",
            "- ".repeat(10_000)
        );
        let json = format!("{{\"a\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        for (file, text) in [("flow.yaml", flow), ("block.yaml", block), ("deep.json", json)] {
            let err = parse_file(file, text.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("nested more than 128 levels"), "{err}");
            assert!(
                matches!(&err, Error::Syntax { file: f, document: 1, .. } if f == file),
                "{file}: {err}"
            );
        }
    }

    #[test]
    fn document_index_counts_only_non_empty_documents() {
        let text = "---\n---\na: 1\n---\nb: 2\n";
        assert_eq!(document_at_line(text, 3), 1);
        assert_eq!(document_at_line(text, 5), 2);
    }
}
