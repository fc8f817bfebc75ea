//! Per-case copies of `root` fixtures.
//!
//! Cases write into their root, and several cases share one fixture (`fs-tests.dir`), so each
//! run gets a private copy in a temporary directory. Files named `*.cleanup` are left out of the
//! copy, which gives the reference semantics ("removed before and after each case") without
//! ever modifying the corpus.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

/// Copies the tree at `from` to `to` (which must not exist), keeping symlinks as symlinks.
pub fn copy_fixture(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".cleanup") {
            continue;
        }
        let source = entry.path();
        let target = to.join(&name);
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            symlink(fs::read_link(&source)?, &target)?;
        } else if kind.is_dir() {
            copy_fixture(&source, &target)?;
        } else {
            fs::copy(&source, &target)?;
            // The shared corpus is read-only on disk; cases expect to write their copy.
            let mut perms = fs::metadata(&target)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&target, perms)?;
        }
    }
    let mut perms = fs::metadata(to)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(to, perms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_tree_without_cleanup_files_and_keeps_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/file"), "x").unwrap();
        fs::write(src.join("stale.cleanup"), "old").unwrap();
        symlink("../outside", src.join("link")).unwrap();
        let dst = dir.path().join("dst");
        copy_fixture(&src, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("sub/file")).unwrap(), "x");
        assert!(!dst.join("stale.cleanup").exists());
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            Path::new("../outside")
        );
    }
}
