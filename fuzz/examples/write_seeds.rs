//! Writes the checkpoint targets' seed inputs: the intact manifest and tensor file of the grown
//! test model, into `corpus/checkpoint_manifest/` and `corpus/checkpoint_tensors/`.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds` (from the repository root).

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (manifest, tensors) = morphogen_fuzz::checkpoint_files();
    for (target, bytes) in [("checkpoint_manifest", manifest), ("checkpoint_tensors", tensors)] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("intact"), bytes)?;
        println!("{}: {} bytes", dir.display(), bytes.len());
    }
    Ok(())
}
