//! Turning a module file into a [`CompiledModule`]: read, classify, convert text, consult the
//! precompiled cache, compile on a miss. Every frontend goes through here so that they all
//! report bad input the same way and all share one cache.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::{module_digest, CacheKey, CachedArtifact, ModuleCache};
use crate::engine::{error_codes, CompiledModule, Engine, EngineError, ModuleKind};
use crate::entrypoint::FileFormat;

/// A failure to produce a runnable module, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read module: {source}")]
    MissingFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a wasm module: file is {}", format.describe())]
    NotWasm { path: PathBuf, format: FileFormat },
    #[error("{path}: invalid WebAssembly text: {message}")]
    BadText { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Engine { path: PathBuf, source: EngineError },
    #[error("{path}: content has sha256 {actual}, its descriptor says {expected}")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl LoadError {
    /// The process exit code for this error (see [`error_codes`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::MissingFile { .. } => error_codes::MISSING_FILE,
            LoadError::NotWasm { .. } => error_codes::NOT_WASM,
            LoadError::BadText { .. } | LoadError::DigestMismatch { .. } => {
                error_codes::INVALID_MODULE
            }
            LoadError::Engine { source, .. } => source.exit_code(),
        }
    }
}

/// How a module was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Loaded from a precompiled artifact in the cache.
    CacheHit,
    /// Compiled now and stored in the cache.
    CompiledAndCached,
    /// Compiled now, not cached (cache off, or the engine cannot precompile).
    Compiled,
}

/// A precompiled artifact in the cache, checked and open, ready to hand to an engine.
#[derive(Debug)]
pub struct Prepared {
    pub artifact: CachedArtifact,
    pub kind: ModuleKind,
    pub provenance: Provenance,
}

/// What [`ModuleLoader::prepare_by_digest`] made ready.
#[derive(Debug)]
pub enum DigestArtifact {
    /// The precompiled artifact in the cache.
    Precompiled(Prepared),
    /// The module's bytes, to be compiled where they run (no cache, or no precompilation).
    Bytes(Vec<u8>),
}

/// Loads modules for one engine, with or without a cache.
pub struct ModuleLoader<'a> {
    engine: &'a dyn Engine,
    cache: Option<ModuleCache>,
}

impl<'a> ModuleLoader<'a> {
    pub fn new(engine: &'a dyn Engine, cache: Option<ModuleCache>) -> Self {
        ModuleLoader { engine, cache }
    }

