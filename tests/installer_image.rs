//! `wasmbay image installer`: the node installer's multi-platform image. Static programs
//! compiled here with Debian's gcc (amd64) and cross gcc (arm64) stand in for wasmbay's static
//! binaries, which take a release build per architecture; the image is imported into a real
//! containerd with `--all-platforms` and each platform's program is run from it by runc (the
//! arm64 one through qemu-user's binfmt_misc registration, as scripts/setup.sh --aarch64 makes
//! it). Dynamic and foreign-architecture binaries are refused, naming the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wasmbay_shim_core::names;
use wasmbay_testkit::{require_root, PrivateContainerd};

const HELLO: &str = r#"#include <stdio.h>
int main(int argc, char **argv) { printf("installer stand-in for %s: %s\n", ARCH, argv[0]); return 0; }
"#;

/// A directory with a static program for `arch` under the names the installer image takes;
/// `None` when the compiler for it is missing.
fn binaries(dir: &Path, arch: &str) -> Option<PathBuf> {
    let compiler = match arch {
        "amd64" => "cc",
        _ => "aarch64-linux-gnu-gcc",
    };
    let out = dir.join(arch);
    std::fs::create_dir_all(&out).unwrap();
    let source = dir.join("hello.c");
    std::fs::write(&source, HELLO).unwrap();
    let program = out.join("wasmbay");
    let built = Command::new(compiler)
        .args(["-static", "-O1", &format!("-DARCH=\"{arch}\""), "-o"])
        .arg(&program)
        .arg(&source)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("skipped for {arch}: {compiler} cannot build a static program here (scripts/setup.sh --aarch64 installs the cross compiler)");
        return None;
    }
    std::fs::copy(&program, out.join(names::shim_binary("wasmtime"))).unwrap();
    Some(out)
}

fn installer(args: &[&str]) -> std::process::Output {
    wasmbay_testkit::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_wasmbay"))
            .args(["image", "installer"])
            .args(args),
        Duration::from_secs(60),
    )
    .unwrap()
}

fn arg(key: &str, arch: &str, dir: &Path) -> [String; 2] {
    [key.to_string(), format!("{arch}={}", dir.display())]
}

#[test]
fn dynamic_foreign_and_missing_binaries_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(amd64) = binaries(dir.path(), "amd64") else {
        return;
    };
    let output = dir.path().join("out.tar");
    let out = output.to_str().unwrap();
    // This build's own wasmbay is linked dynamically.
    let dynamic = dir.path().join("dynamic");
    std::fs::create_dir_all(&dynamic).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wasmbay"), dynamic.join("wasmbay")).unwrap();
    std::fs::copy(
        amd64.join("wasmbay"),
        dynamic.join(names::shim_binary("wasmtime")),
    )
    .unwrap();
    for (binaries, arch, message) in [
        (&dynamic, "amd64", "dynamic/wasmbay: dynamically linked"),
        (
            &amd64,
            "arm64",
            "amd64/wasmbay: built for amd64, not for arm64",
        ),
        (
            &amd64,
            "riscv64",
            "architecture \"riscv64\" is not amd64 or arm64",
        ),
        (&dir.path().to_path_buf(), "amd64", "no wasmbay in"),
    ] {
        let [k, v] = arg("--binaries", arch, binaries);
        let result = installer(&[&k, &v, "-o", out]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{arch}: {stderr}");
        assert!(stderr.contains(message), "{arch}: {stderr}");
        assert!(!output.exists(), "a refused build wrote {out}");
    }
}

#[test]
fn the_installer_image_imports_with_every_platform_and_runs_each() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(amd64) = binaries(dir.path(), "amd64") else {
        return;
    };
    let arm64 = binaries(dir.path(), "arm64");
    let output = dir.path().join("installer.tar");
    let name = "localhost:5000/wasmbay/node-installer:test";
    let mut args: Vec<String> = arg("--binaries", "amd64", &amd64).into();
    if let Some(arm64) = &arm64 {
        args.extend(arg("--binaries", "arm64", arm64));
    }
    args.extend(["--name".into(), name.into(), "-o".into()]);
    args.push(output.display().to_string());
    let built = installer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let printed = String::from_utf8_lossy(&built.stdout);
    let digest = printed
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no digest in {printed}"))
        .to_string();

    let cd = PrivateContainerd::start().unwrap();
    cd.import(&output, &["--all-platforms"]).unwrap();
    let line = cd
        .image_line(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not imported"));
    assert!(line.contains(&digest), "{line}");
    assert!(line.contains("linux/amd64"), "{line}");
    let mut platforms = vec![("amd64", "linux/amd64")];
    if arm64.is_some() {
        assert!(line.contains("linux/arm64"), "{line}");
        if Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
            platforms.push(("arm64", "linux/arm64"));
        } else {
            eprintln!(
                "skipped running the arm64 program: no qemu-aarch64 binfmt_misc registration"
            );
        }
    }
    for (arch, platform) in platforms {
        let id = format!("installer-{arch}");
        let ran = cd
            .run_ok(
                cd.ctr_run()
                    .args(["--rm", "--platform", platform, name, &id])
                    .arg("/usr/local/bin/wasmbay"),
                Duration::from_secs(120),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ran.stdout),
            format!("installer stand-in for {arch}: /usr/local/bin/wasmbay\n")
        );
    }
    cd.stop();
}
