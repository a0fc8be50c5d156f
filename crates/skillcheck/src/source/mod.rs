//! Skills as virtual file trees: what a skill holds, how it is read, and what never ships.

pub mod bundle;
mod disk;
mod glob;
mod package;
mod policy;
mod tree;

pub use disk::{SourceError, discover_skills};
pub use glob::glob_match;
pub use package::{MAX_ENTRIES, PackageError, read_package};
pub use policy::{MustNotShip, default_excludes, must_not_ship};
pub use tree::{
    Origin, ReadLimits, RejectReason, Rejected, SkillFile, SkillSource, is_markdown_path,
};
