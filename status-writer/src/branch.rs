//! Which branch each bundle's status goes to: `--git-branch` is a template (DESIGN §6).
//!
//! EMCO's rsync reads status only from a branch it names itself: in its default git2go mode the branch named
//! after the cluster (template `{cluster}`), in its `github` mode one branch per app (`{cluster}-{cid}-{app}`).
//! A name without placeholders (`main`, the default) is one branch for every bundle, as before templates.
//!
//! Placeholders: `{cluster}` is `--cluster`; `{bundle}` is the bundle name; `{cid}` and `{app}` are the EMCO
//! context id and app of an EMCO-layout bundle. A plain-layout bundle has neither: there `{app}` stands for the
//! bundle name and `{cid}` for nothing; an empty `{cid}` between two separators (`-`, `_`, `.`, `/`, or the
//! start or end of the name) takes one of them along (the one after it, at the end the one before), so
//! `{cluster}-{cid}-{app}` gives plain bundle `web` the branch `<cluster>-web`, never `<cluster>--web`.
//!
//! Data enters as the flag's text (checked once at startup by [`BranchTemplate::parse`]: unknown placeholders,
//! unmatched braces, and results that are not valid branch names are refused, naming the flag) and leaves as one
//! branch name per bundle ([`BranchTemplate::expand`]). A bundle whose own name makes an invalid branch (a plain
//! directory named `x.lock`) gets an error from `expand`; the writer reports it and skips that bundle.

use outpost_agent::inventory::BundleInfo;

/// Separators an empty `{cid}` may take along, so no doubled or dangling separator is left.
const SEPARATORS: &[char] = &['-', '_', '.', '/'];

/// Stands for "one or more characters" while matching branch names against the template; a control character,
/// so it never occurs in a valid branch name.
const WILDCARD: char = '\u{0}';

/// Why a template or a bundle's branch was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `{something}` that is not one of ours.
    #[error(
        "--git-branch (OUTPOST_GIT_BRANCH) {template:?}: unknown placeholder {{{name}}}; the placeholders are {{cluster}}, {{cid}}, {{app}} and {{bundle}}"
    )]
    UnknownPlaceholder {
        /// The flag's text.
        template: String,
        /// What was between the braces.
        name: String,
    },
    /// A `{` without `}` or the reverse.
    #[error(
        "--git-branch (OUTPOST_GIT_BRANCH) {template:?}: unmatched {brace:?} at byte {at}; placeholders are written {{cluster}}, {{cid}}, {{app}} or {{bundle}}"
    )]
    Unmatched {
        /// The flag's text.
        template: String,
        /// The brace.
        brace: char,
        /// Its byte offset.
        at: usize,
    },
    /// The template gives an invalid branch name even for well-formed bundle names.
    #[error(
        "--git-branch (OUTPOST_GIT_BRANCH) {template:?} gives {branch:?} for {example}, which is not a valid Git branch name: {reason}"
    )]
    InvalidTemplate {
        /// The flag's text.
        template: String,
        /// Which sample bundle.
        example: &'static str,
        /// What it expanded to.
        branch: String,
        /// The rule it breaks.
        reason: String,
    },
    /// This bundle's name makes an invalid branch name.
    #[error(
        "no status for bundle {bundle:?}: --git-branch {template:?} gives {branch:?}, which is not a valid Git branch name ({reason}); rename the bundle's directory or change the template"
    )]
    InvalidBranch {
        /// The bundle.
        bundle: String,
        /// The flag's text.
        template: String,
        /// What it expanded to.
        branch: String,
        /// The rule it breaks.
        reason: String,
    },
}

impl Error {
    /// A bounded label for metrics and logs: which rule the template or the bundle name broke.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::UnknownPlaceholder { .. } => "branch_unknown_placeholder",
            Error::Unmatched { .. } => "branch_unmatched_brace",
            Error::InvalidTemplate { .. } => "branch_invalid_template",
            Error::InvalidBranch { .. } => "branch_invalid_name",
        }
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Literal text.
    Text(String),
    /// `{cluster}`.
    Cluster,
    /// `{cid}`.
    Cid,
    /// `{app}`.
    App,
    /// `{bundle}`.
    Bundle,
}

/// A parsed and checked `--git-branch`, bound to this writer's cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchTemplate {
    /// The flag's text, for messages.
    text: String,
    /// `--cluster`, what `{cluster}` stands for.
    cluster: String,
    /// The pieces, in order.
    parts: Vec<Part>,
}

