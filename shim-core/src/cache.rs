//! The on-disk cache of precompiled modules.
//!
//! Compiling a large module takes seconds; loading a precompiled artifact takes milliseconds
//! and, when the engine maps the file, lets every process running the same image share one copy
//! of the code. Entries are keyed by (engine fingerprint, module kind, module digest), where the
//! fingerprint covers engine version and code-generation settings.
//!
//! Concurrency: writers build the artifact in a temporary file in the same directory and
//! `rename` it into place, which is atomic. Two writers racing on one key both produce a valid
//! file and the last rename wins; readers either see no file or a complete one. Replaced or
//! evicted files stay valid for processes that already mapped them.
//!
//! Trust: artifacts are native code that engines load without validation, so the cache
//! directory is created with mode 0700 and must only be writable by the runtime's user.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Default bound on the total size of cached artifacts.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Identifies one cached artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    engine: String,
    hash: String,
}

impl CacheKey {
    pub fn new(engine: &str, fingerprint: &str, kind: &str, module_digest: &str) -> CacheKey {
        let mut hasher = Sha256::new();
        for part in [engine, fingerprint, kind, module_digest] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        CacheKey {
            engine: sanitize(engine),
            hash: hex::encode(hasher.finalize()),
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The sha256 of a module's bytes, as a hex string.
pub fn module_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A cache rooted at one directory, holding at most `max_bytes` of artifacts.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// Summary of the cache contents, for `wasmbay cache` and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
}

impl ModuleCache {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> ModuleCache {
        ModuleCache {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// The cache at `$WASMBAY_CACHE_DIR`, else `/var/cache/wasmbay` for root, else the user's
    /// cache directory. Size from `$WASMBAY_CACHE_MAX_BYTES` when set.
    pub fn default_location() -> ModuleCache {
        let dir = if let Some(dir) = std::env::var_os("WASMBAY_CACHE_DIR") {
            PathBuf::from(dir)
        } else if unsafe { libc::geteuid() } == 0 {
            PathBuf::from("/var/cache/wasmbay")
        } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(dir).join("wasmbay")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".cache/wasmbay")
        } else {
            std::env::temp_dir().join("wasmbay-cache")
        };
        let max_bytes = std::env::var("WASMBAY_CACHE_MAX_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_BYTES);
        ModuleCache::new(dir, max_bytes)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact for `key` lives (whether or not it exists).
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(&key.engine).join(format!("{}.bin", key.hash))
    }

    /// The artifact for `key`, if present. A hit refreshes the entry's age for eviction.
    pub fn get(&self, key: &CacheKey) -> Option<PathBuf> {
        let path = self.path(key);
        let file = fs::File::open(&path).ok()?;
        // Eviction removes the least recently used entries first; a failed touch only makes
        // this entry look older.
        let _ = file.set_modified(SystemTime::now());
        Some(path)
    }

    /// Stores `bytes` under `key` atomically and returns the final path; then trims the cache
    /// to its size bound, never removing the entry just written.
    pub fn put(&self, key: &CacheKey, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        let engine_dir = self.dir.join(&key.engine);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&engine_dir)
            .map_err(io_err(&engine_dir))?;
        let final_path = self.path(key);
        let tmp_path = engine_dir.join(format!(
            ".{}.{}.{}.tmp",
            key.hash,
            std::process::id(),
            unique_suffix()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp_path)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            fs::rename(&tmp_path, &final_path)
        };
        if let Err(source) = write() {
            let _ = fs::remove_file(&tmp_path);
            return Err(CacheError::Io {
                path: final_path,
                source,
            });
        }
        self.trim(Some(&final_path))?;
        Ok(final_path)
    }

    /// Drops an entry that turned out to be unusable (e.g. written by an incompatible build).
    pub fn invalidate(&self, key: &CacheKey) {
        let _ = fs::remove_file(self.path(key));
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<CacheStats, CacheError> {
        let before = self.stats()?;
        match fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        fs::remove_dir_all(&path).map_err(io_err(&path))?;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CacheError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        }
        Ok(before)
    }

    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        let entries = self.entries()?;
        Ok(CacheStats {
            entries: entries.len(),
            bytes: entries.iter().map(|e| e.1).sum(),
        })
    }

    /// (path, size, last use) of every complete entry.
    fn entries(&self) -> Result<Vec<(PathBuf, u64, SystemTime)>, CacheError> {
        let mut out = Vec::new();
        let engines = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(CacheError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        for engine in engines.flatten() {
            let Ok(files) = fs::read_dir(engine.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "bin") {
                    if let Ok(meta) = file.metadata() {
                        let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        out.push((path, meta.len(), used));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Evicts least recently used entries until the total fits the bound.
    fn trim(&self, keep: Option<&Path>) -> Result<(), CacheError> {
        let mut entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return Ok(());
        }
        entries.sort_by_key(|e| e.2);
        for (path, size, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if Some(path.as_path()) == keep {
                continue;
            }
            if fs::remove_file(&path).is_ok() {
                tracing::debug!(path = %path.display(), size, "evicted precompiled module");
                total -= size;
            }
        }
        Ok(())
    }
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (COUNTER.fetch_add(1, Ordering::Relaxed) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(n: u8) -> CacheKey {
        CacheKey::new("wasmtime", "v1", "core", &module_digest(&[n]))
    }

    #[test]
    fn key_depends_on_every_part() {
        let base = CacheKey::new("e", "f", "core", "d");
        assert_ne!(base, CacheKey::new("e2", "f", "core", "d"));
        assert_ne!(base, CacheKey::new("e", "f2", "core", "d"));
        assert_ne!(base, CacheKey::new("e", "f", "component", "d"));
        assert_ne!(base, CacheKey::new("e", "f", "core", "d2"));
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        assert_ne!(
            CacheKey::new("ab", "c", "k", "d"),
            CacheKey::new("a", "bc", "k", "d")
        );
    }

    #[test]
    fn put_get_clear_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("c"), 1 << 20);
        assert_eq!(cache.get(&key(1)), None);
        let path = cache.put(&key(1), b"artifact").unwrap();
        assert_eq!(cache.get(&key(1)), Some(path.clone()));
        assert_eq!(fs::read(&path).unwrap(), b"artifact");
        assert_eq!(
            cache.stats().unwrap(),
            CacheStats {
                entries: 1,
                bytes: 8
            }
        );
        let cleared = cache.clear().unwrap();
        assert_eq!(cleared.entries, 1);
        assert_eq!(cache.get(&key(1)), None);
        assert_eq!(cache.stats().unwrap(), CacheStats::default());
    }

    #[test]
    fn size_bound_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path(), 25);
        let old = SystemTime::now() - Duration::from_secs(100);
        for n in 0..2u8 {
            let path = cache.put(&key(n), &[n; 10]).unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(old + Duration::from_secs(n as u64))
                .unwrap();
        }
        // Touch entry 0 so that entry 1 is now the least recently used.
        assert!(cache.get(&key(0)).is_some());
        cache.put(&key(2), &[2; 10]).unwrap();
        assert!(cache.get(&key(0)).is_some());
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(2)).is_some());
        // An entry bigger than the whole bound is still kept (it was just asked for).
        cache.put(&key(3), &[3; 40]).unwrap();
        assert!(cache.get(&key(3)).is_some());
        assert!(cache.stats().unwrap().entries <= 2);
    }

    #[test]
    fn concurrent_writers_leave_one_complete_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path(), 1 << 30);
        let payload = vec![7u8; 256 * 1024];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| cache.put(&key(9), &payload).unwrap());
            }
        });
        let path = cache.get(&key(9)).unwrap();
        assert_eq!(fs::read(path).unwrap(), payload);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("wasmtime"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(cache.stats().unwrap().entries, 1);
    }
}
