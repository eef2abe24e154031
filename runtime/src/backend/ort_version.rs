//! The version of an ONNX Runtime library: what its `GetVersionString` says ("1.22.1"), or
//! what its file name says (`libonnxruntime.so.1.22.1`).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// `major.minor.patch` of an ONNX Runtime release, ordered by release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrtVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl OrtVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        OrtVersion {
            major,
            minor,
            patch,
        }
    }

    /// The version in a versioned library file name (`libonnxruntime.so.1.22.1`,
    /// `libonnxruntime.1.22.1.dylib`); `None` for `libonnxruntime.so` or a bare major (`.so.1`).
    pub fn from_file_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let rest = name.strip_prefix("libonnxruntime")?;
        let digits = rest.trim_start_matches(|c: char| !c.is_ascii_digit());
        let version = digits.trim_end_matches(|c: char| !c.is_ascii_digit());
        (version.split('.').count() == 3)
            .then(|| version.parse().ok())
            .flatten()
    }
}

impl fmt::Display for OrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Parses `1.22.1`, also with a suffix on the patch (`1.18.0-dev`, `1.17.3+cu118`); a missing
/// patch is 0.
impl FromStr for OrtVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an ONNX Runtime version (expected major.minor.patch)");
        let mut parts = s.trim().splitn(3, '.');
        let mut number = |required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(p) => {
                    let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                    digits.parse().map_err(|_| bad())
                }
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        Ok(OrtVersion {
            major: number(true)?,
            minor: number(true)?,
            patch: number(false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OrtVersion;
    use std::path::Path;

    #[test]
    fn a_version_string_parses_with_or_without_a_suffix() {
        assert_eq!(
            "1.22.1".parse::<OrtVersion>().unwrap(),
            OrtVersion::new(1, 22, 1)
        );
        assert_eq!(
            "1.18.0-dev".parse::<OrtVersion>().unwrap(),
            OrtVersion::new(1, 18, 0)
        );
        assert_eq!(
            "1.17".parse::<OrtVersion>().unwrap(),
            OrtVersion::new(1, 17, 0)
        );
    }

    #[test]
    fn garbage_is_not_a_version_and_the_error_quotes_it() {
        let err = "one.two".parse::<OrtVersion>().unwrap_err();
        assert!(err.contains("`one.two`"), "{err}");
        assert!("1".parse::<OrtVersion>().is_err());
    }

    #[test]
    fn versions_order_by_release_not_by_text() {
        assert!(OrtVersion::new(1, 9, 0) < OrtVersion::new(1, 17, 0));
        assert!(OrtVersion::new(1, 16, 3) < OrtVersion::new(1, 17, 0));
        assert_eq!(OrtVersion::new(1, 25, 1).to_string(), "1.25.1");
    }

    #[test]
    fn the_file_name_gives_the_version_when_it_has_one() {
        let of = |name: &str| OrtVersion::from_file_name(Path::new(name));
        assert_eq!(
            of("/x/libonnxruntime.so.1.22.1"),
            Some(OrtVersion::new(1, 22, 1))
        );
        assert_eq!(
            of("libonnxruntime.1.19.2.dylib"),
            Some(OrtVersion::new(1, 19, 2))
        );
        assert_eq!(of("/usr/lib/libonnxruntime.so"), None);
        assert_eq!(of("libonnxruntime.so.1"), None);
        assert_eq!(of("libother.so.1.22.1"), None);
    }
}
