//! Parsers: Markdown (one pass per file), YAML with positions, GitHub heading slugs.

pub mod markdown;
pub mod slug;
pub mod yaml;
