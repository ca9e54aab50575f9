//! Output: human text on stdout, or one JSON object (`--json`); step
//! reports and progress on stderr in JSON mode, so stdout stays parseable.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fail::Failure;

/// Where a command's text goes.
pub struct Out {
    json: bool,
    steps: Vec<String>,
}

impl Out {
    /// Human output, or JSON with `json`.
    pub fn new(json: bool) -> Out {
        Out {
            json,
            steps: Vec::new(),
        }
    }

    /// A line of the human result (nothing in JSON mode: the value carries it).
    pub fn line(&mut self, s: impl AsRef<str>) {
        if !self.json {
            println!("{}", s.as_ref());
        }
    }

    /// One step of a longer operation: shown as it happens (stdout for a
    /// person, stderr in JSON mode) and listed in the JSON result.
    pub fn step(&mut self, s: impl Into<String>) {
        let s = s.into();
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
        let _ = std::io::stdout().flush();
        self.steps.push(s);
    }

    /// A warning: stderr in both modes.
    pub fn warn(&mut self, s: impl AsRef<str>) {
        eprintln!("warning: {}", s.as_ref());
    }

    /// Prints the JSON result (with `"ok": true` and the steps).
    pub fn finish(&mut self, value: Value) {
        if !self.json {
            return;
        }
        let mut v = match value {
            Value::Object(m) => Value::Object(m),
            Value::Null => json!({}),
            other => json!({ "result": other }),
        };
        v["ok"] = json!(true);
        if !self.steps.is_empty() {
            v["steps"] = json!(self.steps);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }

    /// Reports a failure: the message and what to do on stderr, and the
    /// JSON error object on stdout in JSON mode.
    pub fn fail(&mut self, f: &Failure) {
        eprintln!("picohsm-tool: error: {}", f.message);
        if let Some(h) = &f.hint {
            eprintln!("  what to do: {h}");
        }
        if self.json {
            let v = json!({
                "ok": false,
                "exit_code": f.code,
                "error": f.message,
                "hint": f.hint,
                "sw": f.sw.map(|s| format!("{s:04X}")),
                "tries_left": f.tries_left,
                "steps": self.steps,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
}

/// A progress report for an operation that can take long (RSA generation
/// on the device, waiting for a token): a ticking line on a terminal, one
/// line at start and end otherwise. Ends when dropped.
pub struct Progress {
    what: String,
    start: Instant,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    tty: bool,
}

impl Progress {
    /// Starts reporting `what` on stderr.
    pub fn start(what: impl Into<String>) -> Progress {
        let what = what.into();
        let tty = std::io::stderr().is_terminal();
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let ticker = if tty {
            let (stop, what) = (stop.clone(), what.clone());
            Some(std::thread::spawn(move || {
                let spin = ['|', '/', '-', '\\'];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    eprint!(
                        "\r{} {what} ({} s)  ",
                        spin[i % 4],
                        start.elapsed().as_secs()
                    );
                    let _ = std::io::stderr().flush();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
            }))
        } else {
            eprintln!("{what} …");
            None
        };
        Progress {
            what,
            start,
            stop,
            ticker,
            tty,
        }
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{}: {:.1} s", self.what, self.elapsed());
    }
}
