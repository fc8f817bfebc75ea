//! Finding the program a container runs and telling wasm from native code.
//!
//! `process.args[0]` of an OCI spec names the program. For wasm it may carry a `#func` suffix
//! that selects an exported function other than `_start` (`/app.wasm#serve`). The file is looked
//! up inside the container's root filesystem with symlinks resolved *as if* that directory were
//! `/`, so a link in an image can never point the runtime at a host file.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::engine::ModuleKind;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Binary wasm (core module or component).
    Wasm(ModuleKind),
    /// WebAssembly text; its kind is known only after parsing.
    Wat,
    /// A native executable: frontends exec it instead.
    Elf,
    /// A `#!` script: frontends exec it instead.
    Script,
    /// Anything else.
    Unknown,
}

impl FileFormat {
    /// Classifies a file by its leading bytes (16 are enough).
    pub fn detect(head: &[u8]) -> FileFormat {
        if let Some(rest) = head.strip_prefix(b"\0asm") {
            // Core modules have version 1 (layer 0); components have layer 1.
            return match rest.get(2..4) {
                Some([1, 0]) => FileFormat::Wasm(ModuleKind::Component),
                _ => FileFormat::Wasm(ModuleKind::Core),
            };
        }
        if head.starts_with(b"\x7fELF") {
            return FileFormat::Elf;
        }
        if head.starts_with(b"#!") {
            return FileFormat::Script;
        }
        if looks_like_wat(head) {
            return FileFormat::Wat;
        }
        FileFormat::Unknown
    }

    /// Whether a frontend should run this with an engine (as opposed to exec'ing it).
    pub fn is_wasm(self) -> bool {
        matches!(self, FileFormat::Wasm(_) | FileFormat::Wat)
    }

    pub fn describe(self) -> &'static str {
        match self {
            FileFormat::Wasm(ModuleKind::Core) => "a wasm core module",
            FileFormat::Wasm(ModuleKind::Component) => "a wasm component",
            FileFormat::Wat => "WebAssembly text",
            FileFormat::Elf => "an ELF executable",
            FileFormat::Script => "a #! script",
            FileFormat::Unknown => "not wasm (no \\0asm magic, not WebAssembly text)",
        }
    }
}

/// WAT files start with `(module`, `(component` or a comment, after optional whitespace.
fn looks_like_wat(head: &[u8]) -> bool {
    let text = head.trim_ascii_start();
    text.starts_with(b"(module")
        || text.starts_with(b"(component")
        || text.starts_with(b";;")
        || text.starts_with(b"(;")
}

/// Reads enough of `path` to classify it.
pub fn detect_file(path: &Path) -> std::io::Result<FileFormat> {
    let mut head = [0u8; 64];
    let mut file = fs::File::open(path)?;
    let mut len = 0;
    while len < head.len() {
        let n = file.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    Ok(FileFormat::detect(&head[..len]))
}

/// A program reference split into its file and optional exported function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    pub path: String,
    pub func: Option<String>,
}

impl Entrypoint {
    /// Splits `path#func`. A `#` followed by nothing, or a path whose last `#` is inside a
    /// directory name, is kept as part of the path.
    pub fn parse(arg0: &str) -> Entrypoint {
        if let Some((path, func)) = arg0.rsplit_once('#') {
            if !func.is_empty() && !func.contains('/') && !path.is_empty() {
                return Entrypoint {
                    path: path.to_string(),
                    func: Some(func.to_string()),
                };
            }
        }
        Entrypoint {
            path: arg0.to_string(),
            func: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{path}: not found in the container root filesystem")]
    NotFound { path: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Resolves the program `arg0` (without `#func`) to a host path inside `root`.
///
/// A name with a `/` is taken relative to `cwd` (or absolute); a bare name is looked up in
/// `cwd` first and then in the `PATH` of the container environment, as a shell would.
pub fn resolve_program(
    root: &Path,
    cwd: &str,
    path_var: Option<&str>,
    program: &str,
) -> Result<PathBuf, ResolveError> {
    let mut candidates = Vec::new();
    if program.contains('/') {
        candidates.push(join_guest(cwd, program));
    } else {
        candidates.push(join_guest(cwd, program));
        for dir in path_var.unwrap_or("").split(':').filter(|d| !d.is_empty()) {
            candidates.push(join_guest(dir, program));
        }
    }
    for guest in &candidates {
        match resolve_in_root(root, guest) {
            Ok(host) if host.is_file() => return Ok(host),
            Ok(_) => continue,
            Err(ResolveError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ResolveError::NotFound {
        path: program.to_string(),
    })
}

fn join_guest(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path)
    }
}

const MAX_SYMLINKS: usize = 40;

/// Resolves the guest path `guest` as seen by a process chrooted at `root`, following symlinks
/// but never leaving `root` (`..` at the top stays at the top, absolute links restart at
/// `root`). Returns the host path.
pub fn resolve_in_root(root: &Path, guest: &str) -> Result<PathBuf, ResolveError> {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<Vec<u8>> = split_reversed(guest.as_bytes());
    let mut links = 0;
    while let Some(part) = pending.pop() {
        match part.as_slice() {
            b"" | b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(OsStr::from_bytes(&part));
        let host = root.join(&candidate);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ResolveError::SymlinkLoop {
                        path: guest.to_string(),
                    });
                }
                let target = fs::read_link(&host).map_err(|source| ResolveError::Io {
                    path: guest.to_string(),
                    source,
                })?;
                let target = target.as_os_str().as_bytes();
                if target.starts_with(b"/") {
                    resolved = PathBuf::new();
                }
                pending.extend(split_reversed(target));
            }
            Ok(_) => resolved = candidate,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ResolveError::NotFound {
                    path: guest.to_string(),
                })
            }
            Err(source) => {
                return Err(ResolveError::Io {
                    path: guest.to_string(),
                    source,
                })
            }
        }
    }
    debug_assert!(resolved
        .components()
        .all(|c| matches!(c, Component::Normal(_))));
    Ok(root.join(resolved))
}

