//! The command line. `main.rs` only calls [`main`].

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError};
use crate::diag::Report;
use crate::fix;
use crate::lint::{Options, lint_skill};
use crate::registry;
use crate::render::{self, Format, Summary};
use crate::rules::{self, FAMILIES};
use crate::settings::Target;
use crate::source::{SkillSource, SourceError, discover_skills};

#[derive(Debug, Parser)]
#[command(name = "skillcheck", version, about = "Lint and pack Agent Skills")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lint skill folders, trees of skills, or .skill/.zip packages.
    Lint(LintArgs),
    /// List every rule.
    Rules(RulesArgs),
    /// Explain one rule: what, why, example, fix, source.
    Explain {
        /// A rule code (LNK003) or name (broken-anchor).
        rule: String,
    },
    /// Pack a skill folder into a reproducible .skill package (lints first).
    Pack(crate::pack::command::PackArgs),
    /// Compare two versions of a skill (packages or folders), entry by entry.
    Diff(crate::pack::command::DiffArgs),
    /// Write a skillcheck.toml holding every setting at its default, commented.
    Init(InitArgs),
    /// Run the language server on stdin/stdout (diagnostics, quick fixes, rule docs on hover).
    Server(ServerArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Accepted and ignored: stdio is the only transport, and some editors' clients
    /// (vscode-languageclient) pass this flag.
    #[arg(long)]
    pub stdio: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write skillcheck.toml into: a skill, or the folder that holds skills.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Skill folders, folders holding skills at any depth, or .skill/.zip packages.
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Override the config's target.
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Use this config instead of looking for skillcheck.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print per-skill size, token and checklist statistics.
    #[arg(long)]
    pub stats: bool,
    /// Apply the certain fixes in place.
    #[arg(long, conflicts_with = "diff")]
    pub fix: bool,
    /// Print the certain fixes as a unified diff; write nothing.
    #[arg(long)]
    pub diff: bool,
    /// Rules to run instead of the config's selection: codes, names, prefixes or ALL.
    #[arg(long, value_delimiter = ',', value_name = "RULES")]
    pub select: Option<Vec<String>>,
    /// Rules to run on top of the selection.
    #[arg(long, value_delimiter = ',', value_name = "RULES")]
    pub extend_select: Vec<String>,
    /// Rules not to run.
    #[arg(long, value_delimiter = ',', value_name = "RULES")]
    pub ignore: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RulesFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[arg(long, value_enum, default_value_t = RulesFormat::Text)]
    pub format: RulesFormat,
}

/// Exit codes: 0 clean, 1 findings, 2 usage or I/O failure.
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_FAILURE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_FAILURE } else { 0 });
        }
    };
    run(cli)
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Lint(args) => exit_with(lint_command(&args)),
        Command::Rules(args) => {
            let text = match args.format {
                RulesFormat::Text => registry::list_text(FAMILIES),
                RulesFormat::Markdown => registry::list_markdown(FAMILIES),
                RulesFormat::Json => {
                    serde_json::to_string_pretty(&registry::list_json(FAMILIES)).unwrap_or_default()
                        + "\n"
                }
            };
            print_out(&text)
        }
        Command::Pack(args) => exit_with(crate::pack::command::pack_command(&args)),
        Command::Diff(args) => exit_with(crate::pack::command::diff_command(&args)),
        Command::Init(args) => exit_with(init_command(&args)),
        Command::Server(_) => exit_with(crate::server::run_stdio()),
        Command::Explain { rule } => match rules::find(&rule) {
            Some(r) => print_out(&registry::explain(r)),
            None => {
                let codes: Vec<&str> = rules::all().map(|r| r.code).collect();
                let hint = crate::text::nearest(&rule.to_uppercase(), codes.iter().copied())
                    .map(|c| format!(" (did you mean {c}?)"))
                    .unwrap_or_default();
                eprintln!(
                    "skillcheck: error: no rule `{rule}`{hint}; `skillcheck rules` lists them"
                );
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

fn init_command(args: &InitArgs) -> anyhow::Result<u8> {
    let path = crate::init::write_default_config(&args.dir)?;
    println!(
        "wrote {}: every setting at its default, commented; lint and pack read it for the skills in {} and below",
        path.display(),
        args.dir.display()
    );
    Ok(0)
}

/// An `anyhow` failure is a usage or I/O failure (exit 2); otherwise the command's own code.
fn exit_with(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("skillcheck: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn print_out(text: &str) -> ExitCode {
    crate::output::emit(text);
    ExitCode::SUCCESS
}

/// One thing to lint.
#[derive(Debug, Clone)]
enum Input {
    Dir(PathBuf),
    Package(PathBuf),
}

impl Input {
    fn config_start(&self) -> &Path {
        match self {
            Input::Dir(p) => p,
            Input::Package(p) => p
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        }
    }
}

fn is_package(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("skill") || e.eq_ignore_ascii_case("zip"))
}

fn collect_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if meta.is_file() {
            if !is_package(path) {
                anyhow::bail!(
                    "{}: not a skill folder or a .skill/.zip package",
                    path.display()
                );
            }
            inputs.push(Input::Package(path.clone()));
        } else {
            let found =
                discover_skills(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if found.is_empty() {
                anyhow::bail!(
                    "{}: no skill found (no folder with a SKILL.md, outside hidden folders, target and node_modules)",
                    path.display()
                );
            }
            inputs.extend(found.into_iter().map(Input::Dir));
        }
    }
    Ok(inputs)
}

struct Job {
    input: Input,
    config: Config,
}

struct Done {
    report: Report,
    /// Kept only when fixes were asked for.
    source: Option<SkillSource>,
}

fn lint_one(job: &Job, options: &Options, keep_source: bool) -> Result<Done, SourceError> {
    let limits = job.config.read_limits();
    let read = match &job.input {
        Input::Dir(p) => SkillSource::from_dir(p, &limits),
        Input::Package(p) => SkillSource::from_package_file(p, &limits),
    };
    let source = match read {
        Ok(s) => s,
        Err(SourceError::Package { path, source }) => {
            return Ok(Done {
                report: rules::structure::package_failure(&path, &source.to_string()),
                source: None,
            });
        }
        Err(e) => return Err(e),
    };
    let report = lint_skill(&source, &job.config, options);
    Ok(Done {
        report,
        source: keep_source.then_some(source),
    })
}

/// Lints all jobs on up to `available_parallelism` threads; results in input order.
fn lint_all(jobs: &[Job], options: &Options, keep_source: bool) -> Vec<Result<Done, SourceError>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<Done, SourceError>)>> =
        Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    local.push((i, lint_one(job, options, keep_source)));
                }
                if let Ok(mut all) = results.lock() {
                    all.extend(local);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn load_config(
    args: &LintArgs,
    input: &Input,
    cache: &mut HashMap<Option<PathBuf>, Config>,
) -> Result<Config, ConfigError> {
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None => crate::config::find_config(input.config_start()),
    };
    if let Some(c) = cache.get(&path) {
        return Ok(c.clone());
    }
    let config = match &path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    cache.insert(path, config.clone());
    Ok(config)
}

