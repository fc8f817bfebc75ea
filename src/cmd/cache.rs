//! `wasmbay cache`: where the precompiled cache is, how big, and clearing it.

use anyhow::Result;
use clap::{Args, Subcommand};
use wasmbay_shim_core::cache::ModuleCache;

#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print the cache directory, entry count and size.
    Stats,
    /// Remove every cached artifact.
    Clear,
}

pub fn main(args: CacheArgs) -> Result<i32> {
    let cache = ModuleCache::default_location();
    match args.action {
        Action::Stats => {
            let stats = cache.stats()?;
            println!(
                "{}: {} entries, {} bytes",
                cache.dir().display(),
                stats.entries,
                stats.bytes
            );
        }
        Action::Clear => {
            let removed = cache.clear()?;
            println!(
                "{}: removed {} entries ({} bytes)",
                cache.dir().display(),
                removed.entries,
                removed.bytes
            );
        }
    }
    Ok(0)
}
