//! What an install changed on the node, kept there so that uninstall can put every byte back:
//! `/var/lib/wasmbay/node-install.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::layout::{Distribution, Node};

pub const RECORD: &str = "/var/lib/wasmbay/node-install.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub distribution: Distribution,
    /// The configuration file that holds the entries (the node's path).
    pub config: PathBuf,
    /// `toml`, `template` or `drop-in`.
    pub config_kind: String,
    /// The file as it was before wasmbay was installed; `None` when there was no file.
    pub original: Option<String>,
    /// The SHA-256 of what the install wrote: the file still holds exactly that when uninstall
    /// can put `original` back.
    pub written_sha256: String,
    /// Directories the install made for the file (the node's paths), innermost last.
    pub created_dirs: Vec<PathBuf>,
    /// The shim's names (the node's paths).
    pub binaries: Vec<PathBuf>,
    pub handlers: Vec<String>,
}

pub fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn load(node: &Node) -> Result<Option<Record>> {
    let path = node.path(RECORD);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not an install record", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn store(node: &Node, record: &Record) -> Result<()> {
    let path = node.path(RECORD);
    let json = serde_json::to_vec_pretty(record).context("encoding the install record")?;
    write_atomically(&path, &json, 0o600)
}

pub fn delete(node: &Node) -> Result<()> {
    let path = node.path(RECORD);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    // The directory is wasmbay's own; it goes when nothing else is in it.
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// Writes `bytes` to `path` through a file beside it and a rename, so that a reader (or a
/// containerd starting) sees the old content or the new one; `mode` is kept from the file
/// being replaced when there is one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .with_context(|| format!("{}: no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mode = std::fs::metadata(path).map_or(mode, |m| m.permissions().mode() & 0o7777);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let staging = dir.join(format!(".{name}.wasmbay-new"));
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staging)
        .with_context(|| format!("creating {}", staging.display()))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(e).with_context(|| format!("writing {}", staging.display()));
    }
    std::fs::rename(&staging, path).with_context(|| format!("moving {} into place", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_its_directory_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            root: dir.path().to_path_buf(),
        };
        assert_eq!(load(&node).unwrap(), None);
        let record = Record {
            distribution: Distribution::K3s,
            config: "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl".into(),
            config_kind: "template".into(),
            original: None,
            written_sha256: sha256("x"),
            created_dirs: vec![],
            binaries: vec!["/opt/wasmbay/bin/containerd-shim-wasmbay-wasmtime-v1".into()],
            handlers: vec!["wasmbay-wasmtime".into()],
        };
        store(&node, &record).unwrap();
        assert_eq!(load(&node).unwrap(), Some(record));
        delete(&node).unwrap();
        assert!(!dir.path().join("var/lib/wasmbay").exists());
        std::fs::create_dir_all(dir.path().join("var/lib/wasmbay")).unwrap();
        std::fs::write(node.path(RECORD), b"{").unwrap();
        let err = load(&node).unwrap_err().to_string();
        assert!(err.contains("node-install.json"), "{err}");
    }

    #[test]
    fn an_atomic_write_keeps_the_files_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