impl BranchTemplate {
    /// Parse `text` for `cluster`, refusing unknown placeholders, unmatched braces, and templates whose result
    /// is not a valid branch name for an EMCO bundle (`100-web`) or a plain one (`web`).
    pub fn parse(text: &str, cluster: &str) -> Result<Self, Error> {
        let mut parts = Vec::new();
        let mut rest = text;
        let offset = |rest: &str| text.len() - rest.len();
        while !rest.is_empty() {
            let open = rest.find('{');
            let close = rest.find('}');
            if let Some(at) = close.filter(|c| open.is_none_or(|o| *c < o)) {
                return Err(Error::Unmatched {
                    template: text.to_owned(),
                    brace: '}',
                    at: offset(rest) + at,
                });
            }
            let Some(open) = open else {
                parts.push(Part::Text(rest.to_owned()));
                break;
            };
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let Some(len) = rest[open + 1..]
                .find(['{', '}'])
                .filter(|&l| rest.as_bytes()[open + 1 + l] == b'}')
            else {
                return Err(Error::Unmatched {
                    template: text.to_owned(),
                    brace: '{',
                    at: offset(rest) + open,
                });
            };
            let name = &rest[open + 1..open + 1 + len];
            parts.push(match name {
                "cluster" => Part::Cluster,
                "cid" => Part::Cid,
                "app" => Part::App,
                "bundle" => Part::Bundle,
                _ => {
                    return Err(Error::UnknownPlaceholder {
                        template: text.to_owned(),
                        name: name.to_owned(),
                    });
                }
            });
            rest = &rest[open + len + 2..];
        }
        let template = BranchTemplate {
            text: text.to_owned(),
            cluster: cluster.to_owned(),
            parts,
        };
        for (example, context, bundle) in [
            ("EMCO bundle 100-web", Some(("100", "web")), "100-web"),
            ("plain bundle web", None, "web"),
        ] {
            let branch = template.render(context, bundle);
            if let Err(reason) = check_branch_name(&branch) {
                return Err(Error::InvalidTemplate {
                    template: text.to_owned(),
                    example,
                    branch,
                    reason,
                });
            }
        }
        Ok(template)
    }

    /// The branch of `bundle`'s status.
    pub fn expand(&self, bundle: &BundleInfo) -> Result<String, Error> {
        let context = match (&bundle.context, &bundle.app) {
            (Some(cid), Some(app)) => Some((cid.as_str(), app.as_str())),
            _ => None,
        };
        let branch = self.render(context, &bundle.bundle);
        check_branch_name(&branch).map_err(|reason| Error::InvalidBranch {
            bundle: bundle.bundle.clone(),
            template: self.text.clone(),
            branch: branch.clone(),
            reason,
        })?;
        Ok(branch)
    }

    /// The one branch every bundle goes to, when the template names no bundle part (`main`, `{cluster}`).
    pub fn single(&self) -> Option<String> {
        let per_bundle = self
            .parts
            .iter()
            .any(|p| matches!(p, Part::Cid | Part::App | Part::Bundle));
        (!per_bundle).then(|| self.render(None, ""))
    }

    /// Whether `branch` may be one this template gives some bundle of this cluster: only for templates that
    /// name the cluster and a bundle part (others would claim branches that are not this cluster's). Lets a
    /// writer that starts find status it wrote for bundles that left while it was not running.
    pub fn claims(&self, branch: &str) -> bool {
        if !self.sweeps() {
            return false;
        }
        let any = WILDCARD.to_string();
        let emco = self.render(Some((&any, &any)), &any);
        let plain = self.render(None, &any);
        glob_match(&emco, branch) || glob_match(&plain, branch)
    }

    /// Whether [`BranchTemplate::claims`] claims any branch at all: the template names the cluster and a
    /// bundle part.
    pub fn sweeps(&self) -> bool {
        self.single().is_none() && self.parts.contains(&Part::Cluster)
    }

    /// The template with `context` (`(cid, app)` of an EMCO bundle) and `bundle` put in.
    fn render(&self, context: Option<(&str, &str)>, bundle: &str) -> String {
        let mut out = String::new();
        // After an empty {cid}: whether a separator (or the start) came before it. Then a separator right after
        // it goes, or, at the end, the one before.
        let mut after_empty_cid: Option<bool> = None;
        for part in &self.parts {
            let mut value = match part {
                Part::Text(t) => t.as_str(),
                Part::Cluster => self.cluster.as_str(),
                Part::Bundle => bundle,
                Part::App => context.map_or(bundle, |(_, app)| app),
                Part::Cid => match context {
                    Some((cid, _)) => cid,
                    None => {
                        after_empty_cid = Some(out.is_empty() || out.ends_with(SEPARATORS));
                        continue;
                    }
                },
            };
            if after_empty_cid.take() == Some(true) {
                value = value.strip_prefix(SEPARATORS).unwrap_or(value);
            }
            out.push_str(value);
        }
        if after_empty_cid == Some(true) && out.ends_with(SEPARATORS) {
            out.pop();
        }
        out
    }
}

