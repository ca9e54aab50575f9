//! A vsmartcard `vpcd` client: the virtual card side of pcscd's vpcd driver
//! (docs/protocol.md §10).
//!
//! vpcd listens on TCP (35963 for its first slot) and the card connects to
//! it. Both directions carry frames `u16 big-endian length ‖ payload`. A
//! one-byte frame from vpcd is a control message: `00` power off, `01` power
//! on, `02` reset (no reply), `04` get ATR (reply: the ATR). Any other frame
//! is a command APDU, answered with one frame: response data ‖ SW1 SW2.
//!
//! [`Client::run`] keeps the card connected: it reconnects with a backoff when
//! vpcd is not there yet or the connection drops (pcscd restarted), and it
//! returns once the stop flag is set: checked before every frame is read and
//! at least every poll interval while waiting, so a stop takes effect within
//! one APDU however busy the clients keep the card.
//!
//! The card serves one APDU at a time, as a device's single APDU core does:
//! the next frame is read only after the response left. With a
//! [`Latency`] each response is held until its modelled time after the
//! command arrived; a stop cuts the hold short (the response still leaves,
//! then the client returns).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::latency::Latency;

/// Control byte: power off (no reply).
pub const CTRL_POWER_OFF: u8 = 0x00;
/// Control byte: power on (no reply).
pub const CTRL_POWER_ON: u8 = 0x01;
/// Control byte: reset (no reply).
pub const CTRL_RESET: u8 = 0x02;
/// Control byte: get ATR (reply: one frame with the ATR).
pub const CTRL_GET_ATR: u8 = 0x04;

/// Largest payload a frame can carry.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// What a virtual card must do for vpcd. Implemented by [`picohsm_firmware::Card`].
pub trait VirtualCard {
    /// The answer to reset.
    fn atr(&self) -> Vec<u8>;
    /// Power on; clears volatile state.
    fn power_on(&mut self);
    /// Power off; clears volatile state.
    fn power_off(&mut self);
    /// Warm reset; by default a power cycle.
    fn reset(&mut self) {
        self.power_off();
        self.power_on();
    }
    /// One command APDU in, response data ‖ SW1 SW2 out.
    fn transmit(&mut self, command: &[u8]) -> Vec<u8>;
}

impl VirtualCard for picohsm_firmware::Card {
    fn atr(&self) -> Vec<u8> {
        picohsm_firmware::Card::atr(self).to_vec()
    }
    fn power_on(&mut self) {
        picohsm_firmware::Card::power_on(self)
    }
    fn power_off(&mut self) {
        picohsm_firmware::Card::power_off(self)
    }
    fn reset(&mut self) {
        // `power_on` is also the reset: it clears the volatile state.
        picohsm_firmware::Card::power_on(self)
    }
    fn transmit(&mut self, command: &[u8]) -> Vec<u8> {
        picohsm_firmware::Card::transmit(self, command)
    }
}

/// One frame from vpcd, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `00`
    PowerOff,
    /// `01`
    PowerOn,
    /// `02`
    Reset,
    /// `04`
    GetAtr,
    /// Another one-byte frame (not defined by vpcd; ignored, no reply).
    UnknownControl(u8),
    /// Any frame whose length is not 1.
    Apdu(&'a [u8]),
}