fn lint_command(args: &LintArgs) -> anyhow::Result<u8> {
    let start = Instant::now();
    let inputs = collect_inputs(&args.paths)?;
    let mut cache = HashMap::new();
    let jobs = inputs
        .into_iter()
        .map(|input| {
            let config = load_config(args, &input, &mut cache)?;
            Ok(Job { input, config })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let unknown = args
        .select
        .iter()
        .flatten()
        .chain(&args.extend_select)
        .chain(&args.ignore)
        .find(|spec| !crate::settings::spec_is_known(spec, rules::all()));
    if let Some(spec) = unknown {
        anyhow::bail!(
            "`{spec}` names no rule: use a code (LNK001), a name, a prefix (LNK) or ALL (see `skillcheck rules`)"
        );
    }
    let options = Options {
        target: args.target,
        select: args.select.clone(),
        extend_select: args.extend_select.clone(),
        ignore: args.ignore.clone(),
    };
    let want_fixes = args.fix || args.diff;
    let mut reports = Vec::with_capacity(jobs.len());
    let mut fixes = Vec::new();
    for (job, result) in jobs.iter().zip(lint_all(&jobs, &options, want_fixes)) {
        let done = result?;
        if let Some(source) = &done.source {
            let planned = fix::plan(source, &done.report);
            if args.fix && !planned.is_empty() {
                for f in &planned {
                    crate::fsutil::write_atomic(&f.disk_path, f.after.as_bytes()).map_err(|e| {
                        anyhow::anyhow!("{}: cannot write the fix: {e}", f.disk_path.display())
                    })?;
                }
                // Report what is left after the fixes.
                let again = lint_one(job, &options, false)?;
                fixes.extend(planned);
                reports.push(again.report);
                continue;
            }
            fixes.extend(planned);
        }
        reports.push(done.report);
    }
    let summary = Summary::of(&reports, start.elapsed());
    let color = args.format == Format::Human
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let mut out = String::new();
    if args.diff {
        let diff: String = fixes.iter().map(fix::unified_diff).collect();
        // Machine formats keep stdout parseable: the diff goes to stderr there.
        if args.format == Format::Human {
            out.push_str(&diff);
        } else {
            eprint!("{diff}");
        }
    }
    out.push_str(&render::render(
        args.format,
        &reports,
        &summary,
        args.stats,
        color,
    ));
    if args.fix && args.format == Format::Human {
        let edits: usize = fixes.iter().map(|f| f.edits).sum();
        out.push_str(&format!(
            "fixed {edits} problem(s) in {} file(s)\n",
            fixes.len()
        ));
    }
    print_out(&out);
    let failed = summary.errors > 0 || (args.deny_warnings && summary.warnings > 0);
    Ok(if failed { EXIT_FINDINGS } else { 0 })
}
