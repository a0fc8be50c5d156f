//! Links and anchors: every link resolved once by the context, reported here; and paths in
//! backticks that name files of the skill.

use crate::diag::{Diagnostic, Edit};
use crate::engine::{Anchor, Context, Dest, LinkOutcome, MdFile, Sink};
use crate::parse::markdown::{Link, LinkKind};
use crate::registry::{BEST, GITHUB_ANCHORS, Rule, SPEC, declare_rules};
use crate::source::RejectReason;
use crate::text::{parent, relative_path};

declare_rules! {
    BROKEN_LINK = "LNK001", "broken-link", Error, on, fixable: false,
        summary: "a relative link or image points at nothing: no such file in the skill, nor outside it",
        why: "The agent follows the link and finds nothing.",
        example: "[api](references/apis.md) when the file is references/api.md",
        fix: "Correct the path (see the \"did you mean\"), or add the file.",
        source: BEST;
    LINK_ESCAPES = "LNK002", "link-escapes-skill", Error, on, fixable: false,
        summary: "a link or symlink leads outside the skill folder to something that exists (absolute path, `..` out of the skill but not into a sibling skill, or a symlink target)",
        why: "Only the skill folder is installed or packaged; anything outside is missing on the user's machine.",
        example: "[guide](../../docs/guide.md), or a symlink to /etc/passwd",
        fix: "Copy the file into the skill and link it relatively; use a full URL for web pages.",
        source: SPEC;
    BROKEN_ANCHOR = "LNK003", "broken-anchor", Error, on, fixable: true,
        summary: "a `#fragment` matches no heading id (as GitHub renders it) and no `id`/`name` anchor",
        why: "The agent cannot find the section the link promises.",
        example: "[setup](guide.md#set-up) when the heading is `## Setup` (id `setup`)",
        fix: "Use the heading's id: lowercase, punctuation removed, spaces as `-` (see the \"did you mean\"). `--fix` repairs an anchor that matches exactly one heading once punctuation is ignored.",
        source: GITHUB_ANCHORS;
    ANCHOR_CASE = "LNK004", "anchor-case-mismatch", Error, on, fixable: true,
        summary: "a `#fragment` matches a heading id only when case is ignored",
        why: "Fragments are case-sensitive on GitHub and in browsers.",
        example: "[x](#Setup) for `## Setup` (id `setup`)",
        fix: "Write the id in lowercase (`--fix` does it).",
        source: GITHUB_ANCHORS;
    LINK_CASE = "LNK005", "link-case-mismatch", Error, on, fixable: false,
        summary: "a link's path matches an existing file only when case is ignored",
        why: "It works on macOS and Windows but breaks on Linux and inside zip packages.",
        example: "[x](References/API.md) for references/api.md",
        fix: "Write the path with the file's exact case.",
        source: BEST;
    ROOT_RELATIVE = "LNK006", "link-root-relative", Warning, on, fixable: true,
        summary: "a link in a nested file resolves only when read from the skill root, not from the file's folder",
        why: "Markdown resolves links from the file that holds them; some clients instead resolve every path from the skill root. A link that works only one way breaks for the other readers.",
        example: "references/guide.md: [details](references/details.md) when the file is references/details.md",
        fix: "Write the path relative to the file (`details.md`); `--fix` does it.",
        source: SPEC;
    SIBLING_SKILL_LINK = "LNK007", "sibling-skill-link", Warning, opt_in, fixable: false,
        summary: "a link leads into a sibling skill next to this one",
        why: "Skills installed together from one plugin can link each other; installed alone, the link leads nowhere.",
        example: "[tdd](../test-driven-development/SKILL.md)",
        fix: "Name the other skill in prose (\"use the test-driven-development skill\") or copy what is needed into this skill.",
        source: SPEC;
    CODE_PATH_MISSING = "LNK008", "code-path-missing", Warning, on, fixable: false,
        summary: "a backticked path into one of the skill's folders names a file that does not exist, or exists only in another case",
        why: "Agents read `references/x.md` in backticks as an instruction to open that file; a wrong name sends them nowhere, and a wrong case works on macOS only.",
        example: "**Reference:** see `references/api.md` when the file is references/API.md",
        fix: "Correct the path, or add the file.",
        source: BEST;
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    for rejected in &ctx.source.rejected {
        if let RejectReason::SymlinkOutside { .. } = rejected.reason {
            sink.emit(
                &LINK_ESCAPES,
                Diagnostic::new(&LINK_ESCAPES, &rejected.path, rejected.reason.to_string())
                    .help("copy the file into the skill instead of linking to it"),
            );
        }
    }
    for (path, file) in &ctx.files {
        for (link, outcome) in file.doc.links.iter().zip(&file.links) {
            if link.kind != LinkKind::ReferenceUse {
                link_problem(ctx, path, file, link, outcome, sink);
            }
        }
        code_paths(ctx, path, file, sink);
    }
}

