//! What a refused configuration reports: every [`ConfigIssue`] (key, problem, fix)
//! of one file, printed as `portcullis check` and a refused start or reload show it.
//!
//! Kept apart from the typed configuration because it is the one shape every check in
//! `validate/` produces and every caller (binary, tests, fuzz targets) reads.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `routes[2].upstream`.
    pub key: String,
    /// What is wrong with the value.
    pub problem: String,
    /// How to correct it.
    pub fix: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The file that was read.
    pub file: PathBuf,
    /// Every problem, in file order.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "{}: {n} configuration error{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for i in &self.issues {
            writeln!(
                f,
                "  {}: {}: {}\n      fix: {}",
                self.file.display(),
                i.key,
                i.problem,
                i.fix
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
