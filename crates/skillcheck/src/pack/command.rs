//! The `pack` and `diff` subcommands: arguments, output and exit codes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::config::Config;
use crate::lint::Options;
use crate::output::{out, outln};
use crate::render;
use crate::settings::Target;
use crate::source::bundle::bundle_path;

use super::compare::{Change, compare};
use super::{Package, Plan, build, default_output, plan, shipped_files, write_package};

/// 0: done / up to date / no differences; 1: lint errors, stale package or differences.
const EXIT_OK: u8 = 0;
const EXIT_FINDINGS: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The skill folder (holds SKILL.md).
    pub skill_dir: PathBuf,
    /// Where to write the package [default: dist/<name>.skill].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Name the default output `<name>.zip` instead of `<name>.skill`.
    #[arg(long)]
    pub zip: bool,
    /// Write nothing; exit 1 unless the existing package equals what pack would write now.
    #[arg(long, conflicts_with = "list")]
    pub check: bool,
    /// Write nothing; print each file that would go in, and why each other file stays out.
    #[arg(long)]
    pub list: bool,
    /// Refuse to pack on lint warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Override the config's target (`claude-ai` also enforces the upload limits).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Use this config instead of looking for skillcheck.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old version: a .skill/.zip package or a skill folder.
    pub old: PathBuf,
    /// The new version: a .skill/.zip package or a skill folder.
    pub new: PathBuf,
    /// Use this config (exclusions, limits) instead of looking for skillcheck.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

fn load_config(explicit: Option<&Path>, start: &Path) -> anyhow::Result<Config> {
    let start = if start.is_dir() {
        start
    } else {
        start
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    let path = explicit
        .map(Path::to_path_buf)
        .or_else(|| crate::config::find_config(start));
    Ok(match path {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    })
}

pub fn pack_command(args: &PackArgs) -> anyhow::Result<u8> {
    let dir = &args.skill_dir;
    if !dir.join("SKILL.md").is_file() {
        anyhow::bail!(
            "{}: not a skill folder (no SKILL.md); pass the folder that holds SKILL.md",
            dir.display()
        );
    }
    let config = load_config(args.config.as_deref(), dir)?;
    let options = Options {
        target: args.target,
        ..Options::default()
    };
    let plan = plan(dir, &config, &options)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&plan.name, args.zip));
    refuse_output_inside_skill(dir, &output)?;

    if args.list {
        print_list(&plan, args.format);
        return Ok(EXIT_OK);
    }
    let (errors, warnings) = (plan.report.errors(), plan.report.warnings());
    let blocked = errors > 0 || (args.deny_warnings && warnings > 0);
    if args.format == OutputFormat::Human {
        for d in &plan.report.diagnostics {
            eprintln!("{}", render::human_diagnostic(&plan.report, d, false));
        }
    }
    if blocked {
        let why = if errors > 0 {
            format!("{errors} lint error(s)")
        } else {
            format!("{warnings} lint warning(s) with --deny-warnings")
        };
        match args.format {
            OutputFormat::Human => eprintln!(
                "skillcheck: refusing to pack {}: {why}; fix them and run pack again",
                dir.display()
            ),
            OutputFormat::Json => print_json(&json!({
                "packed": false,
                "reason": why,
                "lint": render::json_value(std::slice::from_ref(&plan.report), &render::Summary::of(std::slice::from_ref(&plan.report), Default::default())),
            })),
        }
        return Ok(EXIT_FINDINGS);
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let package = build(&plan, epoch.as_deref())?;
    if args.check {
        return check(&plan, &package, &output, &config, args.format);
    }
    write_package(&output, &package.bytes)?;
    match args.format {
        OutputFormat::Human => outln!(
            "packed {} -> {}\n  {} entries, {} bytes ({} uncompressed)\n  sha256 {}",
            dir.display(),
            output.display(),
            package.entries,
            package.bytes.len(),
            package.uncompressed_bytes,
            package.sha256
        ),
        OutputFormat::Json => print_json(&package_json(&output, &package, warnings)),
    }
    Ok(EXIT_OK)
}

fn package_json(output: &Path, package: &Package, warnings: usize) -> serde_json::Value {
    json!({
        "packed": true,
        "path": output.display().to_string(),
        "entries": package.entries,
        "bytes": package.bytes.len(),
        "uncompressed_bytes": package.uncompressed_bytes,
        "sha256": package.sha256,
        "warnings": warnings,
    })
}

/// A package written inside the skill would be packed into the next release.
fn refuse_output_inside_skill(dir: &Path, output: &Path) -> anyhow::Result<()> {
    let skill = std::fs::canonicalize(dir).with_context(|| dir.display().to_string())?;
    let folder = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The folder may not exist yet; its nearest existing ancestor decides.
    let existing = folder
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    let existing =
        std::fs::canonicalize(existing).with_context(|| existing.display().to_string())?;
    if existing.starts_with(&skill) {
        anyhow::bail!(
            "{}: the package would be written inside the skill it packs; choose an output outside {} (-o)",
            output.display(),
            dir.display()
        );
    }
    Ok(())
}

