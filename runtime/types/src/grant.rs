//! A grant: one folder the person lets a task see, read-only unless they
//! said read-write.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn is_writable(self) -> bool {
        self == Access::ReadWrite
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub path: PathBuf,
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantParseError {
    #[error("empty grant: give a folder, as PATH or PATH:rw")]
    Empty,
    #[error("unknown access {suffix:?} in grant {spec:?}: use PATH (read-only), PATH:ro or PATH:rw")]
    UnknownAccess { spec: String, suffix: String },
}

impl Grant {
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        Grant {
            path: path.into(),
            access: Access::ReadOnly,
        }
    }

    pub fn read_write(path: impl Into<PathBuf>) -> Self {
        Grant {
            path: path.into(),
            access: Access::ReadWrite,
        }
    }

    /// Parses `PATH`, `PATH:ro` or `PATH:rw`. A colon followed by anything
    /// else is an error rather than part of the path, so a typo such as
    /// `docs:wr` cannot silently grant a folder named `docs:wr`.
    pub fn parse(spec: &str) -> Result<Self, GrantParseError> {
        if spec.is_empty() {
            return Err(GrantParseError::Empty);
        }
        let (path, access) = match spec.rsplit_once(':') {
            Some((path, "rw")) => (path, Access::ReadWrite),
            Some((path, "ro")) => (path, Access::ReadOnly),
            // Windows drive letters (C:\...) and colons inside a path component.
            Some((_, suffix)) if suffix.contains(['/', '\\']) => (spec, Access::ReadOnly),
            Some((path, suffix)) if !path.is_empty() => {
                return Err(GrantParseError::UnknownAccess {
                    spec: spec.into(),
                    suffix: suffix.into(),
                });
            }
            _ => (spec, Access::ReadOnly),
        };
        if path.is_empty() {
            return Err(GrantParseError::Empty);
        }
        Ok(Grant {
            path: PathBuf::from(path),
            access,
        })
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_path_is_read_only() {
        assert_eq!(Grant::parse("projects").unwrap(), Grant::read_only("projects"));
    }

    #[test]
    fn rw_suffix_grants_write() {
        assert_eq!(Grant::parse("/a/b:rw").unwrap(), Grant::read_write("/a/b"));
        assert_eq!(Grant::parse("/a/b:ro").unwrap(), Grant::read_only("/a/b"));
    }

    #[test]
    fn typo_in_access_is_an_error_not_a_path() {
        let err = Grant::parse("docs:wr").unwrap_err();
        assert!(err.to_string().contains("PATH:rw"), "{err}");
    }

    #[test]
    fn windows_drive_stays_part_of_the_path() {
        assert_eq!(Grant::parse(r"C:\Users\me").unwrap(), Grant::read_only(r"C:\Users\me"));
        assert_eq!(
            Grant::parse(r"C:\Users\me:rw").unwrap(),
            Grant::read_write(r"C:\Users\me")
        );
    }

    #[test]
    fn empty_is_rejected() {
        assert_eq!(Grant::parse(""), Err(GrantParseError::Empty));
        assert_eq!(Grant::parse(":rw"), Err(GrantParseError::Empty));
    }
}
