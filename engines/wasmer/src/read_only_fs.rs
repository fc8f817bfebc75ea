//! A read-only view of a file system, for preopens marked read-only.
//!
//! wasix drops the write rights of a read-only preopen's descriptor, but `path_open` with
//! `O_CREAT` on it still creates the file on the host. Refusing every change at the file
//! system makes read-only hold whatever path a call takes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmer_wasix::virtual_fs::{
    FileOpener, FileSystem, FsError, Metadata, OpenOptions, OpenOptionsConfig, ReadDir, Result,
    VirtualFile,
};

#[derive(Debug)]
pub(crate) struct ReadOnlyFs {
    inner: Arc<dyn FileSystem + Send + Sync>,
}

impl ReadOnlyFs {
    pub(crate) fn new(inner: Arc<dyn FileSystem + Send + Sync>) -> Self {
        ReadOnlyFs { inner }
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl FileSystem for ReadOnlyFs {
    fn readlink(&self, path: &Path) -> Result<PathBuf> {
        self.inner.readlink(path)
    }

    fn read_dir(&self, path: &Path) -> Result<ReadDir> {
        self.inner.read_dir(path)
    }

    fn create_dir(&self, _path: &Path) -> Result<()> {
        Err(FsError::PermissionDenied)
    }

    fn create_symlink(&self, _source: &Path, _target: &Path) -> Result<()> {
        Err(FsError::PermissionDenied)
    }

    fn hard_link(&self, _source: &Path, _target: &Path) -> Result<()> {
        Err(FsError::PermissionDenied)
    }

    fn remove_dir(&self, _path: &Path) -> Result<()> {
        Err(FsError::PermissionDenied)
    }

    fn rename<'a>(&'a self, _from: &'a Path, _to: &'a Path) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Err(FsError::PermissionDenied) })
    }

    fn metadata(&self, path: &Path) -> Result<Metadata> {
        self.inner.metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> Result<Metadata> {
        self.inner.symlink_metadata(path)
    }

    fn remove_file(&self, _path: &Path) -> Result<()> {
        Err(FsError::PermissionDenied)
    }

    fn new_open_options(&self) -> OpenOptions<'_> {
        OpenOptions::new(self)
    }
}

impl FileOpener for ReadOnlyFs {
    fn open(
        &self,
        path: &Path,
        conf: &OpenOptionsConfig,
    ) -> Result<Box<dyn VirtualFile + Send + Sync + 'static>> {
        if conf.write || conf.append || conf.truncate || conf.create || conf.create_new {
            return Err(FsError::PermissionDenied);
        }
        self.inner
            .new_open_options()
            .options(conf.clone())
            .open(path)
    }
}
