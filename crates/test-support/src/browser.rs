//! A page rendered by headless Chromium (Debian `chromium`): the DOM after its scripts ran, and
//! every message the page wrote to the console (errors, uncaught exceptions, failed loads).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::Guard;

/// What Chromium made of a page.
pub struct Rendered {
    /// The DOM, serialized, once the page's scripts and requests settled.
    pub dom: String,
    /// Console messages (`console.*`, uncaught exceptions, resources that failed to load).
    pub console: Vec<String>,
}

/// Loads `url` in headless Chromium, letting its scripts run for up to `budget` of virtual time;
/// `None` when Chromium is missing outside CI (see [`crate::prereq::require`]).
pub fn render(url: &str, budget: Duration) -> Option<Rendered> {
    let chromium = crate::prereq::require("chromium", "chromium")?;
    let profile = tempfile::tempdir().expect("a temporary Chromium profile");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--virtual-time-budget={}", budget.as_millis()))
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut guard = Guard::spawn(&mut cmd).expect("starting chromium");
    let mut stdout = guard.child().stdout.take().expect("piped stdout");
    let mut stderr = guard.child().stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut dom = String::new();
    stdout
        .read_to_string(&mut dom)
        .expect("reading chromium's DOM");
    assert!(
        guard.wait_timeout(Duration::from_secs(60)).is_some(),
        "chromium did not exit after dumping the DOM"
    );
    let log = err_reader.join().expect("stderr reader");
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    assert!(
        !dom.is_empty(),
        "chromium rendered nothing for {url}; its log:\n{log}"
    );
    Some(Rendered { dom, console })
}
