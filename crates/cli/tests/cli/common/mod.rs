//! Helpers of the CLI tests: the binary, scratch folders, a real training run, the
//! `morphogen dashboard` server as a child process, a plain HTTP client and a WebDriver client
//! for headless Chromium.

pub mod http;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `morphogen` binary.
pub fn morphogen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_morphogen"))
}

/// Runs the binary with `args` to the end, returning its output.
pub fn run(args: &[&str]) -> Output {
    morphogen().args(args).output().expect("the morphogen binary runs")
}

/// Every line of a JSON-lines file, parsed (none if the file is missing).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A fresh folder under the target dir's temp space, removed first if it exists.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Trains a small MLP for `epochs` epochs on a Fashion-MNIST subset with an eager controller
/// (seeds germinate from the first epoch) into `<runs>/<name>`; returns the run folder.
pub fn train(runs: &Path, name: &str, epochs: u32) -> PathBuf {
    let config = runs.join("eager.toml");
    std::fs::write(
        &config,
        "[controller]\npatience = 0\nmax_germinations_per_epoch = 3\nmax_active_per_layer = 3\nmax_active_total = 6\n",
    )
    .unwrap();
    let epochs = epochs.to_string();
    let out = morphogen()
        .args(["train", "--config", config.to_str().unwrap(), "--train-subset", "600", "--valid-subset", "200"])
        .args(["--epochs", &epochs, "--batch-size", "100", "--runs-dir", runs.to_str().unwrap(), "--name", name])
        .arg("--quiet")
        .output()
        .expect("morphogen train runs");
    assert!(out.status.success(), "training failed:\n{}", String::from_utf8_lossy(&out.stderr));
    runs.join(name)
}

/// `morphogen dashboard` serving `path` on a free loopback port; killed on drop.
pub struct Dashboard {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Dashboard {
    /// Starts the server and waits for the line with its address.
    pub fn start(path: &Path) -> Self {
        let mut child = morphogen()
            .args(["dashboard", path.to_str().unwrap(), "--addr", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("morphogen dashboard starts");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).and_then(|rest| rest.split('/').next());
        let addr = addr.unwrap_or_else(|| panic!("no address in the first line: {line:?}")).to_string();
        Self { child, addr }
    }

    /// `http://<addr>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http::get(&self.addr, path)
    }

    /// GET `path`, expecting 200 and JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `morphogen train` of the MLP on 2,000 Fashion-MNIST images (batches of 50) into `<runs>/<name>`
/// for `epochs` epochs, serving its metrics on a free loopback port; killed on drop.
pub struct MetricsRun {
    child: Child,
    /// Where `GET /metrics` answers.
    pub addr: std::net::SocketAddr,
}

impl MetricsRun {
    /// Starts the run and waits for the line with the metrics address.
    pub fn start(runs: &Path, name: &str, epochs: u32) -> Self {
        let mut command = morphogen();
        command
            .args(["train", "--train-subset", "2000", "--valid-subset", "200", "--batch-size", "50"])
            .args(["--epochs", &epochs.to_string(), "--name", name, "--quiet"])
            .arg("--runs-dir")
            .arg(runs);
        Self::spawn(command)
    }

    /// Starts `train_command` (a `morphogen train`) with a metrics server on a free loopback
    /// port, and waits for the line with its address.
    pub fn spawn(mut train_command: Command) -> Self {
        let mut child = train_command
            .args(["--metrics-addr", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("metrics: http://")?.strip_suffix("/metrics")?.parse().ok())
            .expect("the run prints its metrics address");
        // Keep draining stderr so the run never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr }
    }

    /// Optimizer steps this process has taken, as its metrics say (none once it has exited).
    pub fn steps(&self) -> Option<u64> {
        let (_, body) = http::try_request(&self.addr.to_string(), "GET", "/metrics", None).ok()?;
        sample(&body, "morphogen_steps_total").map(|v| v as u64)
    }

    /// Whether the training process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the training process to exit.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("the run can be waited for")
    }
}

impl Drop for MetricsRun {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The value of the unlabelled Prometheus sample `name` in an exposition `text`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
}

/// The stage colours of the page, by stage code.
pub const STAGE_COLORS: [[u8; 3]; 11] = morphogen_dashboard::STAGE_COLORS;