fn at(rule: &Rule, from: &str, file: &MdFile, link: &Link, message: String) -> Diagnostic {
    let len = file.text[link.range.clone()]
        .lines()
        .next()
        .map_or(0, |l| l.chars().count());
    Diagnostic::new(rule, from, message)
        .at(link.line, link.col)
        .source_line(file.source_line(link.line, link.col, len))
}

/// An edit replacing the first occurrence of `old` inside the link's source, when it occurs
/// exactly once there (otherwise the fix would be a guess).
fn replace_in_link(file: &MdFile, link: &Link, old: &str, new: String) -> Option<Edit> {
    let src = &file.text[link.range.clone()];
    if src.matches(old).count() != 1 {
        return None;
    }
    let start = link.range.start + src.find(old)?;
    Some(Edit {
        range: start..start + old.len(),
        replacement: new,
    })
}

fn link_problem(
    ctx: &Context,
    from: &str,
    file: &MdFile,
    link: &Link,
    outcome: &LinkOutcome,
    sink: &mut Sink,
) {
    let written = outcome.path.as_str();
    let simple: Option<(&Rule, String, &str)> = match &outcome.dest {
        Dest::Absolute => Some((
            &LINK_ESCAPES,
            format!("link `{written}` is an absolute path, outside the skill folder"),
            "write the path relative to this file, or link a full https:// URL",
        )),
        Dest::Outside {
            sibling_skill: true,
            shown,
            ..
        } => Some((
            &SIBLING_SKILL_LINK,
            format!("link `{written}` leads into the sibling skill `{shown}`"),
            "it resolves only when both skills are installed together",
        )),
        Dest::Outside {
            exists: Some(false),
            ..
        } => Some((
            &BROKEN_LINK,
            format!("link target `{written}` leaves the skill folder and leads to nothing"),
            "correct the path, or link a full https:// URL",
        )),
        Dest::Outside { shown, .. } => Some((
            &LINK_ESCAPES,
            format!("link `{written}` leaves the skill folder (to `{shown}`)"),
            "only the skill folder is shipped: copy the file in, or link a full https:// URL",
        )),
        _ => None,
    };
    if let Some((rule, message, help)) = simple {
        return sink.emit(rule, at(rule, from, file, link, message).help(help));
    }
    match &outcome.dest {
        Dest::External | Dest::Dir(_) | Dest::Rejected | Dest::Absolute | Dest::Outside { .. } => {}
        Dest::File(target) => anchor_problem(from, file, link, outcome, target, sink),
        Dest::CaseMismatch(actual) => sink.emit(
            &LINK_CASE,
            at(
                &LINK_CASE,
                from,
                file,
                link,
                format!("link `{written}` matches `{actual}` only when case is ignored"),
            )
            .help(format!("write `{}`", relative_path(parent(from), actual))),
        ),
        Dest::RootRelative(actual) => {
            let relative = relative_path(parent(from), actual);
            let mut d = at(
                &ROOT_RELATIVE,
                from,
                file,
                link,
                format!("link `{written}` resolves from the skill root, not from {from}'s folder"),
            )
            .help(format!(
                "write `{relative}`, the path from this file, which every Markdown reader follows"
            ));
            if let Some(edit) = replace_in_link(file, link, written, relative) {
                d = d.fix(edit);
            }
            sink.emit(&ROOT_RELATIVE, d);
        }
        Dest::Missing(p) => {
            let help = ctx
                .did_you_mean(from, p)
                .map(|s| format!("did you mean `{s}`?"));
            sink.emit(
                &BROKEN_LINK,
                at(
                    &BROKEN_LINK,
                    from,
                    file,
                    link,
                    format!("link target `{written}` does not exist in the skill"),
                )
                .with_help(help),
            );
        }
    }
}

