//! Stopping a running `picohsm-vcard` the ways a system does, for the
//! reliability tests of the virtual card (`tests/reliability_vcard_e2e.rs`):
//! SIGTERM with the time the process took to exit.
#![allow(dead_code)]

use std::process::ExitStatus;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::VCard;

impl VCard {
    /// The process id of the running `picohsm-vcard`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the card is running").id()
    }

    /// Sends SIGTERM and waits for the process to exit: how long it took
    /// from the signal to the exit, and its status; `None` when it was
    /// still running after `limit` (it is then killed with SIGKILL). Waits
    /// until pcscd sees the reader empty; the reader stays reserved, as
    /// after [`VCard::stop`].
    pub fn sigterm_timed(&mut self, limit: Duration) -> (Duration, Option<ExitStatus>) {
        let mut child = self.child.take().expect("the card is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let t0 = Instant::now();
        // SAFETY: kill(2) on our own child's pid, which has not been
        // waited for, so it cannot have been reused.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for picohsm-vcard") {
                break Some(status);
            }
            if t0.elapsed() > limit {
                break None;
            }
            sleep(Duration::from_millis(2));
        };
        let took = t0.elapsed();
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_presence(false);
        (took, status)
    }
}
