//! `file:` URIs (RFC 8089) and paths. Other schemes (`untitled:`, `git:`) name no file on
//! disk, so they belong to no skill.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lsp_types::Uri;

use crate::text::percent_decode;

/// The local path a `file:` URI names; `None` for other schemes and for remote hosts.
pub fn to_path(uri: &Uri) -> Option<PathBuf> {
    let s = uri.as_str();
    let (scheme, rest) = s.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("file") {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let slash = after.find('/')?;
            let host = &after[..slash];
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return None;
            }
            &after[slash..]
        }
        None => rest,
    };
    let decoded = percent_decode(path).into_owned();
    // `file:///C:/dir` names `C:/dir` on Windows.
    let decoded = match decoded.strip_prefix('/') {
        Some(p) if cfg!(windows) && p.as_bytes().get(1) == Some(&b':') => p.to_string(),
        _ => decoded,
    };
    Some(PathBuf::from(decoded))
}

/// The `file:` URI of an absolute path, with every byte outside RFC 3986's unreserved set
/// (and `/`) percent-encoded.
pub fn from_path(path: &Path) -> Option<Uri> {
    let shown = path.to_string_lossy().replace('\\', "/");
    let mut out = String::from("file://");
    if !shown.starts_with('/') {
        out.push('/');
    }
    for b in shown.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else if b == b':' && cfg!(windows) {
            out.push(':');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::from_str(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::from_str(s).unwrap()
    }

    #[test]
    fn file_uris_round_trip_and_other_schemes_have_no_path() {
        let path = Path::new("/tmp/my skill/références/a#b.md");
        let u = from_path(path).unwrap();
        assert_eq!(
            u.as_str(),
            "file:///tmp/my%20skill/r%C3%A9f%C3%A9rences/a%23b.md"
        );
        assert_eq!(to_path(&u).as_deref(), Some(path));
        assert_eq!(
            to_path(&uri("file://localhost/x/SKILL.md")).as_deref(),
            Some(Path::new("/x/SKILL.md"))
        );
        assert_eq!(to_path(&uri("untitled:Untitled-1")), None);
        assert_eq!(to_path(&uri("file://server/share/SKILL.md")), None);
    }
}
