//! `wasmbay image build`: package a module as an OCI image archive for `ctr image import`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wasmbay_oci_image::{
    ExtraFile, ImageRef, ImageSpec, Layout, MultiPlatformSpec, Platform, PlatformRootfs,
};
use wasmbay_shim_core::names;

use super::elf_check;

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Write an OCI image layout (tar) holding FILE, ready for `ctr image import`.
    Build(BuildArgs),
    /// Write the node installer's image (deploy/): one OCI image index with a manifest per
    /// architecture, each holding that architecture's static `wasmbay` and shim (and
    /// `wasmbay-runtime`, when there) in /usr/local/bin.
    Installer(InstallerArgs),
    /// Send an OCI image layout archive to a registry (OCI distribution API).
    Push(super::image_push::PushArgs),
}

#[derive(Args)]
struct InstallerArgs {
    /// `ARCH=DIR` (ARCH `amd64` or `arm64`): the directory holding that architecture's static
    /// binaries; repeat for each architecture.
    #[arg(long = "binaries", value_name = "ARCH=DIR", required = true)]
    binaries: Vec<String>,
    /// Image reference (default `wasmbay/node-installer:<this version>`).
    #[arg(long, value_name = "REF")]
    name: Option<String>,
    /// Output archive.
    #[arg(long, short, value_name = "PATH")]
    output: PathBuf,
}

/// Where the installer image's binaries go; on the PATH of its commands, and of the node's
/// commands the installer runs in a chroot of the host.
const INSTALLER_BIN: &str = "/usr/local/bin";
const INSTALLER_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Args)]
struct BuildArgs {
    /// The module: binary wasm (core module or component) or WebAssembly text, stored as is.
    file: PathBuf,
    /// Image reference, e.g. `hello:v1` (normalised to `docker.io/library/hello:v1`).
    #[arg(long, value_name = "REF")]
    name: String,
    /// Output archive (default: `<file stem>.tar` in the current directory).
    #[arg(long, short, value_name = "PATH")]
    output: Option<PathBuf>,
    /// `app`: one tar layer with the module at `/<file name>`; `artifact`: the module is the
    /// layer (media type `application/vnd.bytecodealliance.wasm.component.layer.v0+wasm`).
    #[arg(long, default_value = "app", value_name = "app|artifact")]
    layout: String,
    /// Image platform `OS/ARCH[/VARIANT]`.
    #[arg(long, default_value = "wasip1/wasm", value_name = "OS/ARCH")]
    platform: String,
    /// Add a host file to the image (app layout only): `HOST:IMAGEPATH`, IMAGEPATH absolute.
    #[arg(long = "add", value_name = "HOST:IMAGEPATH")]
    add: Vec<String>,
    /// Entrypoint word; repeat for each word (default: `/<file name>`).
    #[arg(long = "entrypoint", value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Environment variable for the image config.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
}

pub fn main(args: ImageArgs) -> Result<i32> {
    match args.action {
        Action::Build(args) => build(args),
        Action::Installer(args) => installer(args),
        Action::Push(args) => super::image_push::push(args),
    }
}

fn installer(args: InstallerArgs) -> Result<i32> {
    let name = args
        .name
        .unwrap_or_else(|| format!("wasmbay/node-installer:{}", env!("CARGO_PKG_VERSION")));
    let reference = ImageRef::parse(&name).with_context(|| format!("--name {name:?}"))?;
    let shim = names::shim_binary("wasmtime");
    let mut platforms = Vec::new();
    for given in &args.binaries {
        let Some((arch, dir)) = given.split_once('=') else {
            bail!("--binaries {given:?}: expected ARCH=DIR");
        };
        if !["amd64", "arm64"].contains(&arch) {
            bail!("--binaries {given:?}: architecture {arch:?} is not amd64 or arm64");
        }
        let dir = Path::new(dir);
        let mut files = Vec::new();
        for (binary, required) in [
            ("wasmbay", true),
            (shim.as_str(), true),
            ("wasmbay-runtime", false),
        ] {
            let path = dir.join(binary);
            if !path.exists() {
                if required {
                    bail!("--binaries {given:?}: no {binary} in {}", dir.display());
                }
                continue;
            }
            elf_check::check_static(&path, arch)
                .with_context(|| format!("--binaries {given:?}"))?;
            files.push(
                ExtraFile::from_host(&path, &format!("{INSTALLER_BIN}/{binary}"))
                    .with_context(|| format!("--binaries {given:?}"))?,
            );
        }
        platforms.push(PlatformRootfs {
            platform: Platform::parse(&format!("linux/{arch}"))?,
            files,
        });
    }
    let spec = MultiPlatformSpec {
        reference,
        platforms,
        entrypoint: vec![format!("{INSTALLER_BIN}/wasmbay")],
        env: vec![INSTALLER_PATH.to_string()],
    };
    let image = spec.build().context("building the installer image")?;
    image.write_to(&args.output)?;
    println!("{}", args.output.display());
    println!("{} {}", image.reference, image.digest());
    Ok(0)
}

fn build(args: BuildArgs) -> Result<i32> {
    let reference =
        ImageRef::parse(&args.name).with_context(|| format!("--name {:?}", args.name))?;
    let layout: Layout = args
        .layout
        .parse()
        .with_context(|| format!("--layout {:?}", args.layout))?;
    let platform = Platform::parse(&args.platform)
        .with_context(|| format!("--platform {:?}", args.platform))?;

    let module_name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a file name", args.file.display()))?
        .to_string();
    let module = std::fs::read(&args.file)
        .with_context(|| format!("cannot read module {}", args.file.display()))?;

    let mut spec = ImageSpec::new(reference, module_name, module);
    spec.layout = layout;
    spec.platform = platform;
    spec.env = args.env;
    if !args.entrypoint.is_empty() {
        spec.entrypoint = Some(args.entrypoint);
    }
    for add in &args.add {
        let Some((host, image_path)) = add.rsplit_once(':') else {
            bail!("--add {add:?}: expected HOST:IMAGEPATH");
        };
        if host.is_empty() {
            bail!("--add {add:?}: empty host path");
        }
        let extra = ExtraFile::from_host(Path::new(host), image_path)
            .with_context(|| format!("--add {add:?}"))?;
        spec.extra_files.push(extra);
    }

    let output = match args.output {
        Some(path) => path,
        None => {
            let stem = args
                .file
                .file_stem()
                .with_context(|| format!("{}: no file stem", args.file.display()))?;
            let mut name = stem.to_os_string();
            name.push(".tar");
            PathBuf::from(name)
        }
    };
    let image = spec
        .build()
        .with_context(|| format!("building an image from {}", args.file.display()))?;
    image.write_to(&output)?;
    println!("{}", output.display());
    println!("{} {}", image.reference, image.manifest_digest());
    Ok(0)
}
