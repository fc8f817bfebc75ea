//! Image references, normalised the way containerd (and Docker) do it.
//!
//! `hello:v1` becomes `docker.io/library/hello:v1`, `me/app` becomes `docker.io/me/app:latest`,
//! `localhost:5000/app:1` and `ghcr.io/org/app:2` keep their registry. A first path component
//! is a registry when it contains `.` or `:` or is `localhost`.

use std::fmt;

use crate::ImageError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised, tagged image reference: `domain/path:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: String,
}

impl ImageRef {
    /// Parses and normalises `reference`. Digest references (`name@sha256:…`) are refused: the
    /// digest of a built image comes from its content, it cannot be chosen.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(invalid("empty"));
        }
        if reference.contains('@') {
            return Err(invalid(
                "digest references cannot be built: give a tag (the digest comes from the content)",
            ));
        }
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("contains whitespace or control characters"));
        }

        // The tag is what follows the last ':' when no '/' comes after it (a ':' before a '/'
        // is a registry port).
        let (name, tag) = match reference.rfind(':') {
            Some(colon) if !reference[colon..].contains('/') => {
                (&reference[..colon], &reference[colon + 1..])
            }
            _ => (reference, DEFAULT_TAG),
        };
        validate_tag(tag).map_err(invalid)?;

        let (domain, remainder) = match name.split_once('/') {
            Some((first, rest)) if is_domain(first) => (first, rest),
            _ => (DEFAULT_DOMAIN, name),
        };
        let domain = if domain == LEGACY_DEFAULT_DOMAIN {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        validate_domain(domain).map_err(invalid)?;

        let path = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{remainder}")
        } else {
            remainder.to_string()
        };
        validate_path(&path).map_err(invalid)?;
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid("repository name longer than 255 characters"));
        }
        Ok(Self {
            domain: domain.to_string(),
            path,
            tag: tag.to_string(),
        })
    }

    /// The registry part, e.g. `docker.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/hello`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, e.g. `latest`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `domain/path` without the tag.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.domain, self.path, self.tag)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn is_domain(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn validate_domain(domain: &str) -> Result<(), &'static str> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if host.is_empty() {
        return Err("empty registry host");
    }
    let host_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !host_ok {
        return Err("invalid registry host");
    }
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err("invalid registry port");
        }
    }
    Ok(())
}

/// Each component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn validate_path(path: &str) -> Result<(), &'static str> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err("empty path component");
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("repository name must be lowercase");
        }
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err("path components must start and end with a lowercase letter or digit");
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
            if !ok {
                return Err("invalid separator in repository name (allowed: '.', '_', '__', '-')");
            }
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let mut chars = tag.chars();
    match chars.next() {
        None => return Err("empty tag"),
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        Some(_) => return Err("a tag must start with a letter, digit or '_'"),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
        return Err("a tag may only hold letters, digits, '_', '.' and '-'");
    }
    if tag.len() > MAX_TAG_LEN {
        return Err("tag longer than 128 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match ImageRef::parse(s) {
            Ok(r) => r.to_string(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn short_names_get_docker_io_library_and_latest() {
        assert_eq!(norm("hello"), "docker.io/library/hello:latest");
        assert_eq!(norm("hello:v1"), "docker.io/library/hello:v1");
        assert_eq!(norm("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            norm("index.docker.io/hello"),
            "docker.io/library/hello:latest"
        );
        assert_eq!(
            norm("docker.io/library/hello-wasm:latest"),
            "docker.io/library/hello-wasm:latest"
        );
    }

    #[test]
    fn registries_are_kept() {
        assert_eq!(norm("localhost:5000/app:1.0"), "localhost:5000/app:1.0");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("ghcr.io/org/sub/app:x_y"), "ghcr.io/org/sub/app:x_y");
        let r = ImageRef::parse("ghcr.io/org/app:2").expect("valid");
        assert_eq!(r.domain(), "ghcr.io");
        assert_eq!(r.path(), "org/app");
        assert_eq!(r.tag(), "2");
        assert_eq!(r.name(), "ghcr.io/org/app");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Hello",
            "hello:",
            "hello:-x",
            "a//b",
            "hello@sha256:0000",
            "he llo",
            "hello/",
            "-hello",
            "a..b",
            "ghcr.io:/x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
