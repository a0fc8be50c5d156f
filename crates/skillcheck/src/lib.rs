//! skillcheck: lint and pack Agent Skills.
//!
//! A skill is read into a [`SkillSource`] (from a folder or a package, in memory), linted
//! with [`lint_skill`] under a [`Config`], and the resulting [`Report`]s are printed by
//! [`render`]. The rules live in [`rules`], one module per family; the engine that runs
//! them is private.

pub mod cli;
pub mod config;
pub mod diag;
pub mod fix;
pub mod init;
pub mod lint;
pub mod pack;
#[doc(hidden)]
pub mod parse;
pub mod registry;
pub mod render;
pub mod rules;
pub mod server;
pub mod settings;
pub mod source;

mod engine;
mod fsutil;
mod output;
mod text;

pub use config::Config;
pub use diag::{Diagnostic, Report};
pub use lint::{Options, lint_skill};
pub use registry::Severity;
pub use settings::Target;
pub use source::{ReadLimits, SkillFile, SkillSource};
