//! The lint engine: the context every rule reads and the sink every rule writes to. It
//! knows no rule; `rules/` holds them and `lint` runs them.

mod context;
mod sink;

pub use context::{Anchor, Context, Dest, Frontmatter, LinkOutcome, LintSettings, MdFile};
pub use sink::Sink;
