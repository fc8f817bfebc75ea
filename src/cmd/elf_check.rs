//! What an executable is, read from its ELF header: the machine it is for and whether it
//! needs a dynamic loader. The node installer's image holds no libraries, so each binary in it
//! must be static and for the image platform's architecture.

use std::path::Path;

/// `PT_INTERP`: the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// The OCI architecture of an ELF `e_machine`.
fn architecture(machine: u16) -> Option<&'static str> {
    match machine {
        62 => Some("amd64"),
        183 => Some("arm64"),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a 64-bit little-endian ELF executable")]
    NotElf { path: String },
    #[error("{path}: built for {found}, not for {wanted}")]
    Architecture {
        path: String,
        found: String,
        wanted: String,
    },
    #[error(
        "{path}: dynamically linked (its loader is {interpreter}); the installer image holds no \
         libraries: build it static (RUSTFLAGS=\"-C target-feature=+crt-static\", as \
         scripts/installer-image.sh does)"
    )]
    Dynamic { path: String, interpreter: String },
}

/// Checks that `path` is a static ELF executable for `wanted` (an OCI architecture).
pub fn check_static(path: &Path, wanted: &str) -> Result<(), ElfError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ElfError::Read {
        path: shown.clone(),
        source,
    })?;
    let not_elf = || ElfError::NotElf {
        path: shown.clone(),
    };
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    // ELFCLASS64 (2), ELFDATA2LSB (1).
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(not_elf());
    }
    let machine = u16_at(18).ok_or_else(not_elf)?;
    let found =
        architecture(machine).map_or_else(|| format!("ELF machine {machine}"), str::to_string);
    if found != wanted {
        return Err(ElfError::Architecture {
            path: shown,
            found,
            wanted: wanted.to_string(),
        });
    }
    let table = u64_at(32).ok_or_else(not_elf)? as usize;
    let entry_size = u16_at(54).ok_or_else(not_elf)? as usize;
    let entries = u16_at(56).ok_or_else(not_elf)? as usize;
    for index in 0..entries {
        let header = table + index * entry_size;
        if u32_at(header).ok_or_else(not_elf)? != PT_INTERP {
            continue;
        }
        let offset = u64_at(header + 8).ok_or_else(not_elf)? as usize;
        let size = u64_at(header + 32).ok_or_else(not_elf)? as usize;
        let interpreter = bytes
            .get(offset..offset.saturating_add(size))
            .map(|b| {
                String::from_utf8_lossy(b)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .unwrap_or_default();
        return Err(ElfError::Dynamic {
            path: shown,
            interpreter,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_dynamic_foreign_and_non_elf_files_are_told_apart() {
        // This test binary is dynamically linked (Rust's default on glibc).
        let me = std::env::current_exe().unwrap();
        let err = check_static(&me, "amd64").unwrap_err();
        if cfg!(target_arch = "x86_64") {
            assert!(
                matches!(err, ElfError::Dynamic { ref interpreter, .. } if interpreter.contains("ld-linux")),
                "{err}"
            );
        }
        assert!(matches!(
            check_static(&me, "riscv64"),
            Err(ElfError::Architecture { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let err = check_static(&script, "amd64").unwrap_err().to_string();
        assert!(err.contains("not a 64-bit little-endian ELF"), "{err}");
        // A static aarch64 header with no program headers.
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[18..20].copy_from_slice(&183u16.to_le_bytes());
        let arm = dir.path().join("arm");
        std::fs::write(&arm, &header).unwrap();
        check_static(&arm, "arm64").unwrap();
        let err = check_static(&arm, "amd64").unwrap_err().to_string();
        assert!(err.contains("built for arm64, not for amd64"), "{err}");
        // Debian's busybox-static is a static x86-64 executable.
        let busybox = Path::new("/bin/busybox");
        if cfg!(target_arch = "x86_64") && busybox.is_file() {
            check_static(busybox, "amd64").unwrap();
        }
    }
}
