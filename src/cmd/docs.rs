//! `wasmbay docs --man DIR --completions DIR` (hidden): man pages and shell completions made
//! from the CLI's own definition, so that packages (scripts/deb.sh) ship what the binary
//! really accepts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct DocsArgs {
    /// Write `wasmbay.1` and a page per subcommand (`wasmbay-node-install.1`, …) here.
    #[arg(long, value_name = "DIR")]
    man: Option<PathBuf>,
    /// Write bash (`wasmbay`), zsh (`_wasmbay`) and fish (`wasmbay.fish`) completions here.
    #[arg(long, value_name = "DIR")]
    completions: Option<PathBuf>,
}

pub fn main(args: DocsArgs, command: clap::Command) -> Result<i32> {
    if let Some(dir) = &args.man {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        write_man_pages(command.clone(), dir)?;
    }
    if let Some(dir) = &args.completions {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut command = command.clone();
            clap_complete::generate_to(shell, &mut command, "wasmbay", dir)
                .with_context(|| format!("{shell} completions in {}", dir.display()))?;
        }
    }
    Ok(0)
}

/// A page for `command` and, named `<parent>-<sub>.1`, for each visible subcommand below it.
fn write_man_pages(command: clap::Command, dir: &Path) -> Result<()> {
    // clap_mangen names a subcommand page after its display name: set it to the full path.
    let command = command.disable_help_subcommand(true);
    let name = command
        .get_display_name()
        .unwrap_or(command.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, page).with_context(|| path.display().to_string())?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full = format!("{name}-{}", sub.get_name());
        write_man_pages(
            sub.clone()
                .display_name(full.clone())
                .bin_name(full.replace('-', " ")),
            dir,
        )?;
    }
    Ok(())
}
