//! Reading the content: from a directory or from the copy compiled into the binary, the
//! version (a hash of every file), and TOML errors located by line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ContentError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_content.rs"));
}

/// The content compiled into the binary (a copy of `cards/` at build time), as named files.
pub(super) fn embedded_files() -> impl Iterator<Item = (String, String)> {
    embedded::EMBEDDED.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
}

/// Names and texts in name order, each followed by a NUL: the same files give the same version
/// whether they come from a directory or from the binary.
pub(super) fn version_of(files: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (name, text) in files {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every `.toml` and `.json` file below `dir`. Names starting with a dot are skipped: a
/// Kubernetes ConfigMap mount holds `..data` and `..<timestamp>` directories beside the files
/// (which are symbolic links into them), and those would otherwise be read twice.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, ContentError> {
    let mut files = Vec::new();
    read_below(dir, dir, &mut files)?;
    Ok(files)
}

fn read_below(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) -> Result<(), ContentError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ContentError::new(dir.display().to_string(), "(directory)", format!("cannot be read: {e}")))?;
    for entry in entries {
        let path = entry
            .map_err(|e| ContentError::new(dir.display().to_string(), "(directory)", format!("cannot be read: {e}")))?
            .path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            read_below(root, &path, files)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("toml" | "json")) {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ContentError::new(relative.clone(), "(file)", format!("cannot be read: {e}")))?;
            files.push((relative, text));
        }
    }
    Ok(())
}

pub(super) fn parse_toml<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<T, ContentError> {
    toml::from_str(text).map_err(|error| {
        let field = error.span().map(|span| locate(text, span.start)).unwrap_or_else(|| "(file)".into());
        ContentError::new(file, field, error.message().to_owned())
    })
}

/// "line 12" for a byte offset, for TOML errors that do not name a field.
fn locate(text: &str, offset: usize) -> String {
    let line = text.get(..offset).map(|before| before.lines().count().max(1)).unwrap_or(1);
    format!("line {line}")
}