impl<'a> Request<'a> {
    /// Classifies a frame payload.
    pub fn decode(payload: &'a [u8]) -> Request<'a> {
        match payload {
            [CTRL_POWER_OFF] => Request::PowerOff,
            [CTRL_POWER_ON] => Request::PowerOn,
            [CTRL_RESET] => Request::Reset,
            [CTRL_GET_ATR] => Request::GetAtr,
            [b] => Request::UnknownControl(*b),
            apdu => Request::Apdu(apdu),
        }
    }
}

/// Applies one request to the card; returns the reply payload, if any.
/// Command and response APDUs are written to `log` when there is one.
pub fn dispatch<C: VirtualCard + ?Sized>(
    card: &mut C,
    payload: &[u8],
    log: Option<&mut ApduLog>,
) -> Option<Vec<u8>> {
    match Request::decode(payload) {
        Request::PowerOff => {
            log::debug!("vpcd: power off");
            card.power_off();
            None
        }
        Request::PowerOn => {
            log::debug!("vpcd: power on");
            card.power_on();
            None
        }
        Request::Reset => {
            log::debug!("vpcd: reset");
            card.reset();
            None
        }
        Request::GetAtr => Some(card.atr()),
        Request::UnknownControl(b) => {
            log::warn!("vpcd: unknown control byte {b:02X} ignored");
            None
        }
        Request::Apdu(apdu) => {
            let mut log = log;
            if let Some(l) = log.as_deref_mut() {
                l.command(apdu);
            }
            let mut resp = card.transmit(apdu);
            if resp.len() > MAX_FRAME || resp.len() < 2 {
                log::error!(
                    "card returned a {}-byte response, which cannot be framed; answering 6F00",
                    resp.len()
                );
                resp = vec![0x6F, 0x00];
            }
            if let Some(l) = log {
                l.response(&resp);
            }
            Some(resp)
        }
    }
}

/// Formats `bytes` as a log line: `prefix` then uppercase hex pairs, each
/// preceded by a space (`> 00 A4 04 00`).
pub fn hex_line(prefix: &str, bytes: &[u8]) -> String {
    let mut s = String::with_capacity(prefix.len() + 3 * bytes.len() + 1);
    s.push_str(prefix);
    for b in bytes {
        s.push_str(&format!(" {b:02X}"));
    }
    s.push('\n');
    s
}

/// The APDU log: one line per command (`> …`) and per response (`< …`),
/// appended and flushed line by line. By design it holds PINs and every
/// other secret that crosses the interface in clear.
#[derive(Debug)]
pub struct ApduLog {
    file: File,
}

impl ApduLog {
    /// Opens (creating, mode 0600) `path` for appending.
    pub fn open(path: &Path) -> io::Result<ApduLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(ApduLog { file })
    }

    fn line(&mut self, prefix: &str, bytes: &[u8]) {
        let line = hex_line(prefix, bytes);
        if let Err(e) = self
            .file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
        {
            log::error!("cannot write the APDU log: {e}");
        }
    }

    /// Logs a command APDU.
    pub fn command(&mut self, apdu: &[u8]) {
        self.line(">", apdu)
    }

    /// Logs a response APDU.
    pub fn response(&mut self, apdu: &[u8]) {
        self.line("<", apdu)
    }
}

/// Writes one frame (`u16 BE length ‖ payload`) in a single write.
pub fn write_frame<W: Write>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 65535 bytes")
    })?;
    let mut buf = Vec::with_capacity(2 + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Why reading a frame stopped without a frame.
#[derive(Debug)]
pub enum ReadError {
    /// The stop flag was set while waiting.
    Stopped,
    /// The peer closed the connection (at a frame boundary or inside one).
    Closed,
    /// Any other socket error.
    Io(io::Error),
}

/// Fills `buf` from `r`, where `r` has a read timeout: timeouts only check
/// the stop flag and go on waiting, so a frame split across timeouts is
/// still read whole.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8], stop: &AtomicBool) -> Result<(), ReadError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => filled += n,
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {
                    if stop.load(Ordering::Relaxed) {
                        return Err(ReadError::Stopped);
                    }
                }
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => return Err(ReadError::Closed),
                _ => return Err(ReadError::Io(e)),
            },
        }
    }
    Ok(())
}

/// Reads one frame; `read_full` handles the timeouts.
pub fn read_frame<R: Read>(r: &mut R, stop: &AtomicBool) -> Result<Vec<u8>, ReadError> {
    let mut len = [0u8; 2];
    read_full(r, &mut len, stop)?;
    let mut payload = vec![0u8; u16::from_be_bytes(len) as usize];
    read_full(r, &mut payload, stop)?;
    Ok(payload)
}

/// Timing of a [`Client`].
#[derive(Debug, Clone)]
pub struct Timing {
    /// First reconnect delay; doubled after each failure.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Socket read timeout: how often the stop flag is looked at.
    pub poll: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Socket write timeout (vpcd not reading is a dead connection).
    pub write_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            poll: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`TcpStream`] reader that asks the kernel to acknowledge received data
