//! Helpers of the removal, reset and pcscd-restart cases
//! (`tests/reliability_removal_e2e.rs`).

use std::time::{Duration, Instant};

use super::*;

/// SIGKILLs the card's process (a pulled device) without waiting for pcscd
/// to notice; [`VCard::start_again`] plugs it back.
pub fn pull(card: &mut VCard) {
    if let Some(mut c) = card.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Whether pcscd shows a card in `card`'s reader.
pub fn present(card: &VCard) -> Option<bool> {
    card_present(card.reader)
}

/// Waits (at most 20 s) until pcscd shows `card`'s reader with or without a card.
pub fn wait_presence(card: &mut VCard, present: bool) {
    card.wait_presence(present);
}

/// Elapsed since `t`, in milliseconds.
pub fn ms(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

/// Sleeps `d`.
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

/// The running pcscd's process id, if any.
pub fn pcscd_pid() -> Option<u32> {
    let out = run_allow_fail("pgrep", ["-x", "pcscd"]);
    stdout(&out)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
}

/// Restarts pcscd as `scripts/setup-env.sh` starts it (SIGTERM, wait until
/// it is gone, then the script), and waits until its 8 readers are back.
///
/// The script runs with every descriptor above stderr closed: the new
/// pcscd is a daemon that would otherwise keep whatever this process
/// inherited, such as the `flock` descriptor of /tmp/picohsm-e2e.lock
/// that e2e runs hold, and hold that lock for as long as it runs.
pub fn restart_pcscd() {
    if let Some(pid) = pcscd_pid() {
        run("kill", ["-TERM", &pid.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while pcscd_pid() == Some(pid) {
            assert!(Instant::now() < deadline, "pcscd (pid {pid}) did not stop");
            pause(Duration::from_millis(50));
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-env.sh");
    let close_and_run = r#"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec "$0""#;
    run("bash", ["-c", close_and_run, &s(&script)]);
}
