//! The platform an image is for: `os/architecture[/variant]`.

use std::fmt;

use crate::ImageError;

/// An OCI platform. The default is `wasip1/wasm`, what wasm images carry in the ecosystem
/// (runwasi, Docker's wasm support).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `wasip1/wasm`.
    pub fn wasi() -> Self {
        Self {
            os: "wasip1".to_string(),
            architecture: "wasm".to_string(),
            variant: None,
        }
    }

    /// Parses `os/arch` or `os/arch/variant`.
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let invalid = || ImageError::InvalidPlatform(text.to_string());
        let parts: Vec<&str> = text.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(invalid());
        }
        Ok(Self {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::wasi()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(Platform::default().to_string(), "wasip1/wasm");
        let p = Platform::parse("linux/arm64/v8").expect("valid");
        assert_eq!(p.os, "linux");
        assert_eq!(p.architecture, "arm64");
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            Platform::parse("Linux/AMD64").expect("valid").to_string(),
            "linux/amd64"
        );
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "li nux/amd64"] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
