//! The on-disk cache of precompiled modules.
//!
//! Compiling a large module takes seconds; loading a precompiled artifact takes milliseconds
//! and, when the engine maps the file, lets every process running the same image share one copy
//! of the code. Entries are keyed by (engine fingerprint, module kind, module digest), where the
//! fingerprint covers engine version and code-generation settings.
//!
//! Layout, per entry, in `<dir>/<engine>/`: `<key>.bin` (the artifact), `<key>.sum` (its
//! sha256 and length, written by the same `put`; its mtime is the entry's last use) and
//! `<key>.lock` (taken while one process compiles the entry, so that simultaneous first starts
//! compile once).
//!
//! Concurrency: writers build the artifact in a temporary file in the same directory and
//! `rename` it into place, which is atomic. Readers either see no file or a complete one; a
//! reader that catches a `.sum` and `.bin` of two different writers sees a mismatch and treats
//! the entry as absent, which costs a compile, never a wrong run. Replaced or evicted files stay
//! valid for processes that already mapped them.
//!
//! Trust: artifacts are native code that engines load without validation. The cache directory
//! must belong to the runtime's user and be writable by nobody else (it is created 0700; a
//! directory that is not private is not used), and every artifact is checked against its
//! `.sum` through the very descriptor that is then handed to the engine, so a truncated or
//! altered file is never mapped: it is dropped and rebuilt.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

/// Default bound on the total size of cached artifacts.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// How long a start waits for another process that compiles the same module before it
/// compiles the module itself (a duplicate compile is correct, only wasteful).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cache directory {path} is not private (owner uid {uid}, mode {mode:o}): it must belong \
         to uid {expected_uid} and be writable by nobody else"
    )]
    NotPrivate {
        path: PathBuf,
        uid: u32,
        mode: u32,
        expected_uid: u32,
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

/// An artifact found in (or just written to) the cache, checked against its digest. `file` is
/// the descriptor that was checked: hand it, not `path`, to the engine, so that what runs is
/// what was checked.
#[derive(Debug)]
pub struct CachedArtifact {
    pub path: PathBuf,
    pub file: fs::File,
}

/// A cache rooted at one directory, holding at most `max_bytes` of artifacts.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    max_bytes: u64,
    lock_wait: Duration,
}

/// Summary of the cache contents, for `wasmbay cache` and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
}

/// Held while this process compiles one entry; dropping it lets the next one in.
#[derive(Debug)]
pub struct CompileLock {
    _file: fs::File,
}

impl ModuleCache {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> ModuleCache {
        ModuleCache {
            dir: dir.into(),
            max_bytes,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    /// How long [`ModuleCache::compile_lock`] waits for another compiler of the same entry.
    pub fn with_lock_wait(mut self, wait: Duration) -> ModuleCache {
        self.lock_wait = wait;
        self
    }

    /// The cache at `$WASMBAY_CACHE_DIR`, else `/var/cache/wasmbay` for root, else the user's
    /// cache directory. Size from `$WASMBAY_CACHE_MAX_BYTES` when set.
    pub fn default_location() -> ModuleCache {
        let dir = if let Some(dir) = std::env::var_os("WASMBAY_CACHE_DIR") {
            PathBuf::from(dir)
        } else if euid() == 0 {
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

    fn engine_dir(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(&key.engine)
    }

    /// Where the artifact for `key` lives (whether or not it exists).
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.engine_dir(key).join(format!("{}.bin", key.hash))
    }

    fn sum_path(&self, key: &CacheKey) -> PathBuf {
        self.engine_dir(key).join(format!("{}.sum", key.hash))
    }

    fn lock_path(&self, key: &CacheKey) -> PathBuf {
        self.engine_dir(key).join(format!("{}.lock", key.hash))
    }

    /// The artifact for `key`, if present, private and matching its digest. An entry that
    /// fails the check is removed (so the caller rebuilds it) and reported in the log. A hit
    /// refreshes the entry's age for eviction.
    pub fn get(&self, key: &CacheKey) -> Option<CachedArtifact> {
        let path = self.path(key);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open cached artifact");
                return None;
            }
        };
        if let Err(e) = self.check_private(&self.engine_dir(key)) {
            tracing::warn!(error = %e, "not using the precompiled cache");
            return None;
        }
        let sum_path = self.sum_path(key);
        if let Err(reason) = verify(&file, &sum_path) {
            tracing::warn!(path = %path.display(), %reason, "dropping cached artifact");
            self.invalidate(key);
            return None;
        }
        // Eviction removes the least recently used entries first. The age lives on the `.sum`
        // so that the artifact's own times (part of what a verification is remembered by) stay
        // as written; a failed touch only makes this entry look older.
        if let Ok(sum) = fs::File::open(&sum_path) {
            let _ = sum.set_modified(SystemTime::now());
        }
        Some(CachedArtifact { path, file })
    }

