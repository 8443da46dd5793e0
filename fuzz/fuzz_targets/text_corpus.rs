//! A text corpus (`--task lm`): one `.txt` file, read, split into windows and decoded back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use morphogen::trainer::TextCorpus;

fuzz_target!(|text: &[u8]| {
    let dir = morphogen_fuzz::scratch("text");
    std::fs::write(dir.join("corpus.txt"), text).unwrap();
    let Ok(corpus) = TextCorpus::read(&dir) else { return };
    let decoded = corpus.vocabulary.decode(&corpus.tokens);
    assert_eq!(decoded, String::from_utf8(text.to_vec()).unwrap() + "\n", "decoding inverts encoding");
    let _ = corpus.split(4, 0.5);
});
