//! containerd's configuration, edited: wasmbay's CRI runtime entries added to or removed from a
//! TOML file, everything else (comments, order, spacing, quoting) kept as written.
//!
//! Three schemas name the CRI runtimes' table differently: version 1 (a file without a
//! `version` key, containerd 1.x) `plugins.cri`, version 2 (containerd 1.6/1.7)
//! `plugins."io.containerd.grpc.v1.cri"`, version 3 (containerd 2.x)
//! `plugins."io.containerd.cri.v1.runtime"`. The schema is read from the file; only a file
//! with nothing in it yet takes the one the installed containerd reads, and gets a `version`
//! key saying so.
//!
//! Go templates (k3s' and rke2's `config.toml.tmpl`) are not TOML: the entries go there as one
//! marked block, which is itself checked as TOML and removed whole.

use toml_edit::{Array, DocumentMut, Item, Table};
use wasmbay_shim_core::names;

/// A containerd configuration schema (the file's `version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Schema {
    V1,
    V2,
    V3,
}

impl Schema {
    pub fn number(self) -> i64 {
        match self {
            Schema::V1 => 1,
            Schema::V2 => 2,
            Schema::V3 => 3,
        }
    }

    /// The schema containerd `major` writes for a new file.
    pub fn for_containerd(major: u32) -> Option<Schema> {
        match major {
            1 => Some(Schema::V2),
            2 => Some(Schema::V3),
            _ => None,
        }
    }

    /// The keys of the table that holds the CRI runtimes.
    fn runtimes_path(self) -> [&'static str; 4] {
        let plugin = match self {
            Schema::V1 => "cri",
            Schema::V2 => "io.containerd.grpc.v1.cri",
            Schema::V3 => "io.containerd.cri.v1.runtime",
        };
        ["plugins", plugin, "containerd", "runtimes"]
    }

    const ALL: [Schema; 3] = [Schema::V1, Schema::V2, Schema::V3];
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("not valid TOML: {0}")]
    Parse(String),
    #[error("`version = {0}` is not a containerd configuration version (1, 2 or 3)")]
    UnknownVersion(String),
    #[error(
        "`version = 3` is containerd 2's configuration; the installed containerd {0} reads \
         versions 1 and 2"
    )]
    TooNew(String),
    #[error(
        "the file sets no `version` and holds nothing yet, and containerd's version is not \
         known (no containerd binary found): pass --containerd-version"
    )]
    VersionUnknown,
    #[error("`{0}` is not a table")]
    NotATable(String),
    #[error(
        "`{table}` is already there and is not wasmbay's (runtime_type {found:?}); rename or \
         remove it first"
    )]
    NotOurs { table: String, found: String },
    #[error("the template holds a `{0}` line without its other end: fix or remove the block")]
    BrokenBlock(&'static str),
}

/// One CRI runtime entry for one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEntry {
    /// The table's key: the CRI runtime handler (a RuntimeClass's `handler`).
    pub handler: String,
    pub runtime_type: String,
    /// The shim binary's path on the node, so that containerd needs no `PATH` entry for it
    /// (k3s, rke2 and microk8s run containerd with their own `PATH`).
    pub runtime_path: String,
}

impl RuntimeEntry {
    pub fn for_engine(engine: &str, bin_dir: &str) -> RuntimeEntry {
        RuntimeEntry {
            handler: names::runtime_handler(engine),
            runtime_type: names::runtime_type(engine),
            runtime_path: format!(
                "{}/{}",
                bin_dir.trim_end_matches('/'),
                names::shim_binary(engine)
            ),
        }
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        table.insert("runtime_type", toml_edit::value(self.runtime_type.as_str()));
        table.insert("runtime_path", toml_edit::value(self.runtime_path.as_str()));
        // Containers of one pod share a shim: these annotations reach it.
        table.insert(
            "pod_annotations",
            toml_edit::value(Array::from_iter(POD_ANNOTATIONS)),
        );
        table.insert(
            "container_annotations",
            toml_edit::value(Array::from_iter(CONTAINER_ANNOTATIONS)),
        );
        table.decor_mut().set_prefix(format!(
            "\n# {MARK}: `wasmbay node uninstall` removes this table.\n"
        ));
        table
    }

