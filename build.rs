//! Embeds the clinical content in `cards/` into the binary, so that `lbp-cds` runs from anywhere
//! with the content it was built with. `--content DIR` replaces it at run time.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=cards");
    let root = Path::new("cards");
    let mut files = Vec::new();
    collect(root, root, &mut files);
    files.sort();
    let mut out = String::from(
        "/// Every file under `cards/`, as (relative path, contents).\npub static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    // Paths relative to the crate (resolved where the library compiles), not absolute: a build
    // directory copied to another checkout then embeds that checkout's files, not the first one's.
    for relative in files {
        out.push_str(&format!(
            "    ({relative:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),\n",
            format!("/cards/{relative}")
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_content.rs");
    fs::write(dest, out).expect("write embedded_content.rs");
    embed_fixtures();
}

/// The stored requests in `fixtures/requests/`, for the console's preview (`src/console/`).
fn embed_fixtures() {
    println!("cargo:rerun-if-changed=fixtures/requests");
    let root = Path::new("fixtures/requests");
    let mut files = Vec::new();
    collect(root, root, &mut files);
    files.retain(|name| name.ends_with(".json"));
    files.sort();
    let mut out = String::from(
        "/// Every request under `fixtures/requests/`, as (file name, contents).\npub static FIXTURES: &[(&str, &str)] = &[\n",
    );
    for relative in files {
        let absolute = fs::canonicalize(root.join(&relative)).expect("fixture file path");
        out.push_str(&format!("    ({relative:?}, include_str!({:?})),\n", absolute.display().to_string()));
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_fixtures.rs");
    fs::write(dest, out).expect("write embedded_fixtures.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("toml" | "json")) {
            let relative = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            files.push(relative);
        }
    }
}
