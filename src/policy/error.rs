//! The one error type of the policy module.
//!
//! Every error names the policy file; errors about the file's content also name the key path
//! (`tools.send_message.rate_limit.window`, in `serde_path_to_error` notation) and say what would be
//! accepted, so that the one line `airlock check` or a failed start-up prints is enough to fix the
//! file. Each variant's `Display` is that complete line: callers print it as is.

use std::fmt;
use std::path::PathBuf;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the policy file: {cause}", .path.display())]
    Read {
        path: PathBuf,
        /// The operating system's (or UTF-8 decoder's) reason, part of the message.
        cause: std::io::Error,
    },

    /// The file name does not say which syntax it is written in.
    #[error(
        "{}: cannot tell the policy file's format from its name; name it *.json, *.toml or *.yaml",
        .path.display()
    )]
    UnsupportedFormat { path: PathBuf },

    /// The file does not hold a valid policy: a syntax error, an unknown key, a wrong value.
    #[error("{}: {}{message}{}", .path.display(), KeyPrefix(.key_path), At(*.location))]
    Invalid {
        path: PathBuf,
        /// Where in the document, e.g. `tools.send_message.rate_limit.window`; empty for the root.
        key_path: String,
        /// What is wrong and what would be accepted.
        message: String,
        /// Line and column (1-based) when the parser knows them.
        location: Option<Location>,
    },
}

/// A position in the policy file, 1-based as editors count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Renders `key_path: `, or nothing for the document root.
struct KeyPrefix<'a>(&'a str);

impl fmt::Display for KeyPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// Renders ` (line L, column C)`, or nothing when the position is unknown.
struct At(Option<Location>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(Location { line, column }) => write!(f, " (line {line}, column {column})"),
            None => Ok(()),
        }
    }
}
