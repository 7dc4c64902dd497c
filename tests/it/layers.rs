//! The layers of `src/`, checked from the code's own `crate::` paths: a module may use
//! itself and the modules before it in [`LAYERS`], never one after it. A strict order
//! also means no two modules import each other. The middle of the list is the tick
//! path; the leaves are below it, the layers that drive it above.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

const LAYERS: &[&str] = &[
    // leaves
    "child_test",
    "text",
    "config",
    "sample",
    "mode",
    "shutdown",
    "notify",
    "logging",
    "memory",
    // the tick path
    "collect",
    "store",
    "model",
    "forecast",
    "incident",
    "tickets",
    "remediate",
    // what a person looks at: reads the stores the tick path writes
    "view",
    // what drives it
    "export",
    "settings",
    "pipeline",
    "eval",
    "daemon",
    "cli",
    "commands",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a line of code names after `crate::` (also in `crate::{a, b}`).
fn named(code: &str) -> Vec<String> {
    let ident = |s: &str| {
        s.trim()
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => out.extend(group.split('}').next().unwrap_or("").split(',').map(ident)),
            None => out.push(ident(rest)),
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

#[test]
fn modules_import_only_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let layer = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut upward = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let top = rel.split(['/', '.']).next().unwrap().to_string();
        if top == "main" || top == "lib" {
            continue; // the binary, and the list of modules
        }
        let from = layer(&top).unwrap_or_else(|| panic!("src/{rel}: {top} is not in LAYERS"));
        for (n, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for m in named(code) {
                let to = layer(&m)
                    .unwrap_or_else(|| panic!("src/{rel}:{}: crate::{m} is not in LAYERS", n + 1));
                if to > from {
                    upward.push(format!("src/{rel}:{}: {top} uses {m}", n + 1));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run up the layers:\n{}",
        upward.join("\n")
    );
}