fn anchor_problem(
    from: &str,
    file: &MdFile,
    link: &Link,
    outcome: &LinkOutcome,
    target: &str,
    sink: &mut Sink,
) {
    let Some(fragment) = &outcome.fragment else {
        return;
    };
    let (rule, message, help, replacement) = match &outcome.anchor {
        Anchor::Unchecked | Anchor::Found { .. } => return,
        Anchor::CaseMismatch { id } => (
            &ANCHOR_CASE,
            format!("anchor `#{fragment}` differs in case from `#{id}` in {target}"),
            Some(format!("write `#{id}`")),
            Some(id),
        ),
        Anchor::Missing { certain, nearest } => (
            &BROKEN_ANCHOR,
            format!("no heading or anchor `#{fragment}` in {target}"),
            match (certain, nearest) {
                (Some(id), _) => Some(format!("the heading's id is `#{id}`")),
                (None, Some(id)) => Some(format!("did you mean `#{id}`?")),
                (None, None) => None,
            },
            certain.as_ref(),
        ),
    };
    let mut d = at(rule, from, file, link, message).with_help(help);
    if let Some(id) = replacement
        && let Some(edit) = replace_in_link(file, link, &format!("#{fragment}"), format!("#{id}"))
    {
        d = d.fix(edit);
    }
    sink.emit(rule, d);
}

/// LNK008: backticked paths into a folder of the skill, or file names that exist only in
/// another case. Paths in code blocks are commands and examples, not references, and
/// Markdown under assets/ is material for the user's project (its paths are the project's):
/// both skipped.
fn code_paths(ctx: &Context, from: &str, file: &MdFile, sink: &mut Sink) {
    if from.starts_with("assets/") {
        return;
    }
    for (mention, dest) in file.doc.code_paths.iter().zip(&file.code_paths) {
        if !mention.inline
            || mention.token.starts_with('/')
            || mention.token.contains(['*', '{', '<', '$'])
        {
            continue;
        }
        let token = mention.token.trim_start_matches("./");
        // Which paths are findings is decided first: most mentions resolve.
        let message = match dest {
            Dest::CaseMismatch(actual) => {
                format!("`{token}` names `{actual}` with another case")
            }
            Dest::Missing(_) if names_skill_folder(ctx, token) => {
                format!("`{token}` does not exist in the skill")
            }
            _ => continue,
        };
        if owned_by_another(file, mention.line, mention.col) {
            continue;
        }
        let help = match dest {
            Dest::CaseMismatch(actual) => Some(format!(
                "write `{actual}`: file names are case-sensitive on Linux and in packages"
            )),
            _ => ctx
                .did_you_mean(from, token)
                .map(|s| format!("did you mean `{s}`?")),
        };
        let len = token.chars().count();
        sink.emit(
            &CODE_PATH_MISSING,
            Diagnostic::new(&CODE_PATH_MISSING, from, message)
                .at(mention.line, mention.col)
                .source_line(file.source_line(mention.line, mention.col, len))
                .with_help(help),
        );
    }
}

/// "the official skill's `references/x.md`", "the project's `scripts/run.py`": a possessive
/// right before the backticks says the file belongs to something else.
fn owned_by_another(file: &MdFile, line: usize, col: usize) -> bool {
    let text = &file.text[file.index.line_range(file.text, line)];
    let end = text
        .char_indices()
        .nth(col.saturating_sub(2))
        .map_or(text.len(), |(i, _)| i);
    let before = text[..end].trim_end_matches('`');
    before.ends_with("'s ") || before.ends_with("\u{2019}s ")
}

/// `references/x.md`: a path with an extension under a top-level folder the skill has.
fn names_skill_folder(ctx: &Context, token: &str) -> bool {
    let Some((first, rest)) = token.split_once('/').filter(|(first, _)| !first.is_empty()) else {
        return false;
    };
    let has_extension = rest
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .is_some_and(|(stem, ext)| !stem.is_empty() && (1..=5).contains(&ext.len()));
    has_extension && ctx.source.is_dir(first)
}