/// at once. vpcd writes a frame's length and its payload in two writes and
/// Nagle's algorithm holds the payload back until the length is acknowledged;
/// with delayed ACKs (~40 ms on Linux) every frame would wait that long.
/// Linux drops out of quick-ACK mode by itself, hence the call before each
/// read.
struct QuickAck<'a>(&'a TcpStream);

impl Read for QuickAck<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Only a latency optimisation: ignore failures.
            let _ = socket2::SockRef::from(self.0).set_tcp_quickack(true);
        }
        let mut s = self.0;
        s.read(buf)
    }
}

/// How one connection ended.
#[derive(Debug)]
enum End {
    Stopped,
    Lost(String),
}

/// Connects a [`VirtualCard`] to vpcd and serves it until stopped.
pub struct Client<C: VirtualCard> {
    card: C,
    host: String,
    port: u16,
    apdu_log: Option<ApduLog>,
    stop: Arc<AtomicBool>,
    timing: Timing,
    latency: Latency,
}

impl<C: VirtualCard> Client<C> {
    /// A client for `host:port`; [`Client::run`] returns once `stop` is set.
    pub fn new(card: C, host: impl Into<String>, port: u16, stop: Arc<AtomicBool>) -> Client<C> {
        Client {
            card,
            host: host.into(),
            port,
            apdu_log: None,
            stop,
            timing: Timing::default(),
            latency: Latency::default(),
        }
    }

    /// Logs every APDU exchange to `log`.
    pub fn with_apdu_log(mut self, log: ApduLog) -> Client<C> {
        self.apdu_log = Some(log);
        self
    }

    /// Replaces the default timing.
    pub fn with_timing(mut self, timing: Timing) -> Client<C> {
        self.timing = timing;
        self
    }

    /// Holds every response as `latency` says (none by default).
    pub fn with_latency(mut self, latency: Latency) -> Client<C> {
        self.latency = latency;
        self
    }

    /// The card.
    pub fn card(&self) -> &C {
        &self.card
    }

