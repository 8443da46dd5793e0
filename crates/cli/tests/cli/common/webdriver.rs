//! A small WebDriver client driving headless Chromium through chromedriver (Debian packages
//! `chromium` and `chromium-driver`), over the plain HTTP client.

use super::http;
use base64::Engine;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to 1 to skip the browser checks on a machine without Chromium.
pub const SKIP_ENV: &str = "MORPHOGEN_SKIP_BROWSER";
/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; the browser and chromedriver are stopped on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

/// A decoded screenshot: RGBA pixels, row by row.
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// RGBA bytes.
    pub rgba: Vec<u8>,
}

impl Image {
    /// The pixel at `(x, y)`: RGB.
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 4;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2]]
    }

    /// How many different colours the image has.
    pub fn distinct_colors(&self) -> usize {
        self.rgba.chunks(4).map(|p| [p[0], p[1], p[2]]).collect::<std::collections::HashSet<_>>().len()
    }
}

/// `name` on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or returns `None` when
    /// `MORPHOGEN_SKIP_BROWSER=1`. Panics, naming the packages to install, when they are missing.
    pub fn start() -> Option<Self> {
        if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
            eprintln!("{SKIP_ENV}=1: skipping the headless-Chromium checks");
            return None;
        }
        let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
            panic!(
                "the dashboard tests load the page in headless Chromium: install it with \
                 `apt-get install -y chromium chromium-driver` (or set {SKIP_ENV}=1 to skip these checks)"
            );
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        // Built first, so a failure below still stops chromedriver.
        let mut browser = Self { driver, addr: addr.clone(), session: String::new() };
        wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(&addr).is_ok() && http::get(&addr, "/status").1.contains("\"ready\":true")
        });
        let options = json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--force-device-scale-factor=1", "--hide-scrollbars"],
        });
        let caps =
            json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": options } } });
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"].as_str().expect("a session id").to_string();
        Some(browser)
    }

    /// One WebDriver command; panics with the driver's message on an error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (status, text) = http::request(&self.addr, method, path, body.as_deref());
        let reply: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        assert!(status == 200, "WebDriver {method} {path} -> {status}: {}", reply["value"]);
        reply["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn execute(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    /// Waits until `script` returns true, up to `timeout`; panics with `what` otherwise.
    pub fn wait_for(&self, script: &str, timeout: Duration, what: &str) {
        let start = Instant::now();
        while self.execute(script) != json!(true) {
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The WebDriver id of the first element matching `css`.
    pub fn find(&self, css: &str) -> String {
        let found = self.session_call("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element for {css}: {found}")).to_string()
    }

    /// A screenshot of one element (scrolled into view).
    pub fn element_screenshot(&self, element: &str) -> Image {
        decode_png(&self.session_call("GET", &format!("/element/{element}/screenshot"), None))
    }

    /// A real mouse click at `(x, y)` CSS pixels from the element's top-left corner.
    pub fn click_at(&self, element: &str, x: f64, y: f64) {
        let rect = self.session_call("GET", &format!("/element/{element}/rect"), None);
        let (w, h) = (rect["width"].as_f64().unwrap(), rect["height"].as_f64().unwrap());
        let origin = json!({ ELEMENT: element });
        let moves = json!([
            { "type": "pointerMove", "duration": 0, "origin": origin, "x": (x - w / 2.0).round() as i64, "y": (y - h / 2.0).round() as i64 },
            { "type": "pointerDown", "button": 0 },
            { "type": "pointerUp", "button": 0 },
        ]);
        let actions = json!({ "actions": [{ "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" }, "actions": moves }] });
        self.session_call("POST", "/actions", Some(actions));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http::request(&self.addr, "DELETE", &format!("/session/{}", self.session), None);
        }
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

/// Polls `ready` every 100 ms until it holds; panics after `timeout`.
fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "chromedriver did not become ready in {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A base64 PNG from WebDriver, as RGBA.
fn decode_png(value: &Value) -> Image {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().expect("base64 text")).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgba = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| match channels {
            4 => [p[0], p[1], p[2], p[3]],
            3 => [p[0], p[1], p[2], 255],
            _ => [p[0], p[0], p[0], 255],
        })
        .collect();
    Image { width: info.width as usize, height: info.height as usize, rgba }
}