    /// Whether `table` already says what this entry says (its formatting aside).
    fn matches(&self, table: &Table) -> bool {
        let string = |key: &str| table.get(key).and_then(Item::as_str);
        let strings = |key: &str| -> Option<Vec<String>> {
            table.get(key).and_then(Item::as_array).map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
        };
        let keys: Vec<&str> = table.iter().map(|(k, _)| k).collect();
        keys.len() == 4
            && string("runtime_type") == Some(&self.runtime_type)
            && string("runtime_path") == Some(&self.runtime_path)
            && strings("pod_annotations").as_deref() == Some(&POD_ANNOTATIONS.map(String::from)[..])
            && strings("container_annotations").as_deref()
                == Some(&CONTAINER_ANNOTATIONS.map(String::from)[..])
    }
}

const POD_ANNOTATIONS: [&str; 1] = ["wasmbay.*"];
const CONTAINER_ANNOTATIONS: [&str; 3] =
    ["wasmbay.*", "module.wasm.image/variant", "run.oci.handler"];

/// What marks wasmbay's additions in a file.
const MARK: &str = "wasmbay";
const BLOCK_BEGIN: &str = "# BEGIN wasmbay runtimes (`wasmbay node uninstall` removes this block)";
const BLOCK_END: &str = "# END wasmbay runtimes";

/// The outcome of an edit: the new text and the schema its entries were written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub schema: Schema,
}

/// The schema of a configuration file's text.
pub fn schema_of(text: &str, containerd: Option<&str>) -> Result<Schema, ConfigError> {
    let doc = parse(text)?;
    schema_of_doc(&doc, containerd)
}

fn parse(text: &str) -> Result<DocumentMut, ConfigError> {
    text.parse::<DocumentMut>()
        .map_err(|e| ConfigError::Parse(e.to_string().trim_end().to_string()))
}

/// `containerd` is the installed containerd's version (`1.7.24`), when known.
fn schema_of_doc(doc: &DocumentMut, containerd: Option<&str>) -> Result<Schema, ConfigError> {
    let major = containerd.and_then(major_of);
    match doc.get("version") {
        Some(item) => match item.as_integer() {
            Some(1) => Ok(Schema::V1),
            Some(2) => Ok(Schema::V2),
            Some(3) if major == Some(1) => Err(ConfigError::TooNew(
                containerd.unwrap_or_default().to_string(),
            )),
            Some(3) => Ok(Schema::V3),
            _ => Err(ConfigError::UnknownVersion(
                item.to_string().trim().to_string(),
            )),
        },
        // containerd reads a file without `version` as version 1.
        None if !doc.as_table().is_empty() => Ok(Schema::V1),
        None => major
            .and_then(Schema::for_containerd)
            .ok_or(ConfigError::VersionUnknown),
    }
}

