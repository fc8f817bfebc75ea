//! Which WASI release and which world a component targets, told from its imports and exports,
//! so that nobody has to pass a flag: a `wasi:cli/command` of WASI 0.2 runs on the synchronous
//! preview 2 host, one of WASI 0.3 on the concurrent host (component-model async), and an HTTP
//! handler is served rather than run.

/// The WASI release a component was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WasiRelease {
    /// WASI 0.2 (preview 2), or a component naming no WASI interface at all.
    P2,
    /// WASI 0.3: some import or export is a `wasi:` interface at version 0.3.x. Toolchains for
    /// 0.3 still import 0.2 interfaces beside the 0.3 ones (the libc adapter), so one 0.3 name
    /// decides.
    P3,
}

/// What a component is for, from its exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum World {
    /// Exports `wasi:cli/run`: a command, run once.
    Command,
    /// Exports an HTTP handler (`wasi:http/incoming-handler` of 0.2, `wasi:http/handler` of
    /// 0.3): served, one instance per request. The export's full name is kept for messages.
    HttpHandler(String),
    /// Neither: nothing wasmbay knows how to start.
    Unknown,
}

/// The release and world of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ComponentShape {
    pub release: WasiRelease,
    pub world: World,
}

impl ComponentShape {
    pub(crate) fn of(component: &wasmtime::component::Component) -> Self {
        let engine = component.engine();
        let ty = component.component_type();
        let imports = ty.imports(engine).map(|(name, _)| name.to_string());
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Self::from_names(imports, &exports)
    }

    fn from_names(imports: impl IntoIterator<Item = String>, exports: &[String]) -> Self {
        let is_p3 = |name: &str| {
            name.starts_with("wasi:")
                && name
                    .split_once('@')
                    .is_some_and(|(_, version)| version.starts_with("0.3."))
        };
        let release = if exports.iter().any(|n| is_p3(n)) || imports.into_iter().any(|n| is_p3(&n))
        {
            WasiRelease::P3
        } else {
            WasiRelease::P2
        };
        let interface = |name: &str| name.split_once('@').map_or(name, |(i, _)| i).to_string();
        // A handler wins over `wasi:cli/run`: Rust's std gives every component a `run` export
        // (a `main` shim), so a service built with it exports both, and is meant to serve.
        let world = if let Some(handler) = exports.iter().find(|n| {
            let i = interface(n);
            i == "wasi:http/incoming-handler" || i == "wasi:http/handler"
        }) {
            World::HttpHandler(handler.clone())
        } else if exports.iter().any(|n| interface(n) == "wasi:cli/run") {
            World::Command
        } else {
            World::Unknown
        };
        ComponentShape { release, world }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(imports: &[&str], exports: &[&str]) -> ComponentShape {
        ComponentShape::from_names(
            imports.iter().map(|s| s.to_string()),
            &exports.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_0_3_import_beside_0_2_ones_makes_the_component_0_3() {
        let s = shape(
            &["wasi:cli/environment@0.2.4", "wasi:cli/stdout@0.3.0"],
            &["wasi:cli/run@0.3.0"],
        );
        assert_eq!(s.release, WasiRelease::P3);
        assert_eq!(s.world, World::Command);
    }

    #[test]
    fn a_0_2_command_stays_0_2() {
        let s = shape(&["wasi:cli/environment@0.2.0"], &["wasi:cli/run@0.2.0"]);
        assert_eq!(s.release, WasiRelease::P2);
        assert_eq!(s.world, World::Command);
    }

    #[test]
    fn http_handlers_of_both_releases_are_recognised() {
        let s = shape(&[], &["wasi:http/incoming-handler@0.2.0"]);
        assert_eq!(
            (s.release, s.world),
            (
                WasiRelease::P2,
                World::HttpHandler("wasi:http/incoming-handler@0.2.0".into())
            )
        );
        let s = shape(&["wasi:http/types@0.3.0"], &["wasi:http/handler@0.3.0"]);
        assert_eq!(
            (s.release, s.world),
            (
                WasiRelease::P3,
                World::HttpHandler("wasi:http/handler@0.3.0".into())
            )
        );
    }

    #[test]
    fn a_handler_that_also_exports_run_is_served() {
        let s = shape(
            &["wasi:http/types@0.3.0"],
            &["wasi:cli/run@0.2.0", "wasi:http/handler@0.3.0"],
        );
        assert_eq!(
            s.world,
            World::HttpHandler("wasi:http/handler@0.3.0".into())
        );
    }

    #[test]
    fn non_wasi_names_and_other_versions_do_not_count() {
        let s = shape(&["example:thing/api@0.3.0"], &["run"]);
        assert_eq!((s.release, s.world), (WasiRelease::P2, World::Unknown));
    }
}