    /// Reads and loads the module at `path` (binary wasm or WAT).
    pub fn load_file(
        &self,
        path: &Path,
    ) -> Result<(Arc<dyn CompiledModule>, Provenance), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::MissingFile {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Makes sure the cache holds the precompiled artifact of the module at `path` and returns
    /// where, without loading it. Container frontends call this on the host, then load the
    /// artifact inside the container. `None` when there is no cache or the engine cannot
    /// precompile.
    pub fn prepare_artifact(&self, path: &Path) -> Result<Option<Prepared>, LoadError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).map_err(|source| LoadError::MissingFile {
            path: path.to_path_buf(),
            source,
        })?;
        let (wasm, kind) = self.to_binary(path, &bytes)?;
        let wasm = &wasm[..];
        let key = self.key(wasm, kind);
        Ok(self
            .cached_or_compiled(cache, &key, path, wasm, kind)?
            .map(|(artifact, provenance)| Prepared {
                artifact,
                kind,
                provenance,
            }))
    }

    /// Like [`ModuleLoader::prepare_artifact`] for a module known by the sha256 of its bytes
    /// (hex), such as an image layer whose descriptor carries the digest. On a cache hit the
    /// bytes are never fetched; `fetch` runs only on a miss. `origin` names the module in
    /// errors.
    ///
    /// Without a cache, or on an engine that cannot precompile, the fetched bytes come back
    /// for the caller to compile where it runs them.
    pub fn prepare_by_digest(
        &self,
        origin: &Path,
        sha256_hex: &str,
        fetch: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<DigestArtifact, LoadError> {
        if let Some(cache) = &self.cache {
            for kind in [ModuleKind::Core, ModuleKind::Component] {
                let key = self.key_for_digest(sha256_hex, kind);
                if let Some(artifact) = cache.get(&key) {
                    return Ok(DigestArtifact::Precompiled(Prepared {
                        artifact,
                        kind,
                        provenance: Provenance::CacheHit,
                    }));
                }
            }
        }
        let bytes = fetch().map_err(|source| LoadError::MissingFile {
            path: origin.to_path_buf(),
            source,
        })?;
        let actual = module_digest(&bytes);
        if actual != sha256_hex {
            return Err(LoadError::DigestMismatch {
                path: origin.to_path_buf(),
                expected: sha256_hex.to_string(),
                actual,
            });
        }
        let Some(cache) = &self.cache else {
            return Ok(DigestArtifact::Bytes(bytes));
        };
        let (wasm, kind) = self.to_binary(origin, &bytes)?;
        let wasm = &wasm[..];
        if !self.engine.supports(kind) {
            return Err(LoadError::Engine {
                path: origin.to_path_buf(),
                source: EngineError::Unsupported {
                    engine: self.engine.name(),
                    kind: kind.as_str(),
                },
            });
        }
        // Keyed by the digest of the bytes as fetched (text included), so the next start can
        // look the artifact up from the descriptor alone.
        let key = self.key_for_digest(sha256_hex, kind);
        match self.cached_or_compiled(cache, &key, origin, wasm, kind)? {
            Some((artifact, provenance)) => Ok(DigestArtifact::Precompiled(Prepared {
                artifact,
                kind,
                provenance,
            })),
            None => Ok(DigestArtifact::Bytes(bytes)),
        }
    }

    fn key_for_digest(&self, sha256_hex: &str, kind: ModuleKind) -> CacheKey {
        CacheKey::new(
            self.engine.name(),
            &self.engine.fingerprint(),
            kind.as_str(),
            sha256_hex,
        )
    }

    fn key(&self, wasm: &[u8], kind: ModuleKind) -> CacheKey {
        self.key_for_digest(&module_digest(wasm), kind)
    }

    /// The artifact for `key`: from the cache, or precompiled now by this process, which holds
    /// the entry's compile lock meanwhile so that simultaneous first starts of one module
    /// compile it once (the others find it when the lock is theirs).
    fn cached_or_compiled(
        &self,
        cache: &ModuleCache,
        key: &CacheKey,
        origin: &Path,
        wasm: &[u8],
        kind: ModuleKind,
    ) -> Result<Option<(CachedArtifact, Provenance)>, LoadError> {
        if let Some(artifact) = cache.get(key) {
            return Ok(Some((artifact, Provenance::CacheHit)));
        }
        let _lock = cache.compile_lock(key);
        if let Some(artifact) = cache.get(key) {
            return Ok(Some((artifact, Provenance::CacheHit)));
        }
        Ok(self
            .store_artifact(cache, key, origin, wasm, kind)?
            .map(|artifact| (artifact, Provenance::CompiledAndCached)))
    }

    /// Precompiles `wasm` into the cache under `key`. `None` when the engine cannot precompile
    /// or the cache refuses the write: a full or read-only cache must not stop the workload,
    /// it only costs time.
    fn store_artifact(
        &self,
        cache: &ModuleCache,
        key: &CacheKey,
        origin: &Path,
        wasm: &[u8],
        kind: ModuleKind,
    ) -> Result<Option<CachedArtifact>, LoadError> {
        let artifact = match self.engine.precompile(wasm, kind) {
            Ok(artifact) => artifact,
            Err(EngineError::NoPrecompile { .. }) => return Ok(None),
            Err(source) => {
                return Err(LoadError::Engine {
                    path: origin.to_path_buf(),
                    source,
                })
            }
        };
        match cache.put(key, &artifact) {
            Ok(stored) => Ok(Some(stored)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot store precompiled module");
                Ok(None)
            }
        }
    }

    /// Classifies `bytes` and converts WebAssembly text to binary (binary input is borrowed).
    fn to_binary<'b>(
        &self,
        origin: &Path,
        bytes: &'b [u8],
    ) -> Result<(Cow<'b, [u8]>, ModuleKind), LoadError> {
        match FileFormat::detect(&bytes[..bytes.len().min(64)]) {
            FileFormat::Wasm(kind) => Ok((Cow::Borrowed(bytes), kind)),
            FileFormat::Wat => {
                let wasm = wat::parse_bytes(bytes).map_err(|e| LoadError::BadText {
                    path: origin.to_path_buf(),
                    message: one_line(&e.to_string()),
                })?;
                let kind = match FileFormat::detect(&wasm) {
                    FileFormat::Wasm(kind) => kind,
                    _ => ModuleKind::Core,
                };
                Ok((Cow::Owned(wasm.into_owned()), kind))
            }
            other => Err(LoadError::NotWasm {
                path: origin.to_path_buf(),
                format: other,
            }),
        }
    }

    /// Loads a module whose bytes are already in memory; `origin` names it in errors.
    pub fn load_bytes(
        &self,
        origin: &Path,
        bytes: &[u8],
    ) -> Result<(Arc<dyn CompiledModule>, Provenance), LoadError> {
        let engine_err = |source| LoadError::Engine {
            path: origin.to_path_buf(),
            source,
        };
        let (wasm, kind) = self.to_binary(origin, bytes)?;
        let wasm = &wasm[..];
        if !self.engine.supports(kind) {
            return Err(engine_err(EngineError::Unsupported {
                engine: self.engine.name(),
                kind: kind.as_str(),
            }));
        }
        let Some(cache) = &self.cache else {
            let module = self.engine.compile(wasm, kind).map_err(engine_err)?;
            return Ok((module, Provenance::Compiled));
        };

        let key = self.key(wasm, kind);
        if let Some(CachedArtifact { path, file }) = cache.get(&key) {
            match self.engine.load_precompiled_file(file, &path, kind) {
                Ok(module) => return Ok((module, Provenance::CacheHit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping unusable cache entry");
                    cache.invalidate(&key);
                }
            }
        }
        match self.cached_or_compiled(cache, &key, origin, wasm, kind)? {
            Some((CachedArtifact { path, file }, provenance)) => {
                let module = self
                    .engine
                    .load_precompiled_file(file, &path, kind)
                    .map_err(engine_err)?;
                Ok((module, provenance))
            }
            None => {
                let module = self.engine.compile(wasm, kind).map_err(engine_err)?;
                Ok((module, Provenance::Compiled))
            }
        }
    }
}

/// Parser messages come with a source excerpt over several lines; errors here are one line
/// (message and position).
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    match lines.next() {
        Some(position) => format!("{first} ({})", position.trim_start_matches("--> ")),
        None => first,
    }
}