impl std::fmt::Display for BranchTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `name` is a valid branch name, by the rules of `git check-ref-format --branch`: `refs/heads/<name>`
/// must be a valid ref name and `name` must not start with `-` nor be `HEAD`. The error says which rule broke.
pub fn check_branch_name(name: &str) -> Result<(), String> {
    let fail = |reason: &str| Err(reason.to_owned());
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.starts_with('-') {
        return fail("a branch name cannot start with '-'");
    }
    if name == "HEAD" {
        return fail("HEAD is not a branch name");
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return fail("it contains a control character");
    }
    if let Some(c) = name
        .chars()
        .find(|c| [' ', '~', '^', ':', '?', '*', '[', '\\'].contains(c))
    {
        return Err(format!("it contains {c:?}"));
    }
    for (sequence, reason) in [
        ("..", "it contains '..'"),
        ("@{", "it contains '@{'"),
        ("//", "it contains '//'"),
    ] {
        if name.contains(sequence) {
            return fail(reason);
        }
    }
    if name.starts_with('/') || name.ends_with('/') {
        return fail("it starts or ends with '/'");
    }
    if name.ends_with('.') {
        return fail("it ends with '.'");
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return fail("it or a '/'-separated part of it starts with '.'");
        }
        if component.ends_with(".lock") {
            return fail("it or a '/'-separated part of it ends with '.lock'");
        }
    }
    Ok(())
}