fn check(
    plan: &Plan,
    package: &Package,
    output: &Path,
    config: &Config,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let existing = match std::fs::read(output) {
        Ok(bytes) => bytes,
        Err(e) => {
            report_stale(output, format, &format!("cannot be read: {e}"), &[]);
            return Ok(EXIT_FINDINGS);
        }
    };
    if existing == package.bytes {
        match format {
            OutputFormat::Human => outln!(
                "{} is up to date (sha256 {})",
                output.display(),
                package.sha256
            ),
            OutputFormat::Json => print_json(&json!({
                "up_to_date": true,
                "path": output.display().to_string(),
                "sha256": package.sha256,
            })),
        }
        return Ok(EXIT_OK);
    }
    let (old_name, old_files) = match shipped_files(output, config) {
        Ok(found) => found,
        Err(e) => {
            report_stale(
                output,
                format,
                &format!("cannot be read as a package: {e}"),
                &[],
            );
            return Ok(EXIT_FINDINGS);
        }
    };
    let changes = compare(&old_files, &plan.selection.included);
    let reason = if old_name != plan.name {
        format!(
            "its top folder is `{old_name}`, the skill is `{}`",
            plan.name
        )
    } else if changes.is_empty() {
        "same files, different archive bytes (written by another tool or version: timestamps, modes or compression)".to_owned()
    } else {
        format!(
            "{} entr{} differ",
            changes.len(),
            if changes.len() == 1 { "y" } else { "ies" }
        )
    };
    report_stale(output, format, &reason, &changes);
    Ok(EXIT_FINDINGS)
}

fn report_stale(output: &Path, format: OutputFormat, reason: &str, changes: &[Change]) {
    match format {
        OutputFormat::Human => {
            outln!(
                "{} differs from what pack would write now: {reason}",
                output.display()
            );
            print_changes(changes);
            outln!("run `skillcheck pack` without --check to update it");
        }
        OutputFormat::Json => print_json(&json!({
            "up_to_date": false,
            "path": output.display().to_string(),
            "reason": reason,
            "changes": changes,
        })),
    }
}

fn print_changes(changes: &[Change]) {
    for change in changes {
        outln!("{}", change.summary_line());
    }
    for change in changes {
        if let Change::Modified {
            diff: Some(diff), ..
        } = change
        {
            out!("{diff}");
        }
    }
}

fn print_list(plan: &Plan, format: OutputFormat) {
    match format {
        OutputFormat::Human => {
            for file in &plan.selection.included {
                outln!("include {} ({} bytes)", file.path, file.bytes.len());
            }
            for (path, rule) in &plan.selection.excluded {
                outln!("exclude {path} ({}: `{}`)", rule.origin, rule.pattern);
            }
            for folder in &plan.bundles {
                outln!(
                    "bundle {folder}/ -> {} (one file in the package)",
                    bundle_path(folder)
                );
            }
            outln!(
                "{} files, {} bytes would be packed in {} package entries; {} left out",
                plan.selection.included.len(),
                plan.selection.total_bytes(),
                plan.entries.len(),
                plan.selection.excluded.len()
            );
        }
        OutputFormat::Json => {
            let included: Vec<_> = plan
                .selection
                .included
                .iter()
                .map(
                    |f| json!({"path": f.path, "bytes": f.bytes.len(), "executable": f.executable}),
                )
                .collect();
            let excluded: Vec<_> = plan
                .selection
                .excluded
                .iter()
                .map(|(path, rule)| json!({"path": path, "pattern": rule.pattern, "origin": rule.origin}))
                .collect();
            let bundles: Vec<_> = plan
                .bundles
                .iter()
                .map(|folder| json!({"folder": folder, "path": bundle_path(folder)}))
                .collect();
            print_json(
                &json!({"included": included, "excluded": excluded, "bundles": bundles, "entries": plan.entries.len()}),
            );
        }
    }
}

pub fn diff_command(args: &DiffArgs) -> anyhow::Result<u8> {
    let read = |path: &Path| -> anyhow::Result<(String, Vec<crate::source::SkillFile>)> {
        let config = load_config(args.config.as_deref(), path)?;
        shipped_files(path, &config).with_context(|| format!("cannot read {}", path.display()))
    };
    let (old_name, old_files) = read(&args.old)?;
    let (new_name, new_files) = read(&args.new)?;
    let changes = compare(&old_files, &new_files);
    let renamed = (old_name != new_name).then(|| format!("{old_name} -> {new_name}"));
    match args.format {
        OutputFormat::Human => {
            if let Some(renamed) = &renamed {
                outln!("R top folder {renamed}");
            }
            print_changes(&changes);
            outln!(
                "{} change(s) between {} and {}",
                changes.len() + usize::from(renamed.is_some()),
                args.old.display(),
                args.new.display()
            );
        }
        OutputFormat::Json => print_json(&json!({
            "old": args.old.display().to_string(),
            "new": args.new.display().to_string(),
            "renamed": renamed,
            "changes": changes,
        })),
    }
    Ok(if changes.is_empty() && renamed.is_none() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    })
}

fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
