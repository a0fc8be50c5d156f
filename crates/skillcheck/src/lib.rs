//! skillcheck: lint and pack Agent Skills.
//!
//! A skill is read into a [`source::SkillSource`] (from a folder or a package, in memory),
//! linted with [`lint::lint_skill`] under a [`config::Config`], and the resulting
//! [`diag::Report`]s are printed by [`render`].

pub mod cli;
pub mod config;
pub mod diag;
pub mod fix;
pub mod fsutil;
pub mod lint;
pub mod markdown;
pub mod pack;
pub mod package;
pub mod render;
pub mod rules;
pub mod slug;
pub mod source;
pub mod text;
pub mod yaml;

mod codeblock;
mod frontmatter;
mod hygiene;

pub use config::{Config, Target};
pub use diag::{Diagnostic, Report, Severity};
pub use lint::{Options, lint_skill};
pub use source::{ReadLimits, SkillFile, SkillSource};
