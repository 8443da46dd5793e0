//! Tests' view of a page in headless Chromium.

use std::path::Path;

/// The DOM headless Chromium builds from `page` after its scripts ran, or `None` when
/// `MORPHOGEN_SKIP_BROWSER=1`. Fails if the page wrote anything to the console: uncaught
/// exceptions, `console.error`, SVG attributes Chromium could not parse.
pub(crate) fn rendered_dom(page: &Path) -> Option<String> {
    if std::env::var("MORPHOGEN_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("MORPHOGEN_SKIP_BROWSER=1: skipping the headless-Chromium check");
        return None;
    }
    let out = std::process::Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(["--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect(
            "the page is checked in headless Chromium: `apt-get install -y chromium` (or MORPHOGEN_SKIP_BROWSER=1)",
        );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the page wrote to the console:\n{}", console.join("\n"));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
