//! The shim on the node: one binary under the first engine's name, a relative link to it
//! under every other engine's name (the shim serves the engine its name says). Each name is
//! put in place by a rename, so a containerd starting shims meanwhile sees the old binary or
//! the new one, never a part; a name that already holds the same bytes is left alone.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use wasmbay_shim_core::names;

/// One name put on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The path as seen from here (under the host root).
    pub path: PathBuf,
    /// It did not exist before.
    pub created: bool,
    /// Its content or target changed.
    pub changed: bool,
}

/// Puts `shim` into `dir` (as seen from here) for `engines`; with `dry_run`, only says what
/// would change.
pub fn place_shim(
    shim: &Path,
    dir: &Path,
    engines: &[String],
    dry_run: bool,
) -> Result<Vec<Placed>> {
    let Some((first, rest)) = engines.split_first() else {
        bail!("no engine to install the shim for");
    };
    let bytes =
        std::fs::read(shim).with_context(|| format!("reading the shim {}", shim.display()))?;
    if !dry_run {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let primary_name = names::shim_binary(first);
    let primary = dir.join(&primary_name);
    let mut placed = Vec::new();
    let existing = std::fs::symlink_metadata(&primary).ok();
    let same = existing.as_ref().is_some_and(|m| m.is_file())
        && std::fs::read(&primary).is_ok_and(|old| old == bytes);
    if !same && !dry_run {
        let staging = dir.join(format!(".{primary_name}.wasmbay-install"));
        let _ = std::fs::remove_file(&staging);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&staging)
            .with_context(|| format!("creating {}", staging.display()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", staging.display()))?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", staging.display()))?;
        std::fs::rename(&staging, &primary)
            .with_context(|| format!("moving {} into place", primary.display()))?;
    }
    placed.push(Placed {
        path: primary,
        created: existing.is_none(),
        changed: !same,
    });
    for engine in rest {
        let name = names::shim_binary(engine);
        let link = dir.join(&name);
        let existing = std::fs::symlink_metadata(&link).ok();
        let same = std::fs::read_link(&link).is_ok_and(|t| t == Path::new(&primary_name));
        if !same && !dry_run {
            let staging = dir.join(format!(".{name}.wasmbay-install"));
            let _ = std::fs::remove_file(&staging);
            std::os::unix::fs::symlink(&primary_name, &staging)
                .with_context(|| format!("linking {}", staging.display()))?;
            std::fs::rename(&staging, &link)
                .with_context(|| format!("moving {} into place", link.display()))?;
        }
        placed.push(Placed {
            path: link,
            created: existing.is_none(),
            changed: !same,
        });
    }
    Ok(placed)
}

/// Removes the shim names among `paths` (as seen from here); anything not named as a wasmbay
/// shim is refused, so a damaged record cannot delete other files. Returns those removed.
pub fn remove(paths: &[PathBuf], dry_run: bool) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if names::engine_of_shim_binary(name).is_none() {
            bail!("{}: not a wasmbay shim; not removed", path.display());
        }
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        if !dry_run {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
        removed.push(path.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_binary_and_a_link_per_engine_placed_once() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("built");
        std::fs::write(&shim, b"shim 1").unwrap();
        let bin = dir.path().join("opt/wasmbay/bin");
        let engines = vec!["wasmtime".to_string(), "wasmer".to_string()];
        let dry = place_shim(&shim, &bin, &engines, true).unwrap();
        assert!(dry.iter().all(|p| p.created && p.changed));
        assert!(!bin.exists(), "a dry run writes nothing");
        let first = place_shim(&shim, &bin, &engines, false).unwrap();
        assert!(first.iter().all(|p| p.created && p.changed));
        let link = bin.join("containerd-shim-wasmbay-wasmer-v1");
        assert_eq!(std::fs::read(&link).unwrap(), b"shim 1");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("containerd-shim-wasmbay-wasmtime-v1")
        );
        let mode = std::fs::metadata(&first[0].path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let again = place_shim(&shim, &bin, &engines, false).unwrap();
        assert!(again.iter().all(|p| !p.created && !p.changed), "{again:?}");
        std::fs::write(&shim, b"shim 2").unwrap();
        let newer = place_shim(&shim, &bin, &engines, false).unwrap();
        assert!(newer[0].changed && !newer[1].changed);
        assert_eq!(std::fs::read(&link).unwrap(), b"shim 2");
        assert_eq!(
            std::fs::read_dir(&bin).unwrap().count(),
            2,
            "no staging file left"
        );

        let paths: Vec<_> = newer.iter().map(|p| p.path.clone()).collect();
        assert_eq!(remove(&paths, false).unwrap().len(), 2);
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 0);
        assert!(remove(std::slice::from_ref(&shim), false).is_err());
        assert!(shim.exists());
    }
}