/// Whether `text` matches `pattern`, where [`WILDCARD`] matches one or more characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // matched[j]: whether the pattern so far matches the first j characters of the text.
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for p in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..text.len() {
            if p == WILDCARD {
                // One more character, after either the pattern so far or a wildcard already taking some.
                next[j + 1] = matched[j] || next[j];
            } else {
                next[j + 1] = matched[j] && text[j] == p;
            }
        }
        matched = next;
    }
    matched[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "p+edge-1";

    fn emco(cid: &str, app: &str) -> BundleInfo {
        BundleInfo {
            bundle: format!("{cid}-{app}"),
            context: Some(cid.into()),
            app: Some(app.into()),
            ..Default::default()
        }
    }

    fn plain(bundle: &str) -> BundleInfo {
        BundleInfo {
            bundle: bundle.into(),
            ..Default::default()
        }
    }

    fn expand(template: &str, bundle: &BundleInfo) -> String {
        BranchTemplate::parse(template, CLUSTER)
            .unwrap()
            .expand(bundle)
            .unwrap()
    }

    #[test]
    fn a_plain_name_is_one_branch_for_every_bundle() {
        let t = BranchTemplate::parse("main", CLUSTER).unwrap();
        assert_eq!(t.single().as_deref(), Some("main"));
        assert_eq!(t.expand(&emco("100", "web")).unwrap(), "main");
        assert_eq!(t.expand(&plain("_root")).unwrap(), "main");
        assert_eq!(t.to_string(), "main");
        assert!(!t.claims("main"));
    }

    #[test]
    fn emco_modes_get_the_branches_rsync_reads() {
        // git2go: the branch named after the cluster.
        let git2go = BranchTemplate::parse("{cluster}", CLUSTER).unwrap();
        assert_eq!(git2go.single().as_deref(), Some(CLUSTER));
        assert_eq!(git2go.expand(&emco("100", "web")).unwrap(), CLUSTER);
        // github: one branch per app, `<provider>+<cluster>-<cid>-<app>`.
        let github = "{cluster}-{cid}-{app}";
        assert_eq!(expand(github, &emco("100", "web")), "p+edge-1-100-web");
        assert_eq!(expand(github, &emco("200", "db")), "p+edge-1-200-db");
        assert_eq!(BranchTemplate::parse(github, CLUSTER).unwrap().single(), None);
        assert_eq!(expand("status/{bundle}", &emco("100", "web")), "status/100-web");
    }

    #[test]
    fn plain_bundles_stand_in_for_the_app_and_an_empty_cid_takes_a_doubled_separator_along() {
        assert_eq!(expand("{cluster}-{cid}-{app}", &plain("web")), "p+edge-1-web");
        assert_eq!(expand("{cid}-{app}", &plain("web")), "web");
        assert_eq!(expand("{app}-{cid}", &plain("web")), "web");
        assert_eq!(expand("{cluster}/{cid}/{app}", &plain("web")), "p+edge-1/web");
        assert_eq!(expand("s.{cid}{app}", &plain("web")), "s.web");
        assert_eq!(expand("{cluster}-{cid}", &plain("web")), "p+edge-1");
        assert_eq!(expand("x-{bundle}-{cid}", &plain("_root")), "x-_root");
        assert_eq!(expand("a{cid}-{app}", &plain("web")), "a-web");
        assert_eq!(expand("{cid}{app}", &plain("web")), "web");
        // EMCO bundles keep every separator.
        assert_eq!(expand("{cid}-{app}", &emco("7", "web")), "7-web");
    }

    #[test]
    fn unknown_placeholders_and_unmatched_braces_are_refused_naming_the_flag() {
        for (template, expect) in [
            ("{cluster}-{appp}", "unknown placeholder {appp}"),
            ("{Cluster}", "unknown placeholder {Cluster}"),
            ("{}", "unknown placeholder {}"),
            ("status-{cluster", "unmatched '{' at byte 7"),
            ("status-cluster}", "unmatched '}' at byte 14"),
            ("{clu{ster}", "unmatched '{' at byte 0"),
        ] {
            let err = BranchTemplate::parse(template, CLUSTER).unwrap_err().to_string();
            assert!(err.contains("--git-branch"), "{template}: {err}");
            assert!(err.contains(expect), "{template}: {err}");
        }
    }

    #[test]
    fn templates_giving_invalid_branch_names_are_refused_at_startup() {
        for (template, expect) in [
            ("", "it is empty"),
            ("{cid}", "for plain bundle web"),
            ("status..{cluster}", "'..'"),
            ("-{cluster}", "start with '-'"),
            ("{cluster}.lock", "'.lock'"),
            ("a b", "it contains ' '"),
            ("status:{cluster}", "it contains ':'"),
            ("{cluster}/", "'/'"),
        ] {
            let err = BranchTemplate::parse(template, CLUSTER).unwrap_err().to_string();
            assert!(
                err.contains("--git-branch") && err.contains("not a valid Git branch name"),
                "{template}: {err}"
            );
            assert!(err.contains(expect), "{template}: {err}");
        }
        // A bundle whose own name breaks the rules is refused alone.
        let t = BranchTemplate::parse("{cluster}-{bundle}", CLUSTER).unwrap();
        let err = t.expand(&plain("x.lock")).unwrap_err().to_string();
        assert!(
            err.contains("\"x.lock\"") && err.contains("p+edge-1-x.lock"),
            "{err}"
        );
    }

    #[test]
    fn branch_names_are_judged_as_git_check_ref_format_judges_them() {
        let names = [
            "main",
            "p+c",
            "p+c-100-web",
            "status/p+c",
            "a.b",
            "_root",
            "@",
            "a@b",
            "a@{b",
            "a..b",
            ".a",
            "a/.b",
            "a.",
            "a.lock",
            "a.lock/b",
            "a/",
            "/a",
            "a//b",
            "a b",
            "a~b",
            "a^b",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a\\b",
            "a\tb",
            "-a",
            "HEAD",
            "ä",
        ];
        for name in names {
            let full = std::process::Command::new("git")
                .args(["check-ref-format", &format!("refs/heads/{name}")])
                .status()
                .expect("git runs")
                .success();
            let git = full && !name.starts_with('-') && name != "HEAD";
            assert_eq!(
                check_branch_name(name).is_ok(),
                git,
                "{name:?}: {:?}",
                check_branch_name(name)
            );
        }
    }

    #[test]
    fn a_template_claims_the_branches_it_may_have_given_this_clusters_bundles() {
        let github = BranchTemplate::parse("{cluster}-{cid}-{app}", CLUSTER).unwrap();
        assert!(github.claims("p+edge-1-100-web"));
        assert!(github.claims("p+edge-1-web"), "a plain bundle's branch");
        assert!(!github.claims("p+edge-1"));
        assert!(!github.claims("main"));
        assert!(!github.claims("p+edge-2-100-web"));
        // Templates that are one branch, or do not name the cluster, claim nothing.
        assert!(
            !BranchTemplate::parse("{cluster}", CLUSTER)
                .unwrap()
                .claims(CLUSTER)
        );
        assert!(!BranchTemplate::parse("{app}", CLUSTER).unwrap().claims("web"));
        assert!(glob_match("a\u{0}b", "axyzb"));
        assert!(!glob_match("a\u{0}b", "ab"));
        assert!(glob_match("\u{0}-\u{0}", "a-b-c"));
    }
}