fn split_reversed(path: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = path.split(|b| *b == b'/').map(<[u8]>::to_vec).collect();
    parts.reverse();
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn detects_formats_by_magic() {
        assert_eq!(
            FileFormat::detect(b"\0asm\x01\0\0\0"),
            FileFormat::Wasm(ModuleKind::Core)
        );
        assert_eq!(
            FileFormat::detect(b"\0asm\x0d\0\x01\0"),
            FileFormat::Wasm(ModuleKind::Component)
        );
        assert_eq!(FileFormat::detect(b"\x7fELF\x02\x01"), FileFormat::Elf);
        assert_eq!(FileFormat::detect(b"#!/bin/sh\n"), FileFormat::Script);
        assert_eq!(FileFormat::detect(b"  \n(module)"), FileFormat::Wat);
        assert_eq!(FileFormat::detect(b";; hi\n(module)"), FileFormat::Wat);
        assert_eq!(FileFormat::detect(b"MZ\x90\0"), FileFormat::Unknown);
        assert_eq!(FileFormat::detect(b""), FileFormat::Unknown);
        assert!(!FileFormat::Elf.is_wasm());
        assert!(FileFormat::Wat.is_wasm());
    }

    #[test]
    fn parses_func_suffix() {
        assert_eq!(
            Entrypoint::parse("/app.wasm#serve"),
            Entrypoint {
                path: "/app.wasm".into(),
                func: Some("serve".into())
            }
        );
        assert_eq!(Entrypoint::parse("/app.wasm").func, None);
        assert_eq!(Entrypoint::parse("/app.wasm#").path, "/app.wasm#");
        assert_eq!(Entrypoint::parse("/a#b/app.wasm").path, "/a#b/app.wasm");
        assert_eq!(Entrypoint::parse("#x").path, "#x");
    }

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/app.wasm"), b"\0asm\x01\0\0\0").unwrap();
        fs::write(dir.path().join("outside.wasm"), b"secret").unwrap();
        symlink("/bin/app.wasm", root.join("abs")).unwrap();
        symlink("../../../outside.wasm", root.join("bin/escape")).unwrap();
        symlink("loop", root.join("loop")).unwrap();

        assert_eq!(
            resolve_in_root(&root, "/abs").unwrap(),
            root.join("bin/app.wasm")
        );
        // `..` above the root stays at the root, so the escape resolves to /outside.wasm
        // inside the root, which does not exist.
        assert!(matches!(
            resolve_in_root(&root, "/bin/escape"),
            Err(ResolveError::NotFound { .. })
        ));
        assert!(matches!(
            resolve_in_root(&root, "/loop"),
            Err(ResolveError::SymlinkLoop { .. })
        ));
        assert_eq!(
            resolve_in_root(&root, "/../../bin/./app.wasm").unwrap(),
            root.join("bin/app.wasm")
        );
    }

    #[test]
    fn bare_names_search_cwd_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("work")).unwrap();
        fs::write(root.join("usr/bin/tool.wasm"), b"\0asm\x01\0\0\0").unwrap();
        fs::write(root.join("work/local.wasm"), b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(
            resolve_program(root, "/work", Some("/bin:/usr/bin"), "tool.wasm").unwrap(),
            root.join("usr/bin/tool.wasm")
        );
        assert_eq!(
            resolve_program(root, "/work", None, "local.wasm").unwrap(),
            root.join("work/local.wasm")
        );
        assert_eq!(
            resolve_program(root, "/", None, "work/local.wasm").unwrap(),
            root.join("work/local.wasm")
        );
        assert!(resolve_program(root, "/", Some("/usr/bin"), "missing.wasm").is_err());
        // A directory is not a program.
        assert!(resolve_program(root, "/", None, "/work").is_err());
    }
}
