//! (b) Entrypoint resolution inside a root filesystem built from the input: directories,
//! files and symlinks whose targets climb (`..`), are absolute, or name a host file outside
//! the rootfs (an `/etc/shadow` stand-in). Whatever resolves must lie inside the rootfs.
#![no_main]

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasmbay_shim_core::entrypoint::{resolve_in_root, resolve_program, Entrypoint};

#[derive(Arbitrary, Debug)]
enum Name {
    Bin,
    App,
    Etc,
    Shadow,
    Dot,
    DotDot,
    Other(String),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Bin => "bin",
            Name::App => "app.wasm",
            Name::Etc => "etc",
            Name::Shadow => "shadow",
            Name::Dot => ".",
            Name::DotDot => "..",
            Name::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    /// A path made of names, absolute or relative.
    Path {
        absolute: bool,
        parts: Vec<Name>,
    },
    /// The host path of the file outside the rootfs.
    OutsideAbsolute,
    /// Climbing out of the rootfs to that file.
    OutsideRelative {
        depth: u8,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Dir,
    File,
    Symlink(Target),
}

#[derive(Arbitrary, Debug)]
struct Node {
    parts: Vec<Name>,
    kind: Kind,
}

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    cwd: Target,
    path_var: Option<Vec<Target>>,
    program: Target,
}

fn render(target: &Target, outside: &Path) -> String {
    match target {
        Target::Path { absolute, parts } => {
            let joined: Vec<&str> = parts.iter().map(Name::as_str).collect();
            let joined = joined.join("/");
            if *absolute {
                format!("/{joined}")
            } else {
                joined
            }
        }
        Target::OutsideAbsolute => outside.display().to_string(),
        Target::OutsideRelative { depth } => {
            format!("{}shadow", "../".repeat(usize::from(*depth % 8)))
        }
        Target::Raw(s) => s.clone(),
    }
}

/// One scratch directory per process; each input gets a fresh tree inside it.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("scratch directory"))
        .path()
}

/// Asserts that `resolved` (a host path) lies inside `root`, lexically and after the host
/// resolves every symlink.
fn assert_inside(root: &Path, resolved: &Path) {
    assert!(
        resolved.starts_with(root),
        "{resolved:?} is not under {root:?}"
    );
    assert!(
        !resolved
            .components()
            .any(|c| c == std::path::Component::ParentDir),
        "{resolved:?} has `..`"
    );
    if let Ok(real) = resolved.canonicalize() {
        let real_root = root.canonicalize().expect("root exists");
        assert!(
            real.starts_with(&real_root),
            "{resolved:?} is really {real:?}, outside {real_root:?}"
        );
    }
}

fuzz_target!(|input: Input| {
    let base = scratch().join("case");
    let _ = fs::remove_dir_all(&base);
    let root = base.join("root");
    fs::create_dir_all(&root).expect("root");
    // The host file a hostile image would like to reach.
    let outside = base.join("shadow");
    fs::write(&outside, b"root:secret").expect("outside file");

    for node in input.nodes.iter().take(32) {
        // Nodes are created by plain names only; `..` in a node's own path is not how an
        // image places files, symlink targets are.
        let names: Vec<&str> = node.parts.iter().map(Name::as_str).collect();
        if names.is_empty()
            || names
                .iter()
                .any(|n| n.is_empty() || *n == "." || *n == ".." || n.contains(['/', '\0']))
        {
            continue;
        }
        // Parents are made one by one and must be real directories: creating through a
        // symlink the input planted (say to `/`) would write to the host, outside the scratch
        // directory.
        let mut path = root.clone();
        let mut parents_ok = true;
        for name in &names[..names.len() - 1] {
            path.push(name);
            let _ = fs::create_dir(&path);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_dir() => {}
                _ => {
                    parents_ok = false;
                    break;
                }
            }
        }
        if !parents_ok {
            continue;
        }
        path.push(names[names.len() - 1]);
        let _ = match &node.kind {
            Kind::Dir => fs::create_dir(&path),
            // `create_new` refuses an existing name, dangling symlinks included, so the write
            // never follows a link.
            Kind::File => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| f.write_all(b"\0asm\x01\0\0\0")),
            Kind::Symlink(target) => {
                let target = render(target, &outside);
                if target.contains('\0') {
                    continue;
                }
                symlink(target, &path)
            }
        };
    }

    let program = render(&input.program, &outside);
    let cwd = render(&input.cwd, &outside);
    let path_var = input.path_var.as_ref().map(|dirs| {
        dirs.iter()
            .take(8)
            .map(|d| render(d, &outside))
            .collect::<Vec<_>>()
            .join(":")
    });

    if let Ok(resolved) = resolve_in_root(&root, &program) {
        assert_inside(&root, &resolved);
    }
    let entrypoint = Entrypoint::parse(&program);
    if let Ok(resolved) = resolve_program(&root, &cwd, path_var.as_deref(), &entrypoint.path) {
        assert_inside(&root, &resolved);
        assert!(resolved.is_file(), "{resolved:?} is not a file");
        assert_ne!(
            fs::read(&resolved).ok().as_deref(),
            Some(&b"root:secret"[..]),
            "{resolved:?} reached the file outside the rootfs"
        );
    }
});