    /// Stores `bytes` under `key` atomically with their digest and returns the stored artifact;
    /// then trims the cache to its size bound, never removing the entry just written. On any
    /// failure (a full disk among them) nothing of the write remains.
    pub fn put(&self, key: &CacheKey, bytes: &[u8]) -> Result<CachedArtifact, CacheError> {
        let engine_dir = self.create_private_dirs(key)?;
        let final_path = self.path(key);
        let tag = format!("{}.{}", std::process::id(), unique_suffix());
        let tmp_bin = engine_dir.join(format!(".{}.{tag}.bin.tmp", key.hash));
        let tmp_sum = engine_dir.join(format!(".{}.{tag}.sum.tmp", key.hash));
        let write = || -> std::io::Result<fs::File> {
            let mut file = create_private_file(&tmp_bin)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            // The descriptor handed out is read-only: the engine, and the container it runs
            // in, never holds a way to write the cache.
            let reader = fs::File::open(&tmp_bin)?;
            let mut sum = create_private_file(&tmp_sum)?;
            sum.write_all(sum_line(&module_digest(bytes), bytes.len() as u64).as_bytes())?;
            sum.sync_data()?;
            fs::rename(&tmp_sum, self.sum_path(key))?;
            fs::rename(&tmp_bin, &final_path)?;
            Ok(reader)
        };
        let file = match write() {
            Ok(file) => file,
            Err(source) => {
                let _ = fs::remove_file(&tmp_bin);
                let _ = fs::remove_file(&tmp_sum);
                return Err(CacheError::Io {
                    path: final_path,
                    source,
                });
            }
        };
        self.trim(Some(&final_path))?;
        Ok(CachedArtifact {
            path: final_path,
            file,
        })
    }

