//! With feature `wasmedge`: fail early, with instructions, when the WasmEdge C library is not
//! installed.
//!
//! Why here and not in the wasmedge engine crate: Cargo runs a package's build script only
//! after the build scripts of its direct dependencies that declare `links`, and the engine
//! depends on `wasmedge-sys` (`links = "wasmedge"`), whose script panics with a bare link when
//! it finds nothing. This crate reaches wasmedge-sys only through the engine, so its script
//! runs first and can say what to do. The search mirrors wasmedge-sys 0.21's own.

use std::path::{Path, PathBuf};

const VARS: [&str; 4] = [
    "WASMEDGE_INCLUDE_DIR",
    "WASMEDGE_LIB_DIR",
    "WASMEDGE_DIR",
    "WASMEDGE_BUILD_DIR",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_WASMEDGE").is_none() {
        return;
    }
    for var in VARS.iter().chain(&["HOME"]) {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let env = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let mut candidates: Vec<(PathBuf, PathBuf)> = Vec::new();
    if let (Some(inc), Some(lib)) = (env("WASMEDGE_INCLUDE_DIR"), env("WASMEDGE_LIB_DIR")) {
        candidates.push((inc, lib));
    }
    if let Some(dir) = env("WASMEDGE_DIR") {
        candidates.push((dir.join("include"), dir.join("lib64")));
        candidates.push((dir.join("include"), dir.join("lib")));
    }
    if let Some(dir) = env("WASMEDGE_BUILD_DIR") {
        candidates.push((dir.join("include/api"), dir.join("lib64/api")));
        candidates.push((dir.join("include/api"), dir.join("lib/api")));
    }
    let home = env("HOME");
    if let Some(home) = &home {
        candidates.push((home.join(".wasmedge/include"), home.join(".wasmedge/lib64")));
        candidates.push((home.join(".wasmedge/include"), home.join(".wasmedge/lib")));
    }
    candidates.push(("/usr/local/include".into(), "/usr/local/lib64".into()));
    candidates.push(("/usr/local/include".into(), "/usr/local/lib".into()));
    if let Some(home) = &home {
        candidates.push((home.join(".local/include"), home.join(".local/lib64")));
        candidates.push((home.join(".local/include"), home.join(".local/lib")));
    }
    if candidates.iter().any(|(inc, lib)| usable(inc, lib)) {
        return;
    }

    let looked: Vec<String> = candidates
        .iter()
        .map(|(inc, lib)| format!("  {} + {}", inc.display(), lib.display()))
        .collect();
    // A distribution package in /usr is not among wasmedge-sys's places; say how to use it.
    let in_usr = usable(Path::new("/usr/include"), Path::new("/usr/lib"))
        || usable(
            Path::new("/usr/include"),
            Path::new("/usr/lib/x86_64-linux-gnu"),
        );
    let hint = if in_usr {
        "\nlibwasmedge is in /usr, where wasmedge-sys does not look: set WASMEDGE_DIR=/usr \
         (or WASMEDGE_INCLUDE_DIR and WASMEDGE_LIB_DIR).\n"
    } else {
        ""
    };
    eprintln!(
        "\nerror: feature `wasmedge` needs the WasmEdge C library 0.17.x (header \
         wasmedge/wasmedge.h and libwasmedge.so), and none was found. Looked in:\n{}\n{hint}\n\
         Install it from https://wasmedge.org/docs/start/install/ (or build it from source: \
         https://wasmedge.org/docs/contribute/source/os/linux/ with -DWASMEDGE_USE_LLVM=OFF is \
         enough), then either install to /usr/local and run ldconfig, or point \
         WASMEDGE_DIR (a prefix holding include/ and lib/), or WASMEDGE_INCLUDE_DIR and \
         WASMEDGE_LIB_DIR, at it. Building also needs libclang (Debian: libclang-dev) for \
         wasmedge-sys's bindgen.\n",
        looked.join("\n")
    );
    std::process::exit(1);
}

/// Where wasmedge-sys would succeed: the header exists and the library is in the lib dir.
fn usable(inc: &Path, lib: &Path) -> bool {
    inc.join("wasmedge/wasmedge.h").is_file()
        && (lib.join("libwasmedge.so").exists() || lib.join("libwasmedge.a").exists())
}
