//! Long-lived TCP connections held across a disruption (a CNI upgrade): every `serve` also
//! echoes bytes on [`HOLD_PORT`], and `cni-probe hold` keeps one connection to it open,
//! sends a byte every interval and waits for its echo, and reports the longest gap between
//! two echoes and how the connection ended (held to the end, reset, closed).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The echo port of every serving probe: beside the HTTP echo's 8080, and not 8081, the
/// echo's port + 1 that the suites call as a port where nothing listens.
pub const HOLD_PORT: u16 = 8090;

/// How a held connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum HoldEnd {
    /// Open and echoing until the holder stopped.
    Held,
    /// The peer (or something on the way) reset it.
    Reset { detail: String },
    /// The peer closed it.
    Closed,
    /// It was never open.
    NeverConnected { detail: String },
    /// Any other error.
    Failed { detail: String },
}

/// What one held connection saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldReport {
    pub to: SocketAddr,
    /// Bytes sent and echoed back.
    pub exchanges: u64,
    /// The longest time between two echoes (from the connection's start, and to its end).
    pub longest_gap_ms: u64,
    /// How long it was held.
    pub held_ms: u64,
    pub ended: HoldEnd,
}

/// Echoes what each connection sends, until the process ends.
pub fn echo(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let mut buffer = [0u8; 256];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

/// Holds one connection to `to` for `duration`, a byte every `interval`.
pub fn hold(to: SocketAddr, duration: Duration, interval: Duration) -> HoldReport {
    let started = Instant::now();
    let report = |exchanges, longest: Duration, ended| HoldReport {
        to,
        exchanges,
        longest_gap_ms: longest.as_millis() as u64,
        held_ms: started.elapsed().as_millis() as u64,
        ended,
    };
    let mut stream = match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
        Ok(stream) => stream,
        Err(e) => return report(0, Duration::ZERO, HoldEnd::NeverConnected { detail: e.to_string() }),
    };
    let _ = stream.set_nodelay(true);
    // Short reads, so a stalled connection is still timed and the end is kept.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = started + duration;
    let (mut exchanges, mut longest, mut last_echo) = (0u64, Duration::ZERO, Instant::now());
    let ended = 'held: loop {
        if Instant::now() >= deadline {
            break HoldEnd::Held;
        }
        if let Err(e) = stream.write_all(b"h") {
            break ended_by(&e);
        }
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte) {
                Ok(0) => break 'held HoldEnd::Closed,
                Ok(_) => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    if Instant::now() >= deadline {
                        break 'held HoldEnd::Held;
                    }
                }
                Err(e) => break 'held ended_by(&e),
            }
        }
        let now = Instant::now();
        longest = longest.max(now - last_echo);
        last_echo = now;
        exchanges += 1;
        std::thread::sleep(interval);
    };
    // A stall that lasted to the end is a gap too.
    longest = longest.max(Instant::now().min(deadline.max(last_echo)) - last_echo);
    report(exchanges, longest, ended)
}

fn ended_by(error: &std::io::Error) -> HoldEnd {
    match error.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => HoldEnd::Reset { detail: error.to_string() },
        _ => HoldEnd::Failed { detail: error.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_held_to_the_end_reports_short_gaps_and_a_reset_one_says_so() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        std::thread::spawn(move || echo(listener));
        let held = hold(to, Duration::from_millis(300), Duration::from_millis(10));
        assert_eq!(held.ended, HoldEnd::Held, "{held:?}");
        assert!(held.exchanges >= 10 && held.longest_gap_ms < 200, "{held:?}");

        // A server that stops echoing for 400 ms, then resets the connection.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut byte = [0u8; 1];
            for _ in 0..3 {
                stream.read_exact(&mut byte).unwrap();
                stream.write_all(&byte).unwrap();
            }
            std::thread::sleep(Duration::from_millis(400));
            // SO_LINGER 0: close with a reset.
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
        });
        let reset = hold(to, Duration::from_secs(2), Duration::from_millis(10));
        assert!(matches!(reset.ended, HoldEnd::Reset { .. }), "{reset:?}");
        assert!(reset.exchanges == 3 && reset.longest_gap_ms >= 350, "the stall before the reset is the longest gap: {reset:?}");

        let nobody = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(matches!(hold(nobody, Duration::from_millis(100), Duration::from_millis(10)).ended, HoldEnd::NeverConnected { .. }));
    }
}
