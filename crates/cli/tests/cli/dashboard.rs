//! `morphogen dashboard`, `report` and `watch` on real run folders: the JSON API, the page and
//! the report in headless Chromium, the terminal view in a pseudo-terminal.

use crate::common::webdriver::{Browser, Image};
use crate::common::{self, json_lines, morphogen, scratch, train, Dashboard};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

#[test]
fn the_api_serves_a_real_run_and_survives_malformed_lines() {
    let runs = scratch("dashboard-api");
    let dir = train(&runs, "live", 4);
    let events = json_lines(&dir.join("events.jsonl"));
    assert!(!events.is_empty(), "the eager controller germinates seeds");
    let layers = json_lines(&dir.join("layers.jsonl"));
    assert_eq!(layers.iter().map(|l| l["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(layers[0]["layers"][0]["stage"].as_array().unwrap().len(), 8, "columns of 8 seeds");

    let mut server = Dashboard::start(&dir);
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"loss-chart\"") && page.contains("window.MORPHOGEN_DATA = null"));
    let listed = server.json("/api/runs");
    assert_eq!(listed[0]["name"], "live");
    assert_eq!(listed[0]["epoch"], 4);

    let view = server.json("/api/runs/live/view");
    assert_eq!(view["metrics"].as_array().unwrap().len(), 4);
    assert_eq!(view["events"].as_array().unwrap().len(), events.len());
    assert_eq!(view["messages"], Value::Array(vec![]), "a complete run has nothing to report");
    let lattice = view["layers"].as_array().unwrap();
    assert_eq!(lattice.iter().map(|l| l["layer"].as_str().unwrap()).collect::<Vec<_>>(), ["fc1", "fc2"]);
    for layer in lattice {
        let counts: u64 = layer["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(counts, 8);
    }
    let last = events.last().unwrap();
    let (layer, seed) = (last["layer"].as_str().unwrap(), last["seed"].as_u64().unwrap());
    let layer_view = lattice.iter().find(|l| l["layer"] == layer).unwrap();
    assert_eq!(layer_view["stage"][seed as usize].as_u64(), stage_code(&last["to"]), "the lattice shows the last move");
    let heatmap = &view["heatmaps"][0];
    assert_eq!(heatmap["epochs"].as_array().unwrap().len(), 4);
    assert_eq!(heatmap["variance"].as_array().unwrap().len(), 4 * 8);

    let filtered = server.json(&format!("/api/runs/live/events?layer={layer}&seed={seed}"));
    let expected = events.iter().filter(|e| e["layer"] == layer && e["seed"] == seed).count();
    assert_eq!(filtered.as_array().unwrap().len(), expected);
    let germinated = server.json("/api/runs/live/events?stage=GERMINATED").as_array().unwrap().len();
    assert_eq!(germinated, events.iter().filter(|e| e["to"] == "GERMINATED" || e["from"] == "GERMINATED").count());
    let story = server.json(&format!("/api/runs/live/seed/{layer}/{seed}"));
    assert_eq!(story["events"].as_array().unwrap().len(), expected);
    assert_eq!(story["history"].as_array().unwrap().len(), 4);
    assert_eq!(
        story["events"][0]["reason"],
        events.iter().find(|e| e["layer"] == layer && e["seed"] == seed).unwrap()["reason"]
    );
    assert_eq!(server.get("/api/runs/live/seed/fc1/8").0, 404);
    assert_eq!(server.get("/api/runs/live/seed/fc9/0").0, 404);
    let (status, body) = server.get("/api/runs/nope/view");
    assert!(status == 404 && body.contains("no run named 'nope'"), "{status} {body}");
    // Paths out of the runs folder name no run: nothing outside it is read or served.
    for escape in ["..%2F..%2Fetc", "%2Fetc", "..", "live%2F..%2F..", "live%00"] {
        for api in ["view", "events"] {
            let (status, body) = server.get(&format!("/api/runs/{escape}/{api}"));
            assert_eq!(status, 404, "{escape}/{api}: {body}");
            assert!(!body.contains("root:"), "{body}");
        }
    }

    // Unchanged since the version the page holds: a short answer.
    let version = view["version"].as_u64().unwrap();
    assert_eq!(server.json(&format!("/api/runs/live/view?since={version}"))["unchanged"], true);

    // A malformed line, then a line still being written: skipped and counted, never a crash.
    append(&dir.join("events.jsonl"), "{\"epoch\": oops}\n");
    let mut extra = last.clone();
    extra["reason"] = "appended while the dashboard runs".into();
    let extra = extra.to_string();
    append(&dir.join("events.jsonl"), &extra[..extra.len() / 2]);
    append(&dir.join("layers.jsonl"), "[1,2,3]\n");
    let view = server.json(&format!("/api/runs/live/view?since={version}"));
    assert_eq!(view["skipped"], serde_json::json!([0, 1, 1]));
    assert_eq!(view["events"].as_array().unwrap().len(), events.len());
    let messages = view["messages"].to_string();
    assert!(messages.contains("events.jsonl: 1 malformed line(s) skipped"), "{messages}");
    assert!(messages.contains("last line is incomplete"), "{messages}");
    append(&dir.join("events.jsonl"), &format!("{}\n", &extra[extra.len() / 2..]));
    let view = server.json("/api/runs/live/view");
    assert_eq!(view["events"].as_array().unwrap().len(), events.len() + 1, "the finished line is read");
    assert!(view["version"].as_u64().unwrap() > version);
    assert!(server.alive());

    // A folder of runs: both listed; a partial run says what it lacks.
    std::fs::create_dir(runs.join("starting")).unwrap();
    std::fs::write(runs.join("starting").join("events.jsonl"), "").unwrap();
    drop(server);
    let server = Dashboard::start(&runs);
    let listed = server.json("/api/runs");
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["live", "starting"]);
    let partial = server.json("/api/runs/starting/view");
    assert!(partial["messages"].to_string().contains("no metrics.jsonl yet"), "{}", partial["messages"]);
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn resume_appends_to_layers_jsonl() {
    let runs = scratch("dashboard-resume");
    let dir = train(&runs, "r", 2);
    let out = morphogen()
        .args(["train", "--config", runs.join("eager.toml").to_str().unwrap(), "--train-subset", "600"])
        .args(["--valid-subset", "200", "--epochs", "3", "--batch-size", "100", "--quiet", "--resume"])
        .args(["--runs-dir", runs.to_str().unwrap(), "--name", "r"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let epochs: Vec<u64> = json_lines(&dir.join("layers.jsonl")).iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3], "the resumed run appended epoch 3 only");
    std::fs::remove_dir_all(&runs).ok();
}

fn stage_code(name: &Value) -> Option<u64> {
    let names = ["DORMANT", "GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING"];
    let more = ["FOSSILIZED", "CULLED", "CANCELLED", "ROLLED_BACK"];
    names.iter().chain(more.iter()).position(|n| name == n).map(|i| i as u64)
}

#[test]
fn bad_folders_and_addresses_exit_with_2() {
    for args in [
        vec!["dashboard", "/nonexistent/runs/x"],
        vec!["report", "/nonexistent/runs/x", "-o", "/tmp/never.html"],
        vec!["watch", "/nonexistent/runs/x"],
    ] {
        let out = morphogen().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("/nonexistent/runs/x is not a folder"), "{stderr}");
    }
    let out = morphogen().args(["dashboard", ".", "--addr", "localhost:port"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--addr"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = morphogen().args(["dashboard", ".", "--addr", &addr]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

/// Pixels within 2 of `color` in every channel.
fn near(image: &Image, color: [u8; 3]) -> usize {
    (0..image.height)
        .flat_map(|y| (0..image.width).map(move |x| (x, y)))
        .filter(|&(x, y)| image.rgb(x, y).iter().zip(color).all(|(a, b)| a.abs_diff(b) <= 2))
        .count()
}

const TRAIN_LINE: [u8; 3] = [158, 203, 255];
const VALID_LINE: [u8; 3] = [255, 184, 108];

/// Checks a loaded page (live or report): the lattice drawn by stage, non-empty charts and
/// heatmaps, the event log; then clicks seed `seed` of `layer` and checks its lifecycle.
fn check_page(browser: &Browser, layer: &str, seed: u64, reason: &str, seeds: usize) {
    browser.wait_for(
        "return window.__morphogen && window.__morphogen.ready",
        Duration::from_secs(30),
        "the first render",
    );
    let canvas = browser.find(&format!("canvas.lattice-canvas[data-layer=\"{layer}\"]"));
    let lattice = browser.element_screenshot(&canvas);
    let geometry = browser.execute(&format!(
        "const c = document.querySelector('canvas.lattice-canvas[data-layer=\"{layer}\"]'); return c.geometry;"
    ));
    let cell = geometry["cell"].as_u64().unwrap() as usize;
    let cols = geometry["cols"].as_u64().unwrap() as usize;
    let stage_pixels: Vec<usize> = common::STAGE_COLORS.iter().map(|c| near(&lattice, *c)).collect();
    let inner = if cell >= 4 { cell - 1 } else { cell };
    let drawn: usize = stage_pixels.iter().sum();
    assert!(drawn >= seeds * inner * inner * 9 / 10, "every seed's cell is drawn: {drawn} pixels for {seeds} seeds");
    assert!(stage_pixels[0] > 0, "dormant seeds drawn");
    assert!(stage_pixels[1..].iter().any(|n| *n > 0), "seeds in other stages drawn: {stage_pixels:?}");
    for chart in ["#loss-chart", "#accuracy-chart"] {
        let image = browser.element_screenshot(&browser.find(chart));
        assert!(near(&image, TRAIN_LINE) > 30 && near(&image, VALID_LINE) > 20, "{chart} draws both curves");
    }
    let heatmaps = browser.execute("return document.querySelectorAll('canvas.heatmap').length");
    assert_eq!(heatmaps, 6, "three heatmaps for each of two layers");
    let heatmap = browser.element_screenshot(&browser.find("canvas.heatmap"));
    assert!(heatmap.distinct_colors() > 3, "the heatmap has values");
    let rows = browser.execute("return document.querySelectorAll('#events tbody tr').length").as_u64().unwrap();
    assert!(rows > 0, "the event log lists events");

    assert_eq!(browser.execute("return document.getElementById('lifecycle').hidden"), true);
    let (x, y) = ((seed as usize % cols) * cell + cell / 2, (seed as usize / cols) * cell + cell / 2);
    browser.click_at(&canvas, x as f64, y as f64);
    let title = format!("Lifecycle of {layer} / seed {seed}");
    browser.wait_for(
        &format!("return !document.getElementById('lifecycle').hidden && document.getElementById('lifecycle-title').textContent === {title:?}"),
        Duration::from_secs(10),
        "the lifecycle panel after the click",
    );
    let text =
        browser.execute("return document.getElementById('lifecycle-body').innerText").as_str().unwrap().to_string();
    assert!(text.contains(reason), "the lifecycle lists the controller's reason {reason:?}:\n{text}");
    assert!(text.contains("State at each epoch end"), "{text}");
}

#[test]
fn the_live_page_in_headless_chromium() {
    let runs = scratch("dashboard-page");
    let dir = train(&runs, "page", 4);
    let Some(browser) = Browser::start() else { return };
    let server = Dashboard::start(&dir);
    let first = json_lines(&dir.join("events.jsonl")).remove(0);
    let (layer, seed) = (first["layer"].as_str().unwrap(), first["seed"].as_u64().unwrap());
    browser.goto(&server.url());
    check_page(&browser, layer, seed, first["reason"].as_str().unwrap(), 8);

    // The page follows the run: a transition appended now shows up within a few polls, with
    // the controller service that decided it.
    let mut extra = first.clone();
    extra["reason"] = "appended while the page is open".into();
    extra["decided_by"] = "controller-7".into();
    append(&dir.join("events.jsonl"), &format!("{extra}\n"));
    let mut epoch = json_lines(&dir.join("metrics.jsonl")).pop().unwrap();
    epoch["epoch"] = 5.into();
    (epoch["decided_by"], epoch["decision_ms"], epoch["widened_by"]) = ("controller-7".into(), 2.5.into(), 8.into());
    append(&dir.join("metrics.jsonl"), &format!("{epoch}\n"));
    browser.wait_for(
        "const text = document.getElementById('decisions').innerText; \
         return text.includes('epoch 5 by controller-7 (bus round trip 2.5 ms)') \
           && text.includes('Host widened by 8 features after epoch 5')",
        Duration::from_secs(10),
        "who decided, the round trip and the widening",
    );
    browser.wait_for(
        "const text = document.querySelector('#events tbody').innerText; \
         return text.includes('appended while the page is open') && text.includes('controller-7')",
        Duration::from_secs(10),
        "the appended event in the live page",
    );
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn the_static_report_in_headless_chromium() {
    let runs = scratch("dashboard-report");
    let dir = train(&runs, "shared", 4);
    let report = runs.join("report.html");
    let out = morphogen().args(["report", dir.to_str().unwrap(), "-o", report.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the report is self-contained");
    assert!(!html.contains("window.MORPHOGEN_DATA = null"), "the data is inlined");
    let Some(browser) = Browser::start() else { return };
    std::fs::remove_dir_all(&dir).unwrap(); // the report needs nothing else
    let last = lines_of(&html);
    browser.goto(&format!("file://{}", report.display()));
    check_page(&browser, &last.0, last.1, &last.2, 8);
    let status = browser.execute("return document.getElementById('status').textContent");
    assert!(status.as_str().unwrap().starts_with("static report"), "{status}");
    std::fs::remove_dir_all(&runs).ok();
}

/// The first event inlined in a report: layer, seed, reason.
fn lines_of(html: &str) -> (String, u64, String) {
    let start = html.find("window.MORPHOGEN_DATA = ").unwrap() + "window.MORPHOGEN_DATA = ".len();
    let end = start + html[start..].find(";\n</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    let e = &data["events"][0];
    (e["layer"].as_str().unwrap().into(), e["seed"].as_u64().unwrap(), e["reason"].as_str().unwrap().into())
}

#[test]
fn ten_thousand_seeds_a_layer_render_in_chromium() {
    let runs = scratch("dashboard-10k");
    let dir = runs.join("big");
    morphogen_dashboard::DemoRun::new(2, 10_000, 12).write(&dir).unwrap();
    let Some(browser) = Browser::start() else { return };
    let server = Dashboard::start(&dir);
    let first = json_lines(&dir.join("events.jsonl")).remove(0);
    browser.goto(&server.url());
    let (layer, seed) = (first["layer"].as_str().unwrap(), first["seed"].as_u64().unwrap());
    check_page(&browser, layer, seed, first["reason"].as_str().unwrap(), 10_000);
    let timings = browser.execute("return window.__morphogen");
    eprintln!(
        "10,000 seeds x 2 layers in Chromium: whole render {:.1} ms, lattice {:.1} ms",
        timings["drawMs"].as_f64().unwrap(),
        timings["latticeMs"].as_f64().unwrap()
    );
    // Re-render on hover must stay cheap: time 20 lattice redraws.
    let redraw = browser.execute(
        "const t = performance.now(); for (let i = 0; i < 20; i++) { document.querySelector('#lifecycle-close').click(); } return (performance.now() - t) / 20;",
    );
    eprintln!("lattice redraw (2 x 10,000 cells): {:.1} ms", redraw.as_f64().unwrap());
    assert!(redraw.as_f64().unwrap() < 200.0, "a redraw of 20,000 cells takes {redraw} ms");
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn watch_in_a_pseudo_terminal() {
    let runs = scratch("dashboard-watch");
    let dir = train(&runs, "term", 3);
    let binary = env!("CARGO_BIN_EXE_morphogen");
    // `script` (util-linux) runs the command on a real pseudo-terminal; `q` on its input quits.
    let command = format!("stty rows 40 cols 120; {binary} watch {} --interval-ms 200", dir.display());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("`script` from util-linux runs");
    std::thread::sleep(Duration::from_secs(3));
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "watch did not quit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{raw}");
    let screen = replay(&raw, 40, 120).join("\n");
    for needle in ["morphogen watch: term", "epoch 3", "seeds per stage", "fc1 8 seeds", "fc2 8 seeds", "latest events"]
    {
        assert!(screen.contains(needle), "the terminal shows {needle:?}:\n{screen}");
    }
    let events = json_lines(&dir.join("events.jsonl"));
    let last = events.last().unwrap();
    let line = format!(
        "e{:<3} {}/{} {} -> {}",
        last["epoch"].as_u64().unwrap(),
        last["layer"].as_str().unwrap(),
        last["seed"],
        last["from"].as_str().unwrap(),
        last["to"].as_str().unwrap()
    );
    assert!(screen.contains(&line), "the latest event {line:?} is shown:\n{screen}");
    let fc1 = screen.lines().find(|l| l.starts_with("│fc1 ")).expect("a stage row for fc1");
    let counts: Vec<usize> =
        fc1.trim_start_matches("│fc1").trim_end_matches('│').split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 8, "fc1's 8 seeds counted by stage: {fc1}");
    std::fs::remove_dir_all(&runs).ok();
}

/// The screen a terminal shows after `raw` output (cursor moves `ESC[row;colH`, other escape
/// sequences ignored): what a user of `morphogen watch` would see.
fn replay(raw: &str, rows: usize, cols: usize) -> Vec<String> {
    let mut grid = vec![vec![' '; cols]; rows];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let end = loop {
                    match chars.next() {
                        Some(c) if c.is_ascii_alphabetic() || c == '~' => break c,
                        Some(c) => params.push(c),
                        None => break ' ',
                    }
                };
                if end == 'H' {
                    let mut at = params.split(';').map(|p| p.parse::<usize>().unwrap_or(1));
                    row = at.next().unwrap_or(1).saturating_sub(1);
                    col = at.next().unwrap_or(1).saturating_sub(1);
                }
            }
            '\u{1b}' => {
                chars.next();
            }
            '\r' => col = 0,
            '\n' => row += 1,
            c if !c.is_control() => {
                if row < rows && col < cols {
                    grid[row][col] = c;
                }
                col += 1;
            }
            _ => {}
        }
    }
    grid.into_iter().map(|r| r.into_iter().collect::<String>().trim_end().to_string()).collect()
}
