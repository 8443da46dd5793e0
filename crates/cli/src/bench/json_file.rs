//! The `--json` file of a benchmark: created before any measuring, so a bad path fails at once,
//! not after the run; written when the run is done.

use crate::error::CliError;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An output file, created and still empty.
pub struct JsonFile {
    path: PathBuf,
    file: File,
}

impl JsonFile {
    /// Creates the file at `path`, if a path was given.
    pub fn create(path: Option<&Path>) -> Result<Option<Self>, CliError> {
        let Some(path) = path else { return Ok(None) };
        let file = File::create(path).map_err(|source| CliError::Write { path: path.to_path_buf(), source })?;
        Ok(Some(Self { path: path.to_path_buf(), file }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `value` as pretty-printed JSON and a newline.
    pub fn write(&mut self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)? + "\n";
        self.file.write_all(text.as_bytes()).map_err(|source| CliError::Write { path: self.path.clone(), source })
    }
}