    /// Waits (up to the lock wait) until no other process compiles the entry for `key`, and
    /// keeps others waiting until the returned lock is dropped. `None` when the lock cannot be
    /// had in time or at all: the caller then compiles without it.
    pub fn compile_lock(&self, key: &CacheKey) -> Option<CompileLock> {
        let path = self.lock_path(key);
        let file = self
            .create_private_dirs(key)
            .and_then(|_| {
                fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io_err(&path))
            })
            .map_err(|e| tracing::warn!(error = %e, "compiling without the cache lock"))
            .ok()?;
        let deadline = Instant::now() + self.lock_wait;
        loop {
            // SAFETY: flock on a descriptor this function owns; LOCK_NB never blocks.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Some(CompileLock { _file: file });
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                tracing::warn!(path = %path.display(), %error, "compiling without the cache lock");
                return None;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    path = %path.display(),
                    waited_ms = self.lock_wait.as_millis() as u64,
                    "another process still compiles this module; compiling here too"
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Drops an entry that turned out to be unusable (e.g. written by an incompatible build).
    pub fn invalidate(&self, key: &CacheKey) {
        let _ = fs::remove_file(self.path(key));
        let _ = fs::remove_file(self.sum_path(key));
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

    /// The cache directory and `dir` under it must belong to this user and be writable by
    /// nobody else: whoever can write there chooses the native code every container runs.
    fn check_private(&self, dir: &Path) -> Result<(), CacheError> {
        for path in [self.dir.as_path(), dir] {
            let meta = fs::metadata(path).map_err(io_err(path))?;
            let mode = meta.mode() & 0o7777;
            if meta.uid() != euid() || mode & 0o022 != 0 {
                return Err(CacheError::NotPrivate {
                    path: path.to_path_buf(),
                    uid: meta.uid(),
                    mode,
                    expected_uid: euid(),
                });
            }
        }
        Ok(())
    }

    fn create_private_dirs(&self, key: &CacheKey) -> Result<PathBuf, CacheError> {
        let engine_dir = self.engine_dir(key);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&engine_dir)
            .map_err(io_err(&engine_dir))?;
        self.check_private(&engine_dir)?;
        Ok(engine_dir)
    }

    /// (path, size, last use) of every complete entry. Temporary files that a writer left
    /// behind when it died mid-write are removed once they are old enough to be nobody's.
    fn entries(&self) -> Result<Vec<(PathBuf, u64, SystemTime)>, CacheError> {
        const STALE_TMP: Duration = Duration::from_secs(3600);
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
        let now = SystemTime::now();
        for engine in engines.flatten() {
            let Ok(files) = fs::read_dir(engine.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let Ok(meta) = file.metadata() else {
                    continue;
                };
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                match path.extension().and_then(|e| e.to_str()) {
                    Some("bin") => {
                        let used = fs::metadata(path.with_extension("sum"))
                            .and_then(|m| m.modified())
                            .unwrap_or(modified);
                        out.push((path, meta.len(), used));
                    }
                    Some("tmp") if now.duration_since(modified).unwrap_or_default() > STALE_TMP => {
                        let _ = fs::remove_file(&path);
                    }
                    _ => {}
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
                let _ = fs::remove_file(path.with_extension("sum"));
                let _ = fs::remove_file(path.with_extension("lock"));
                tracing::debug!(path = %path.display(), size, "evicted precompiled module");
                total -= size;
            }
        }
        Ok(())
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// The `.sum` file's one line.
fn sum_line(sha256_hex: &str, len: u64) -> String {
    format!("sha256:{sha256_hex} {len}\n")
}

/// What a verification is remembered by: any write, truncation or replacement of the file
/// changes its inode, size, or change time, and the change time cannot be set by a writer.
/// File times are coarse (a clock tick), so a file changed within [`RACY`] of its last change
/// could keep its stamp; such a file is checked again every time, as git does for "racily
/// clean" index entries.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(meta: &fs::Metadata) -> Stamp {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

/// Artifacts this process has checked (or written), so that a shim serving many containers of
/// one image hashes the artifact once, not at every start.
static VERIFIED: Mutex<Option<HashSet<Stamp>>> = Mutex::new(None);
const MAX_REMEMBERED: usize = 1024;
const RACY: Duration = Duration::from_secs(2);

fn remember_verified(meta: &fs::Metadata) {
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).unwrap_or(u64::MAX / 2),
            u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        );
    if SystemTime::now()
        .duration_since(changed)
        .map_or(true, |age| age < RACY)
    {
        return;
    }
    let mut verified = VERIFIED.lock().unwrap_or_else(PoisonError::into_inner);
    let set = verified.get_or_insert_with(HashSet::new);
    if set.len() >= MAX_REMEMBERED {
        set.clear();
    }
    set.insert(stamp(meta));
}

fn was_verified(meta: &fs::Metadata) -> bool {
    VERIFIED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|set| set.contains(&stamp(meta)))
}

/// Checks the open artifact against the digest and length its `.sum` records; the reason for
/// a refusal otherwise. Reads with `pread`, so the descriptor's offset stays where the engine
/// expects it.
fn verify(file: &fs::File, sum_path: &Path) -> Result<(), String> {
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != euid() || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "owner uid {} mode {:o}: not private to uid {}",
            meta.uid(),
            meta.mode() & 0o7777,
            euid()
        ));
    }
    if was_verified(&meta) {
        return Ok(());
    }
    let recorded = fs::read_to_string(sum_path)
        .map_err(|e| format!("{}: cannot read digest: {e}", sum_path.display()))?;
    let (digest, len) = recorded
        .trim_end()
        .strip_prefix("sha256:")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(digest, len)| Some((digest, len.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("{}: malformed digest line", sum_path.display()))?;
    if len != meta.len() {
        return Err(format!(
            "{} bytes, its digest was taken over {len}",
            meta.len()
        ));
    }
    let actual = digest_of_file(file, meta.len()).map_err(|e| format!("cannot read: {e}"))?;
    if actual != digest {
        return Err(format!("content has sha256 {actual}, written as {digest}"));
    }
    remember_verified(&meta);
    Ok(())
}