    /// Gives the card back.
    pub fn into_card(self) -> C {
        self.card
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `d`, waking early when stopped. Returns whether stopped.
    fn sleep(&self, d: Duration) -> bool {
        self.sleep_until(Instant::now() + d)
    }

    /// Sleeps until `until`, waking early when stopped: the flag is looked
    /// at every 50 ms at most, so a signal ends a long hold promptly
    /// without a busy wait. Returns whether stopped.
    fn sleep_until(&self, until: Instant) -> bool {
        loop {
            if self.stopped() {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host name has no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timing.connect_timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connects, serves, reconnects with backoff; returns when stopped.
    pub fn run(&mut self) {
        let mut backoff = self.timing.backoff_min;
        let mut failures: u32 = 0;
        log::info!("connecting to vpcd at {}:{}", self.host, self.port);
        while !self.stopped() {
            match self.connect() {
                Ok(stream) => {
                    log::info!("connected to vpcd at {}:{}", self.host, self.port);
                    failures = 0;
                    backoff = self.timing.backoff_min;
                    let end = self.serve(stream);
                    // Whatever happened, the card left the reader.
                    self.card.power_off();
                    match end {
                        End::Stopped => break,
                        End::Lost(why) => {
                            log::warn!("connection to vpcd lost ({why}); reconnecting");
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        log::warn!(
                            "cannot connect to vpcd at {}:{} ({e}); is pcscd running with the vpcd driver? retrying",
                            self.host,
                            self.port
                        );
                    } else {
                        log::debug!("connect attempt {failures} failed: {e}");
                    }
                }
            }
            if self.sleep(backoff) {
                break;
            }
            backoff = (backoff * 2).min(self.timing.backoff_max);
        }
        log::info!("stopped");
    }

    fn serve(&mut self, mut stream: TcpStream) -> End {
        let setup = stream
            .set_read_timeout(Some(self.timing.poll))
            .and_then(|_| stream.set_write_timeout(Some(self.timing.write_timeout)))
            .and_then(|_| stream.set_nodelay(true));
        if let Err(e) = setup {
            return End::Lost(format!("socket setup: {e}"));
        }
        loop {
            // At every frame boundary, not only when a read times out: a
            // client that keeps the card busy leaves no quiet poll interval,
            // and the card must still stop within one APDU of the signal.
            // The APDU in progress has been answered (and its image stored).
            if self.stopped() {
                return End::Stopped;
            }
            let payload = match read_frame(&mut QuickAck(&stream), &self.stop) {
                Ok(p) => p,
                Err(ReadError::Stopped) => return End::Stopped,
                Err(ReadError::Closed) => return End::Lost("closed by peer".into()),
                Err(ReadError::Io(e)) => return End::Lost(e.to_string()),
            };
            // The modelled time counts from here, so the card's own compute
            // time is part of it, not added to it.
            let arrived = Instant::now();
            if let Some(reply) = dispatch(&mut self.card, &payload, self.apdu_log.as_mut()) {
                // Only APDUs cross the device's USB link; vpcd's control
                // frames are the reader's business.
                if matches!(Request::decode(&payload), Request::Apdu(_)) {
                    let hold = self.latency.hold(&payload, &reply);
                    if !hold.is_zero() {
                        // Stopped: the response leaves at once, then the
                        // loop ends at the frame boundary.
                        self.sleep_until(arrived + hold);
                    }
                }
                if let Err(e) = write_frame(&mut stream, &reply) {
                    return End::Lost(format!("write: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::thread;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        On,
        Off,
        Reset,
        Apdu(Vec<u8>),
    }

    #[derive(Clone, Default)]
    struct Fake {
        events: Arc<Mutex<Vec<Ev>>>,
    }

    impl VirtualCard for Fake {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x80, 0x80, 0x01, 0x01]
        }
        fn power_on(&mut self) {
            self.events.lock().unwrap().push(Ev::On)
        }
        fn power_off(&mut self) {
            self.events.lock().unwrap().push(Ev::Off)
        }
        fn reset(&mut self) {
            self.events.lock().unwrap().push(Ev::Reset)
        }
        fn transmit(&mut self, c: &[u8]) -> Vec<u8> {
            self.events.lock().unwrap().push(Ev::Apdu(c.to_vec()));
            // Echo the command back as data, then 90 00.
            let mut r = c.to_vec();
            r.extend_from_slice(&[0x90, 0x00]);
            r
        }
    }

    fn fast() -> Timing {
        Timing {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            poll: Duration::from_millis(30),
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(2),
        }
    }

    fn temp_file(name: &str) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("picohsm-vpcd-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// vpcd's side of an exchange.
    fn send(s: &mut TcpStream, payload: &[u8]) {
        write_frame(s, payload).unwrap();
    }

    fn recv(s: &mut TcpStream) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        read_frame(s, &AtomicBool::new(false)).unwrap()
    }

    /// Nothing more arrives within a short while.
    fn assert_silent(s: &mut TcpStream) {
        s.set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected no reply, got {other:?}"),
        }
    }

    #[test]
    fn decode_classifies_frames() {
        assert_eq!(Request::decode(&[0]), Request::PowerOff);
        assert_eq!(Request::decode(&[1]), Request::PowerOn);
        assert_eq!(Request::decode(&[2]), Request::Reset);
        assert_eq!(Request::decode(&[4]), Request::GetAtr);
        assert_eq!(Request::decode(&[3]), Request::UnknownControl(3));
        assert_eq!(Request::decode(&[0, 0]), Request::Apdu(&[0, 0]));
        assert_eq!(Request::decode(&[]), Request::Apdu(&[]));
    }

    #[test]
    fn hex_line_format() {
        assert_eq!(hex_line(">", &[0x00, 0xA4, 0x04, 0x00]), "> 00 A4 04 00\n");
        assert_eq!(hex_line("<", &[0x90, 0x00]), "< 90 00\n");
        assert_eq!(hex_line(">", &[]), ">\n");
    }

    #[test]
    fn frame_round_trip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &[0xAA, 0xBB, 0xCC]).unwrap();
        assert_eq!(buf, [0x00, 0x03, 0xAA, 0xBB, 0xCC]);
        let big = vec![0x55; MAX_FRAME];
        let mut buf = Vec::new();
        write_frame(&mut buf, &big).unwrap();
        assert_eq!(&buf[..2], &[0xFF, 0xFF]);
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r, &AtomicBool::new(false)).unwrap(), big);
        assert!(write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]).is_err());
        // A frame cut short by the peer is a closed connection.
        let mut r: &[u8] = &[0x00, 0x05, 0x01];
        assert!(matches!(
            read_frame(&mut r, &AtomicBool::new(false)),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn dispatch_logs_apdus_only() {
        let path = temp_file("dispatch.apdu.txt");
        let mut log = ApduLog::open(&path).unwrap();
        let mut card = Fake::default();
        assert_eq!(dispatch(&mut card, &[4], Some(&mut log)), Some(card.atr()));
        assert_eq!(dispatch(&mut card, &[1], Some(&mut log)), None);
        assert_eq!(
            dispatch(&mut card, &[0x00, 0xA4, 0x04, 0x00], Some(&mut log)),
            Some(vec![0x00, 0xA4, 0x04, 0x00, 0x90, 0x00])
        );
        assert_eq!(dispatch(&mut card, &[7], Some(&mut log)), None);
        drop(log);
        // Appends to an existing log.
        let mut log = ApduLog::open(&path).unwrap();
        dispatch(&mut card, &[0x80, 0x50, 0x00, 0x00, 0x00], Some(&mut log));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "> 00 A4 04 00\n< 00 A4 04 00 90 00\n> 80 50 00 00 00\n< 80 50 00 00 00 90 00\n"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn serves_vpcd_and_reconnects_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = Fake::default();
        let events = fake.events.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let log_path = temp_file("serve.apdu.txt");
        let client = Client::new(fake, "127.0.0.1", port, stop.clone())
            .with_apdu_log(ApduLog::open(&log_path).unwrap())
            .with_timing(fast());
        let t = thread::spawn(move || {
            let mut c = client;
            c.run();
        });

        // First connection: what pcscd does on card insertion.
        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[CTRL_GET_ATR]);
        assert_eq!(recv(&mut s), vec![0x3B, 0x80, 0x80, 0x01, 0x01]);
        send(&mut s, &[CTRL_POWER_ON]);
        assert_silent(&mut s);
        send(&mut s, &[CTRL_GET_ATR]);
        assert_eq!(recv(&mut s).len(), 5);
        // A command APDU, with the frame split across several read timeouts.
        s.write_all(&[0x00]).unwrap();
        thread::sleep(Duration::from_millis(100));
        s.write_all(&[0x05, 0x00, 0xB0]).unwrap();
        thread::sleep(Duration::from_millis(100));
        s.write_all(&[0x00, 0x00, 0x10]).unwrap();
        assert_eq!(recv(&mut s), vec![0x00, 0xB0, 0x00, 0x00, 0x10, 0x90, 0x00]);
        // An extended-length APDU (length > 255).
        let mut ext = vec![0x80, 0x68, 0x01, 0x02, 0x00, 0x01, 0x00];
        ext.extend(std::iter::repeat_n(0xEE, 256));
        send(&mut s, &ext);
        let r = recv(&mut s);
        assert_eq!(&r[..ext.len()], &ext[..]);
        assert_eq!(&r[ext.len()..], &[0x90, 0x00]);
        send(&mut s, &[CTRL_RESET]);
        send(&mut s, &[CTRL_POWER_OFF]);
        assert_silent(&mut s);
        // pcscd goes away: the client must come back.
        drop(s);
        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[CTRL_GET_ATR]);
        assert_eq!(recv(&mut s).len(), 5);
        // Now the listener disappears for a while (pcscd restarting).
        drop(s);
        drop(listener);
        thread::sleep(Duration::from_millis(300));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[0x00, 0xCA, 0x01, 0x02]);
        assert_eq!(recv(&mut s), vec![0x00, 0xCA, 0x01, 0x02, 0x90, 0x00]);

        // Stop while idle on an open connection.
        let t0 = Instant::now();
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2));

