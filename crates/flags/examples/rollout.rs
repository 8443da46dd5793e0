//! Stages a rollout of `kernels` from 1% to 10% to 25% in a temporary flag file and shows that
//! every run id that was in stays in. Run with `cargo run -p morphogen-flags --example rollout`.

use morphogen_flags::{Feature, FlagFile, Flags};

fn main() -> Result<(), morphogen_flags::FlagError> {
    let dir = std::env::temp_dir().join(format!("morphogen-flags-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = FlagFile::new(dir.join(morphogen_flags::DEFAULT_FILE));
    let ids: Vec<String> = (0..1000).map(|i| format!("run-{i}")).collect();

    let mut previous: Vec<&String> = Vec::new();
    for rollout in [1, 10, 25] {
        file.enable(Feature::Kernels, rollout)?;
        let (flags, warning) = Flags::load(file.path());
        if let Some(warning) = warning {
            eprintln!("warning: {warning}");
        }
        let members: Vec<&String> = ids.iter().filter(|id| flags.is_enabled_for(Feature::Kernels, id)).collect();
        let kept = previous.iter().all(|id| members.contains(id));
        println!(
            "kernels at {rollout:>3}%: {:>3} of {} runs in; all earlier members kept: {kept}",
            members.len(),
            ids.len()
        );
        previous = members;
    }
    file.disable(Feature::Kernels)?;
    println!("audit log:\n{}", std::fs::read_to_string(file.audit_path()).expect("audit log"));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