fn digest_of_file(file: &fs::File, len: u64) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hex::encode(hasher.finalize()))
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
    use std::os::unix::fs::PermissionsExt;

    fn key(n: u8) -> CacheKey {
        CacheKey::new("wasmtime", "v1", "core", &module_digest(&[n]))
    }

    fn hit(cache: &ModuleCache, n: u8) -> Option<PathBuf> {
        cache.get(&key(n)).map(|a| a.path)
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
        assert_eq!(hit(&cache, 1), None);
        let stored = cache.put(&key(1), b"artifact").unwrap();
        assert_eq!(hit(&cache, 1), Some(stored.path.clone()));
        assert_eq!(fs::read(&stored.path).unwrap(), b"artifact");
        // The descriptor handed out reads the artifact and cannot write it.
        let mut read_back = Vec::new();
        std::io::Read::read_to_end(&mut &stored.file, &mut read_back).unwrap();
        assert_eq!(read_back, b"artifact");
        assert!(std::io::Write::write(&mut &stored.file, b"x").is_err());
        assert_eq!(
            cache.stats().unwrap(),
            CacheStats {
                entries: 1,
                bytes: 8
            }
        );
        let cleared = cache.clear().unwrap();
        assert_eq!(cleared.entries, 1);
        assert_eq!(hit(&cache, 1), None);
        assert_eq!(cache.stats().unwrap(), CacheStats::default());
    }

    #[test]
    fn an_altered_or_truncated_artifact_is_dropped_not_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path(), 1 << 20);
        let payload = vec![5u8; 100_000];
        type Damage = (&'static str, fn(&Path));
        let damages: [Damage; 4] = [
            ("one byte flipped", |p| {
                let mut bytes = fs::read(p).unwrap();
                bytes[4242] ^= 1;
                fs::write(p, bytes).unwrap();
            }),
            ("truncated", |p| {
                let file = fs::OpenOptions::new().write(true).open(p).unwrap();
                file.set_len(4096).unwrap();
            }),
            ("digest removed", |p| {
                fs::remove_file(p.with_extension("sum")).unwrap();
            }),
            ("digest garbled", |p| {
                fs::write(p.with_extension("sum"), "md5 nonsense").unwrap();
            }),
        ];
        for (what, damage) in damages {
            let stored = cache.put(&key(7), &payload).unwrap();
            assert!(hit(&cache, 7).is_some(), "{what}: fresh entry not found");
            damage(&stored.path);
            assert_eq!(hit(&cache, 7), None, "{what}: damaged entry handed out");
            assert!(
                !stored.path.exists(),
                "{what}: damaged artifact left in place"
            );
            assert!(!stored.path.with_extension("sum").exists(), "{what}");
        }
        // Rebuilt, it is found again.
        cache.put(&key(7), &payload).unwrap();
        assert!(hit(&cache, 7).is_some());
    }

    #[test]
    fn a_cache_others_can_write_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("c"), 1 << 20);
        cache.put(&key(1), b"artifact").unwrap();
        let engine_dir = dir.path().join("c/wasmtime");
        fs::set_permissions(&engine_dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(hit(&cache, 1), None);
        let refused = cache.put(&key(2), b"other").unwrap_err();
        assert!(
            matches!(&refused, CacheError::NotPrivate { path, mode: 0o777, .. } if path == &engine_dir),
            "{refused}"
        );
        assert!(refused.to_string().contains("not private"), "{refused}");
        fs::set_permissions(&engine_dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(hit(&cache, 1).is_some());
    }

    #[test]
    fn a_compile_lock_keeps_a_second_compiler_waiting_for_a_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let cache =
            ModuleCache::new(dir.path(), 1 << 20).with_lock_wait(Duration::from_millis(200));
        let held = cache.compile_lock(&key(3)).expect("first lock");
        let started = Instant::now();
        assert!(cache.compile_lock(&key(3)).is_none());
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Other entries are not held up.
        assert!(cache.compile_lock(&key(4)).is_some());
        drop(held);
        assert!(cache.compile_lock(&key(3)).is_some());
    }

    #[test]
    fn size_bound_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path(), 25);
        let old = SystemTime::now() - Duration::from_secs(100);
        for n in 0..2u8 {
            let stored = cache.put(&key(n), &[n; 10]).unwrap();
            let sum = fs::File::open(stored.path.with_extension("sum")).unwrap();
            sum.set_modified(old + Duration::from_secs(n as u64))
                .unwrap();
        }
        // Touch entry 0 so that entry 1 is now the least recently used.
        assert!(hit(&cache, 0).is_some());
        cache.put(&key(2), &[2; 10]).unwrap();
        assert!(hit(&cache, 0).is_some());
        assert!(hit(&cache, 1).is_none());
        assert!(!cache.path(&key(1)).with_extension("sum").exists());
        assert!(hit(&cache, 2).is_some());
        // An entry bigger than the whole bound is still kept (it was just asked for).
        cache.put(&key(3), &[3; 40]).unwrap();
        assert!(hit(&cache, 3).is_some());
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
        let artifact = cache.get(&key(9)).unwrap();
        assert_eq!(fs::read(artifact.path).unwrap(), payload);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("wasmtime"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(cache.stats().unwrap().entries, 1);
    }
}