        let ev = events.lock().unwrap().clone();
        assert_eq!(
            ev,
            vec![
                Ev::On,
                Ev::Apdu(vec![0x00, 0xB0, 0x00, 0x00, 0x10]),
                Ev::Apdu(ext.clone()),
                Ev::Reset,
                Ev::Off,
                Ev::Off, // connection lost
                Ev::Off, // connection lost
                Ev::Apdu(vec![0x00, 0xCA, 0x01, 0x02]),
                Ev::Off, // stopped
            ]
        );
        let text = std::fs::read_to_string(&log_path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "> 00 B0 00 00 10");
        assert_eq!(lines[1], "< 00 B0 00 00 10 90 00");
        assert_eq!(lines[5], "< 00 CA 01 02 90 00");
        let _ = std::fs::remove_file(&log_path);
    }

    #[test]
    fn stops_within_one_apdu_while_busy() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        // A poll interval far longer than the test: only the check at the
        // frame boundary can stop the client in time.
        let timing = Timing {
            poll: Duration::from_secs(30),
            ..fast()
        };
        let mut client =
            Client::new(Fake::default(), "127.0.0.1", port, stop.clone()).with_timing(timing);
        let t = thread::spawn(move || client.run());
        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[CTRL_POWER_ON]);
        // vpcd sends APDUs back to back: the card is never idle.
        for _ in 0..50 {
            send(&mut s, &[0x00, 0xB0, 0x00, 0x00, 0x10]);
            assert_eq!(recv(&mut s).len(), 7);
        }
        let t0 = Instant::now();
        stop.store(true, Ordering::Relaxed);
        let mut answered_after_stop = 0;
        loop {
            if write_frame(&mut s, &[0x00, 0xB0, 0x00, 0x00, 0x10]).is_err() {
                break;
            }
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            match read_frame(&mut s, &AtomicBool::new(false)) {
                Ok(_) => answered_after_stop += 1,
                Err(_) => break,
            }
            assert!(answered_after_stop <= 1, "still answering after the stop");
        }
        t.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    /// A client serving `fake` with `latency`, and vpcd's end of its
    /// connection, powered on.
    fn held(
        fake: Fake,
        latency: Latency,
        stop: Arc<AtomicBool>,
    ) -> (thread::JoinHandle<()>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = Client::new(fake, "127.0.0.1", port, stop)
            .with_timing(fast())
            .with_latency(latency);
        let t = thread::spawn(move || client.run());
        let (mut s, _) = listener.accept().unwrap();
        send(&mut s, &[CTRL_POWER_ON]);
        (t, s)
    }

    #[test]
    fn latency_holds_each_response_from_its_command() {
        let stop = Arc::new(AtomicBool::new(false));
        let latency = Latency::new(80, None);
        let (t, mut s) = held(Fake::default(), latency, stop.clone());
        // Control frames are not held: the ATR comes back first, whatever
        // the latency (a lower bound only is asserted below).
        send(&mut s, &[CTRL_GET_ATR]);
        assert_eq!(recv(&mut s).len(), 5);
        for _ in 0..3 {
            let t0 = Instant::now();
            send(&mut s, &[0x00, 0xB0, 0x00, 0x00, 0x10]);
            assert_eq!(recv(&mut s).len(), 7);
            assert!(
                t0.elapsed() >= Duration::from_millis(80),
                "{:?}",
                t0.elapsed()
            );
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn stop_cuts_a_held_response_short() {
        let fake = Fake::default();
        let events = fake.events.clone();
        let stop = Arc::new(AtomicBool::new(false));
        // Far longer than the test may take.
        let latency = Latency::new(600_000, None);
        let (t, mut s) = held(fake, latency, stop.clone());
        send(&mut s, &[0x00, 0xB0, 0x00, 0x00, 0x10]);
        // The card has answered; the response is now being held.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Ev::Apdu(_)))
        {
            assert!(Instant::now() < deadline, "the APDU never reached the card");
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        // The response still leaves, then the client ends.
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(
            read_frame(&mut s, &AtomicBool::new(false)).unwrap(),
            vec![0x00, 0xB0, 0x00, 0x00, 0x10, 0x90, 0x00]
        );
        t.join().unwrap();
    }

    #[test]
    fn stops_while_nothing_listens() {
        // A port with nothing behind it: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let mut client =
            Client::new(Fake::default(), "127.0.0.1", port, stop.clone()).with_timing(fast());
        let t = thread::spawn(move || client.run());
        thread::sleep(Duration::from_millis(250));
        let t0 = Instant::now();
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