/// `1.7.24`, `v2.0.0-rc.1` → the major version.
pub fn major_of(version: &str) -> Option<u32> {
    version
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// `text` with `entries` in it. Entries already there as given are left byte for byte, so a
/// second edit changes nothing; a wasmbay entry that differs is rewritten; a table of the
/// same name that is not wasmbay's is an error.
///
/// containerd replaces its built-in runtime list with the file's as soon as the file names
/// one runtime, and its CRI plugin then fails to load ("no corresponding runtime configured
/// ... for `default_runtime_name = \"runc\"`", seen with containerd 1.6 and 1.7 on Debian's
/// stock file). So where the file names no runtime of the default's name, that entry is
/// written out as containerd has it built in, marked as wasmbay's.
pub fn add(
    text: &str,
    containerd: Option<&str>,
    entries: &[RuntimeEntry],
) -> Result<Edited, ConfigError> {
    add_entries(text, containerd, entries, true)
}

fn add_entries(
    text: &str,
    containerd: Option<&str>,
    entries: &[RuntimeEntry],
    keep_default_runtime: bool,
) -> Result<Edited, ConfigError> {
    let mut doc = parse(text)?;
    let schema = schema_of_doc(&doc, containerd)?;
    if doc.get("version").is_none() && doc.as_table().is_empty() {
        doc.insert("version", toml_edit::value(schema.number()));
    }
    let path = schema.runtimes_path();
    let default_runtime = doc
        .get(path[0])
        .and_then(|p| p.get(path[1]))
        .and_then(|c| c.get(path[2]))
        .and_then(|c| c.get("default_runtime_name"))
        .and_then(Item::as_str)
        .unwrap_or(DEFAULT_RUNTIME)
        .to_string();
    let mut runtimes = doc.as_table_mut();
    for (depth, key) in path.iter().enumerate() {
        let item = runtimes
            .entry(key)
            .or_insert_with(|| Item::Table(implicit_table()));
        runtimes = item
            .as_table_mut()
            .ok_or_else(|| ConfigError::NotATable(path[..=depth].join(".")))?;
    }
    for entry in entries {
        match runtimes.get(&entry.handler) {
            Some(Item::Table(existing)) => {
                let found = existing
                    .get("runtime_type")
                    .and_then(Item::as_str)
                    .unwrap_or_default();
                if names::engine_of_runtime_type(found).is_none() {
                    return Err(ConfigError::NotOurs {
                        table: format!("{}.{}", path.join("."), entry.handler),
                        found: found.to_string(),
                    });
                }
                if entry.matches(existing) {
                    continue;
                }
                let position = existing.position();
                let mut table = entry.table();
                table.set_position(position);
                runtimes.insert(&entry.handler, Item::Table(table));
            }
            Some(_) => {
                return Err(ConfigError::NotATable(format!(
                    "{}.{}",
                    path.join("."),
                    entry.handler
                )))
            }
            None => {
                runtimes.insert(&entry.handler, Item::Table(entry.table()));
            }
        }
    }
    if keep_default_runtime
        && default_runtime == DEFAULT_RUNTIME
        && !runtimes.contains_key(DEFAULT_RUNTIME)
    {
        runtimes.insert(DEFAULT_RUNTIME, Item::Table(builtin_runc()));
    }
    Ok(Edited {
        text: doc.to_string(),
        schema,
    })
}

/// containerd's default runtime, and the one entry it has built in.
const DEFAULT_RUNTIME: &str = "runc";
const RUNC_TYPE: &str = "io.containerd.runc.v2";
const RUNC_NOTE: &str = "containerd's built-in runc entry, written out because a file that \
     names any runtime replaces the built-in list; `wasmbay node uninstall` removes it.";

fn builtin_runc() -> Table {
    let mut table = Table::new();
    table.insert("runtime_type", toml_edit::value(RUNC_TYPE));
    table
        .decor_mut()
        .set_prefix(format!("\n# {MARK}: {RUNC_NOTE}\n"));
    table
}

/// Whether `item` is the runc entry [`add`] wrote out, unchanged since.
fn is_our_runc(item: &Item) -> bool {
    let Some(table) = item.as_table() else {
        return false;
    };
    table.len() == 1
        && table.get("runtime_type").and_then(Item::as_str) == Some(RUNC_TYPE)
        && table
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .is_some_and(|p| p.contains(RUNC_NOTE))
}

/// A drop-in file of wasmbay's own: a `version` (containerd reads a file without one as
/// version 1, imported files included) and the entries.
pub fn fresh(schema: Schema, entries: &[RuntimeEntry]) -> Result<String, ConfigError> {
    let text = format!("version = {}\n", schema.number());
    // A merged file adds to the list rather than replacing it: no runc entry here.
    add_entries(&text, None, entries, false).map(|e| e.text)
}

fn implicit_table() -> Table {
    let mut table = Table::new();
    table.set_implicit(true);
    table
}

/// `text` without any wasmbay runtime entry, in any schema, nor the tables that only held
/// them; with `drop_version`, without the `version` key `add` put in a file that had nothing.
/// Returns the handlers removed.
pub fn remove(text: &str, drop_version: bool) -> Result<(String, Vec<String>), ConfigError> {
    let mut doc = parse(text)?;
    let mut removed = Vec::new();
    for schema in Schema::ALL {
        remove_under(doc.as_table_mut(), &schema.runtimes_path(), &mut removed);
    }
    if drop_version && doc.as_table().len() == 1 && doc.get("version").is_some() {
        doc.remove("version");
    }
    Ok((doc.to_string(), removed))
}

/// Removes wasmbay's entries below `path`, then each table on the way that is now empty and
/// was never written out (implicit): those are the ones `add` made.
fn remove_under(table: &mut Table, path: &[&str], removed: &mut Vec<String>) {
    let Some((key, rest)) = path.split_first() else {
        let ours: Vec<String> = table
            .iter()
            .filter(|(_, item)| {
                item.get("runtime_type")
                    .and_then(Item::as_str)
                    .and_then(names::engine_of_runtime_type)
                    .is_some()
            })
            .map(|(k, _)| k.to_string())
            .collect();
        for handler in ours {
            table.remove(&handler);
            removed.push(handler);
        }
        if table.get(DEFAULT_RUNTIME).is_some_and(is_our_runc) {
            table.remove(DEFAULT_RUNTIME);
        }
        return;
    };
    let Some(child) = table.get_mut(key).and_then(Item::as_table_mut) else {
        return;
    };
    remove_under(child, rest, removed);
    if child.is_empty() && child.is_implicit() {
        table.remove(key);
    }
}

/// A Go template (k3s, rke2) with `entries` as one marked block at its end, written in
/// `schema`. A block already there is replaced when it differs.
pub fn add_block(
    template: &str,
    schema: Schema,
    entries: &[RuntimeEntry],
) -> Result<String, ConfigError> {
    let (base, _) = without_block(template)?;
    let mut doc = DocumentMut::new();
    let mut runtimes = doc.as_table_mut();
    for key in schema.runtimes_path() {
        runtimes = runtimes
            .entry(key)
            .or_insert_with(|| Item::Table(implicit_table()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::NotATable(key.to_string()))?;
    }
    for entry in entries {
        let mut table = entry.table();
        table.decor_mut().set_prefix("");
        runtimes.insert(&entry.handler, Item::Table(table));
    }
    let body = doc.to_string();
    // What goes in the template must be TOML on its own.
    parse(&body)?;
    let mut out = base;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{BLOCK_BEGIN}\n{body}{BLOCK_END}\n"));
    Ok(out)
}

/// `template` without wasmbay's block; `true` when there was one.
pub fn without_block(template: &str) -> Result<(String, bool), ConfigError> {
    let Some(begin) = find_line(template, BLOCK_BEGIN) else {
        if find_line(template, BLOCK_END).is_some() {
            return Err(ConfigError::BrokenBlock(BLOCK_END));
        }
        return Ok((template.to_string(), false));
    };
    let after = &template[begin..];
    let end = find_line(after, BLOCK_END).ok_or(ConfigError::BrokenBlock(BLOCK_BEGIN))?;
    let end = begin + end + BLOCK_END.len();
    let end = if template[end..].starts_with('\n') {
        end + 1
    } else {
        end
    };
    Ok((format!("{}{}", &template[..begin], &template[end..]), true))
}

/// The offset of the line that is exactly `line`.
fn find_line(text: &str, line: &str) -> Option<usize> {
    let mut offset = 0;
    for l in text.split_inclusive('\n') {
        if l.trim_end_matches('\n').trim_end_matches('\r') == line {
            return Some(offset);
        }
        offset += l.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<RuntimeEntry> {
        ["wasmtime", "wasmer"]
            .iter()
            .map(|e| RuntimeEntry::for_engine(e, "/opt/wasmbay/bin"))
            .collect()
    }

    /// Debian's containerd 1.6/1.7 package: a version 2 file with runc configured.
    const DEBIAN: &str = r#"# containerd's configuration (local edits kept)
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"   # pinned
    [plugins."io.containerd.grpc.v1.cri".containerd]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true

[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"
"#;

    #[test]
    fn entries_are_added_after_runc_and_everything_else_is_kept() {
        let edited = add(DEBIAN, Some("1.7.24"), &entries()).unwrap();
        assert_eq!(edited.schema, Schema::V2);
        let text = &edited.text;
        let doc: DocumentMut = text.parse().unwrap();
        let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(
            runtimes["wasmbay-wasmtime"]["runtime_type"].as_str(),
            Some("io.containerd.wasmbay-wasmtime.v1")
        );
        assert_eq!(
            runtimes["wasmbay-wasmer"]["runtime_path"].as_str(),
            Some("/opt/wasmbay/bin/containerd-shim-wasmbay-wasmer-v1")
        );
        // Every original line is still there, in its order and spelling.
        let mut rest = text.as_str();
        for line in DEBIAN.lines() {
            let at = rest
                .find(line)
                .unwrap_or_else(|| panic!("{line:?} lost:\n{text}"));
            rest = &rest[at + line.len()..];
        }
        // The new tables sit with runc, before the next plugin.
        let ours = text.find("runtimes.wasmbay-wasmtime]").unwrap();
        assert!(ours > text.find("SystemdCgroup").unwrap());
        assert!(ours < text.find("io.containerd.internal.v1.opt").unwrap());
    }

    /// Debian's stock /etc/containerd/config.toml (containerd 1.6.20 and 1.7.24): no runtime
    /// named, so containerd's built-in runc stands until a file names any.
    const DEBIAN_STOCK: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

    #[test]
    fn the_built_in_runc_is_written_out_where_the_file_names_no_runtime() {
        let edited = add(DEBIAN_STOCK, Some("1.7.24"), &entries()).unwrap().text;
        let doc: DocumentMut = edited.parse().unwrap();
        let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(
            runtimes["runc"]["runtime_type"].as_str(),
            Some("io.containerd.runc.v2")
        );
        assert!(runtimes["wasmbay-wasmtime"].is_table());
        assert_eq!(remove(&edited, false).unwrap().0, DEBIAN_STOCK);
        // Once the operator has changed that runc entry, it is theirs and stays.
        let theirs = edited.replace(
            "runtime_type = \"io.containerd.runc.v2\"\n",
            "runtime_type = \"io.containerd.runc.v2\"\nSystemdCgroup = true\n",
        );
        assert!(remove(&theirs, false).unwrap().0.contains("SystemdCgroup"));
        // A file whose runtimes are named already gets none; neither does another default.
        assert!(!add(DEBIAN, None, &entries())
            .unwrap()
            .text
            .contains(RUNC_NOTE));
        let crun = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"crun\"\n";
        assert!(!add(crun, None, &entries())
            .unwrap()
            .text
            .contains("runtimes.runc"));
        // A drop-in adds to the merged list: no runc there.
        assert!(!fresh(Schema::V3, &entries()).unwrap().contains("runc"));
    }

    #[test]
    fn a_second_add_changes_nothing_and_remove_restores_every_byte() {
        let once = add(DEBIAN, None, &entries()).unwrap().text;
        let twice = add(&once, None, &entries()).unwrap().text;
        assert_eq!(once, twice);
        let (back, removed) = remove(&twice, false).unwrap();
        assert_eq!(back, DEBIAN);
        assert_eq!(removed, ["wasmbay-wasmtime", "wasmbay-wasmer"]);
    }

    #[test]
    fn a_changed_entry_is_rewritten_in_place() {
        let once = add(DEBIAN, None, &entries()).unwrap().text;
        let moved: Vec<_> = entries()
            .iter()
            .map(|e| RuntimeEntry::for_engine(&e.handler["wasmbay-".len()..], "/usr/local/bin"))
            .collect();
        let again = add(&once, None, &moved).unwrap().text;
        assert!(again.contains("/usr/local/bin/containerd-shim-wasmbay-wasmtime-v1"));
        assert!(!again.contains("/opt/wasmbay/bin"));
        assert_eq!(remove(&again, false).unwrap().0, DEBIAN);
    }

    #[test]
    fn an_empty_or_missing_file_takes_the_installed_containerds_schema() {
        for (containerd, schema, plugin) in [
            ("1.6.20", Schema::V2, "io.containerd.grpc.v1.cri"),
            ("v2.1.4", Schema::V3, "io.containerd.cri.v1.runtime"),
        ] {
            for original in ["", "# nothing yet\n"] {
                let edited = add(original, Some(containerd), &entries()).unwrap();
                assert_eq!(edited.schema, schema);
                let doc: DocumentMut = edited.text.parse().unwrap();
                assert_eq!(doc["version"].as_integer(), Some(schema.number()));
                assert!(
                    doc["plugins"][plugin]["containerd"]["runtimes"]["wasmbay-wasmtime"].is_table()
                );
                assert!(!edited.text.contains("[plugins]"), "{}", edited.text);
                assert_eq!(remove(&edited.text, true).unwrap().0, original);
            }
        }
        assert!(matches!(
            add("", None, &entries()),
            Err(ConfigError::VersionUnknown)
        ));
    }

    #[test]
    fn the_files_version_decides_the_schema() {
        let v3 = "version = 3\n\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n  default_runtime_name = \"runc\"\n";
        let edited = add(v3, Some("2.0.0"), &entries()).unwrap();
        assert_eq!(edited.schema, Schema::V3);
        assert!(edited.text.contains(
            "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmbay-wasmtime]"
        ));
        assert_eq!(remove(&edited.text, false).unwrap().0, v3);
        // A version 1 file (no `version`, containerd 1.x's old names).
        let v1 = "root = \"/var/lib/containerd\"\n[plugins.cri]\n  stream_server_port = \"0\"\n";
        let edited = add(v1, Some("1.6.20"), &entries()).unwrap();
        assert_eq!(edited.schema, Schema::V1);
        assert!(edited
            .text
            .contains("[plugins.cri.containerd.runtimes.wasmbay-wasmer]"));
        assert_eq!(remove(&edited.text, false).unwrap().0, v1);
        assert!(matches!(
            add(v3, Some("1.7.24"), &entries()),
            Err(ConfigError::TooNew(_))
        ));
        assert!(matches!(
            add("version = 7\n", None, &entries()),
            Err(ConfigError::UnknownVersion(_))
        ));
        assert!(matches!(
            add("version = \"2\"\n", None, &entries()),
            Err(ConfigError::UnknownVersion(_))
        ));
    }

    #[test]
    fn bad_files_and_foreign_tables_are_refused() {
        assert!(matches!(
            add("[plugins\n", None, &entries()),
            Err(ConfigError::Parse(_))
        ));
        let taken = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbay-wasmtime]\n  runtime_type = \"io.containerd.runc.v2\"\n";
        let err = add(taken, None, &entries()).unwrap_err();
        assert!(
            err.to_string()
                .contains("runtimes.wasmbay-wasmtime` is already there"),
            "{err}"
        );
        let inline = "version = 2\nplugins = 3\n";
        assert!(
            matches!(add(inline, None, &entries()), Err(ConfigError::NotATable(k)) if k == "plugins")
        );
        // runwasi's entries are not ours and stay.
        let runwasi = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmtime]\n  runtime_type = \"io.containerd.wasmtime.v1\"\n";
        let edited = add(runwasi, None, &entries()).unwrap().text;
        let (back, removed) = remove(&edited, false).unwrap();
        assert_eq!(back, runwasi);
        assert_eq!(removed.len(), 2);
    }

    #[test]
    fn a_file_without_a_final_newline_gains_only_that() {
        // The last line ends once a table follows it. An uninstall puts the exact bytes back
        // from its record; this removal by name is for a file edited since the install.
        let original = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_cdi = true";
        let edited = add(original, None, &entries()).unwrap().text;
        edited.parse::<DocumentMut>().unwrap();
        assert_eq!(remove(&edited, false).unwrap().0, format!("{original}\n"));
    }

    #[test]
    fn a_template_gets_one_block_that_comes_out_whole() {
        let template = "{{ template \"base\" . }}\n";
        let with = add_block(template, Schema::V2, &entries()).unwrap();
        assert!(with.starts_with(template));
        let block = &with[template.len()..];
        assert!(block.starts_with(BLOCK_BEGIN) && block.ends_with(&format!("{BLOCK_END}\n")));
        let body: DocumentMut = block.parse().unwrap();
        assert!(
            body["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
                ["wasmbay-wasmer"]
                .is_table()
        );
        assert_eq!(add_block(&with, Schema::V2, &entries()).unwrap(), with);
        assert_eq!(without_block(&with).unwrap(), (template.to_string(), true));
        assert_eq!(
            without_block(template).unwrap(),
            (template.to_string(), false)
        );
        let cut = with.replace(BLOCK_END, "");
        assert!(matches!(
            without_block(&cut),
            Err(ConfigError::BrokenBlock(_))
        ));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(major_of("1.7.24"), Some(1));
        assert_eq!(major_of("v2.0.0-rc.1"), Some(2));
        assert_eq!(major_of("unknown"), None);
    }
}
