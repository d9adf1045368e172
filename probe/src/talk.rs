//! The TSN talker and listener: a talker marks its socket as a time-sensitive application
//! does (`IP_TOS` first, since setting it overwrites the socket priority, then
//! `SO_PRIORITY`) and sends UDP datagrams or a TCP stream; the listener, beside the echo
//! server on the same port, counts the datagrams it receives per talker tag.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

/// Where a serving probe says what its UDP listener heard.
pub const HEARD_PATH: &str = "/__probe/heard";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// What a talker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkOptions {
    pub to: SocketAddr,
    pub transport: Transport,
    /// `SO_PRIORITY`: the paper's 1 and 2 for time-sensitive classes, 0 for best effort.
    pub priority: u32,
    /// `IP_TOS`, set before the priority (it would overwrite it).
    pub tos: Option<u32>,
    /// Datagrams (UDP) or writes of `payload` bytes (TCP).
    pub count: u64,
    pub payload: usize,
    /// Names the talker in its payload, so a listener counts it apart from others.
    pub tag: String,
    /// UDP only: `SO_TXTIME` on CLOCK_TAI, and each datagram's delivery time (`SCM_TXTIME`)
    /// this long after it is sent, as a TSN talker asks an etf or taprio qdisc for.
    pub txtime_delay: Option<Duration>,
    /// Before each of its packets, one UDP datagram to each of these, with its own
    /// priority: traffic interleaved with the talker's, packet by packet.
    pub interleave: Vec<Interleaved>,
}

/// A datagram sent before each of a talker's packets, with a priority of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interleaved {
    pub to: SocketAddr,
    pub priority: u32,
}

impl std::fmt::Display for Interleaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.to, self.priority)
    }
}

impl std::str::FromStr for Interleaved {
    type Err = String;

    /// `<address>:<port>@<priority>`, as the probe's `--interleave` takes it.
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || format!("`{text}`: expected <address>:<port>@<priority>, e.g. 10.244.1.3:8081@1");
        let (to, priority) = text.rsplit_once('@').ok_or_else(expected)?;
        Ok(Self { to: to.parse().map_err(|_| expected())?, priority: priority.parse().map_err(|_| expected())? })
    }
}

impl TalkOptions {
    /// The probe command line that sends this.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["talk".to_owned(), self.to.to_string(), "--transport".into(), format!("{:?}", self.transport).to_lowercase()];
        args.extend([
            "--priority".into(),
            self.priority.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--payload".into(),
            self.payload.to_string(),
            "--tag".into(),
            self.tag.clone(),
        ]);
        if let Some(tos) = self.tos {
            args.extend(["--tos".into(), tos.to_string()]);
        }
        if let Some(delay) = self.txtime_delay {
            args.extend(["--txtime-delay-us".into(), delay.as_micros().to_string()]);
        }
        for other in &self.interleave {
            args.extend(["--interleave".into(), other.to_string()]);
        }
        args
    }
}

/// What a talker did, with the socket options read back after setting them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TalkReport {
    pub transport: Transport,
    /// The tag its payload carried, under which a listener counts it.
    #[serde(default)]
    pub tag: String,
    pub sent: u64,
    pub bytes: u64,
    /// `SO_PRIORITY` as the socket holds it after every option was set.
    pub priority: u32,
    pub tos: Option<u32>,
    /// The delivery time of the first datagram (CLOCK_TAI, ns), when SO_TXTIME was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_txtime_ns: Option<u64>,
    /// Datagrams sent interleaved with the talker's packets (`TalkOptions::interleave`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interleaved: u64,
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Marks a socket as the talker asks: TOS first, then the priority.
fn marked_socket(options: &TalkOptions) -> std::io::Result<Socket> {
    let (kind, protocol) = match options.transport {
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
    };
    let socket = Socket::new(Domain::for_address(options.to), kind, Some(protocol))?;
    if let Some(tos) = options.tos {
        socket.set_tos_v4(tos)?;
    }
    socket.set_priority(options.priority)?;
    Ok(socket)
}

/// The interleaved datagrams' sockets, each with its priority.
struct Interleaving {
    sockets: Vec<(Socket, SocketAddr)>,
    payload: Vec<u8>,
}

impl Interleaving {
    fn open(options: &TalkOptions) -> std::io::Result<Self> {
        let sockets = options
            .interleave
            .iter()
            .map(|other| {
                let socket = Socket::new(Domain::for_address(other.to), Type::DGRAM, Some(Protocol::UDP))?;
                socket.set_priority(other.priority)?;
                Ok((socket, other.to))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { sockets, payload: format!("talker={}-interleaved\n", options.tag).into_bytes() })
    }

    /// One datagram to each; a refusal (an ICMP error from a closed port) is no failure.
    fn send(&self, report: &mut TalkReport) {
        for (socket, to) in &self.sockets {
            if socket.send_to(&self.payload, &(*to).into()).is_ok() {
                report.interleaved += 1;
            }
        }
    }
}

/// Sends as `options` says and reports it.
pub fn talk(options: &TalkOptions) -> TalkReport {
    let mut report = TalkReport {
        transport: options.transport,
        tag: options.tag.clone(),
        sent: 0,
        bytes: 0,
        priority: 0,
        tos: None,
        first_txtime_ns: None,
        interleaved: 0,
        error: None,
    };
    let payload = {
        let mut payload = format!("talker={}\n", options.tag).into_bytes();
        payload.resize(options.payload.max(payload.len()), b'.');
        payload
    };
    let result = (|| -> std::io::Result<()> {
        let socket = marked_socket(options)?;
        let interleaving = Interleaving::open(options)?;
        report.priority = socket.priority()?;
        report.tos = options.tos.map(|_| socket.tos_v4()).transpose()?;
        match options.transport {
            Transport::Udp => {
                if options.txtime_delay.is_some() {
                    txtime::enable(&socket)?;
                }
                for _ in 0..options.count {
                    interleaving.send(&mut report);
                    report.bytes += match options.txtime_delay {
                        Some(delay) => {
                            let at = txtime::now_tai()? + delay.as_nanos() as u64;
                            report.first_txtime_ns.get_or_insert(at);
                            txtime::send_at(&socket, &payload, options.to, at)?
                        }
                        None => socket.send_to(&payload, &options.to.into())?,
                    } as u64;
                    report.sent += 1;
                }
            }
            Transport::Tcp => {
                socket.connect_timeout(&options.to.into(), Duration::from_secs(3))?;
                socket.set_tcp_nodelay(true)?;
                let mut stream: std::net::TcpStream = socket.into();
                let length = payload.len() as u64 * options.count;
                write!(stream, "POST /talk HTTP/1.1\r\nHost: {}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n", options.to)?;
                for _ in 0..options.count {
                    interleaving.send(&mut report);
                    stream.write_all(&payload)?;
                    report.bytes += payload.len() as u64;
                    report.sent += 1;
                }
                stream.flush()?;
                // Done sending; the answer (if any) is read, never waited for long.
                stream.shutdown(std::net::Shutdown::Write)?;
                stream.set_read_timeout(Some(Duration::from_secs(3)))?;
                let mut answer = Vec::new();
                let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
            }
        }
        Ok(())
    })();
    report.error = result.err().map(|e| e.to_string());
    report
}

/// `SO_TXTIME` and `SCM_TXTIME` (linux/net_tstamp.h), which socket2 does not cover.
mod txtime {
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use socket2::{SockAddr, Socket};

    /// asm-generic/socket.h; `SCM_TXTIME` is the same number.
    const SO_TXTIME: libc::c_int = 61;

    /// Delivery times on CLOCK_TAI, as etf and taprio's txtime-assist mode expect.
    pub fn enable(socket: &Socket) -> std::io::Result<()> {
        let config = libc::sock_txtime { clockid: libc::CLOCK_TAI, flags: 0 };
        // SAFETY: a valid socket, a pointer to a live value of the size given.
        let done = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_TXTIME,
                (&config as *const libc::sock_txtime).cast(),
                std::mem::size_of::<libc::sock_txtime>() as libc::socklen_t,
            )
        };
        match done {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    pub fn now_tai() -> std::io::Result<u64> {
        now(libc::CLOCK_TAI)
    }

    fn now(clock: libc::clockid_t) -> std::io::Result<u64> {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a pointer to a live timespec.
        match unsafe { libc::clock_gettime(clock, &mut now) } {
            0 => Ok(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// A CLOCK_REALTIME time on CLOCK_TAI: the two differ by the kernel's TAI offset, a
    /// whole number of seconds (0 until something sets it, 37 with a synchronised clock),
    /// read now and rounded to the second the two readings straddle.
    pub fn realtime_to_tai(realtime: u64) -> u64 {
        match (now(libc::CLOCK_TAI), now(libc::CLOCK_REALTIME)) {
            (Ok(tai), Ok(real)) => {
                let offset = (i128::from(tai) - i128::from(real) + 500_000_000).div_euclid(1_000_000_000) * 1_000_000_000;
                (i128::from(realtime) + offset) as u64
            }
            _ => realtime,
        }
    }

    /// `SO_TIMESTAMPNS`: every datagram carries the time the kernel received it.
    pub fn enable_receive_timestamps(socket: &std::net::UdpSocket) -> std::io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, a pointer to a live value of the size given.
        let done = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        match done {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// One datagram into `buffer`: its length and the kernel's receive time
    /// (CLOCK_REALTIME, ns) when the socket asked for one.
    pub fn receive(socket: &std::net::UdpSocket, buffer: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
        let mut control = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        // SAFETY: every pointer refers to a live buffer of the length given; cmsgs are
        // read only within msg_controllen, as the kernel filled it.
        unsafe {
            let mut message: libc::msghdr = std::mem::zeroed();
            message.msg_iov = &mut iov;
            message.msg_iovlen = 1;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = std::mem::size_of_val(&control) as _;
            let received = libc::recvmsg(socket.as_raw_fd(), &mut message, 0);
            if received < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut header = libc::CMSG_FIRSTHDR(&message);
            let mut stamp = None;
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let at = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<libc::timespec>());
                    stamp = Some(at.tv_sec as u64 * 1_000_000_000 + at.tv_nsec as u64);
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
            Ok((received as usize, stamp))
        }
    }

    /// Sends one datagram to `to` with `at` (CLOCK_TAI, ns) as its delivery time.
    pub fn send_at(socket: &Socket, payload: &[u8], to: SocketAddr, at: u64) -> std::io::Result<usize> {
        let address = SockAddr::from(to);
        let mut control = [0u8; 64];
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u64>() as u32) } as usize;
        let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
        // SAFETY: every pointer refers to a live buffer of the length given; the control
        // buffer holds one cmsg of CMSG_SPACE(8) bytes.
        unsafe {
            let mut message: libc::msghdr = std::mem::zeroed();
            message.msg_name = address.as_ptr() as *mut libc::c_void;
            message.msg_namelen = address.len();
            message.msg_iov = &mut iov;
            message.msg_iovlen = 1;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = space as _;
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = SO_TXTIME;
            (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u64>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<u64>(), at);
            match libc::sendmsg(socket.as_raw_fd(), &message, 0) {
                -1 => Err(std::io::Error::last_os_error()),
                sent => Ok(sent as usize),
            }
        }
    }
}

/// What a listener heard: UDP datagrams per talker tag, and when (CLOCK_TAI, ns: the
/// kernel's receive timestamp, `SO_TIMESTAMPNS`, moved from CLOCK_REALTIME to CLOCK_TAI;
/// the first [`TIMES_KEPT`] per tag), for gate-window checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heard {
    pub udp: BTreeMap<String, u64>,
    #[serde(default)]
    pub received_tai_ns: BTreeMap<String, Vec<u64>>,
}

/// Receive times kept per talker tag.
pub const TIMES_KEPT: usize = 1000;

/// Counts datagrams per talker tag (first line `talker=<tag>`).
#[derive(Debug, Default)]
pub struct Listener {
    heard: Mutex<Heard>,
}

impl Listener {
    /// Counts `datagram`, received at `at` (CLOCK_TAI, ns).
    pub fn record(&self, datagram: &[u8], at: u64) {
        let tag = datagram
            .split(|b| *b == b'\n')
            .next()
            .and_then(|line| line.strip_prefix(b"talker="))
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_else(|| "(untagged)".into());
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let times = heard.received_tai_ns.entry(tag.clone()).or_default();
        if times.len() < TIMES_KEPT {
            times.push(at);
        }
        *heard.udp.entry(tag).or_default() += 1;
    }

    pub fn heard(&self) -> Heard {
        self.heard.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Receives on `socket` until it fails, each datagram with the kernel's receive time
    /// (the time it reached the socket's host, not when this thread got to it); the time
    /// this thread read it where the kernel gives none.
    pub fn run(&self, socket: &std::net::UdpSocket) {
        let stamped = txtime::enable_receive_timestamps(socket).is_ok();
        let mut buffer = vec![0u8; 65536];
        while let Ok((n, stamp)) = txtime::receive(socket, &mut buffer) {
            let at = match (stamped, stamp) {
                (true, Some(realtime)) => txtime::realtime_to_tai(realtime),
                _ => txtime::now_tai().unwrap_or(0),
            };
            self.record(&buffer[..n], at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A listener on a local UDP port, receiving on a thread of its own.
    fn listening() -> (std::net::SocketAddr, Arc<Listener>) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let listener = Arc::new(Listener::default());
        let counting = Arc::clone(&listener);
        std::thread::spawn(move || counting.run(&socket));
        (to, listener)
    }

    /// The datagrams heard from `tag` once there are `expected` of them, or after 2 s.
    fn heard_within_2s(listener: &Listener, tag: &str, expected: u64) -> Option<u64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while listener.heard().udp.get(tag) != Some(&expected) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        listener.heard().udp.get(tag).copied()
    }

    #[test]
    fn the_priority_survives_the_tos_because_it_is_set_after_it() {
        let (to, listener) = listening();
        let options = TalkOptions {
            to,
            transport: Transport::Udp,
            priority: 2,
            tos: Some(0xb8),
            count: 20,
            payload: 200,
            tag: "prio2".into(),
            txtime_delay: None,
            interleave: vec![],
        };
        let report = talk(&options);
        assert_eq!((report.sent, report.priority, report.tos, report.error.as_deref()), (20, 2, Some(0xb8), None), "{report:?}");
        assert_eq!(heard_within_2s(&listener, "prio2", 20), Some(20));
    }

    #[test]
    fn a_talker_with_so_txtime_sends_each_datagram_with_a_delivery_time() {
        // Without an etf or taprio qdisc the kernel sends at once; the time still travels.
        let (to, listener) = listening();
        let before = txtime::now_tai().unwrap();
        let report = talk(&TalkOptions {
            to,
            transport: Transport::Udp,
            priority: 1,
            tos: None,
            count: 10,
            payload: 100,
            tag: "timed".into(),
            txtime_delay: Some(Duration::from_micros(40)),
            interleave: vec![],
        });
        assert_eq!((report.sent, report.error.as_deref()), (10, None), "{report:?}");
        let first = report.first_txtime_ns.expect("the delivery time is reported");
        assert!(first >= before + 40_000 && first < before + 2_000_000_000, "on CLOCK_TAI, 40 us after sending: {first} vs {before}");
        assert_eq!(heard_within_2s(&listener, "timed", 10), Some(10));
        let received = &listener.heard().received_tai_ns["timed"];
        assert_eq!(received.len(), 10, "each datagram timestamped");
        assert!(received.iter().all(|t| *t >= before && *t < before + 2_000_000_000), "on CLOCK_TAI, as received: {received:?}");
    }

    /// Waits until the kernel stamps `socket`'s datagrams as they arrive. The first socket
    /// on a machine to ask for receive times turns the kernel's stamping on in the
    /// background (`net_enable_timestamp`, a deferred static key); until then a datagram
    /// is stamped when it is read (Linux net/socket.c, `__sock_recv_timestamp`: "Race
    /// occurred between timestamp enabling and packet receiving. Fill in the current time
    /// for now."), which is what the test below must tell apart. Polls a
    /// datagram to itself, read 50 ms after it was sent, for at most 2 s.
    fn kernel_stamps_on_receipt(socket: &std::net::UdpSocket) {
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 64];
        loop {
            let sent = txtime::now_tai().unwrap();
            socket.send_to(b"warm-up", socket.local_addr().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let (_, stamp) = txtime::receive(socket, &mut buffer).unwrap();
            if stamp.is_some_and(|realtime| txtime::realtime_to_tai(realtime).abs_diff(sent) < 25_000_000) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(2), "the kernel did not stamp datagrams on receipt within 2 s of SO_TIMESTAMPNS");
        }
    }

    #[test]
    fn the_listener_keeps_the_kernel_s_receive_time_not_the_time_it_read_the_datagram() {
        // Sent before the listener starts reading: the kernel's time is the send's, the
        // reader's would be 300 ms later.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        txtime::enable_receive_timestamps(&socket).unwrap();
        kernel_stamps_on_receipt(&socket);
        let sent_at = txtime::now_tai().unwrap();
        talk(&TalkOptions {
            to,
            transport: Transport::Udp,
            priority: 0,
            tos: None,
            count: 3,
            payload: 50,
            tag: "early".into(),
            txtime_delay: None,
            interleave: vec![],
        });
        std::thread::sleep(Duration::from_millis(300));
        let listener = Arc::new(Listener::default());
        let reading = Arc::clone(&listener);
        std::thread::spawn(move || reading.run(&socket));
        assert_eq!(heard_within_2s(&listener, "early", 3), Some(3));
        let received = &listener.heard().received_tai_ns["early"];
        assert!(received.iter().all(|t| t.abs_diff(sent_at) < 100_000_000), "within 100 ms of sending, on CLOCK_TAI: {received:?} vs {sent_at}");
    }

    #[test]
    fn interleaved_datagrams_go_before_each_of_the_talker_s_packets_with_their_own_priority() {
        let (to, listener) = listening();
        let (beside, heard_beside) = listening();
        let options = TalkOptions {
            to,
            transport: Transport::Udp,
            priority: 0,
            tos: None,
            count: 7,
            payload: 64,
            tag: "main".into(),
            txtime_delay: None,
            interleave: vec![Interleaved { to: beside, priority: 1 }],
        };
        let report = talk(&options);
        assert_eq!((report.sent, report.interleaved, report.error.as_deref()), (7, 7, None), "{report:?}");
        assert_eq!(heard_within_2s(&listener, "main", 7), Some(7));
        assert_eq!(heard_within_2s(&heard_beside, "main-interleaved", 7), Some(7));
        assert_eq!(options.to_args()[options.to_args().len() - 2..], ["--interleave".to_owned(), format!("{beside}@1")]);
        assert!("10.0.0.1:8081".parse::<Interleaved>().unwrap_err().contains("expected <address>:<port>@<priority>"));
    }

    #[test]
    fn setting_the_tos_after_the_priority_would_lose_it() {
        // Why the order matters: the kernel recomputes the priority from the TOS.
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        socket.set_priority(2).unwrap();
        socket.set_tos_v4(0xb8).unwrap();
        assert_ne!(socket.priority().unwrap(), 2);
    }

    #[test]
    fn a_tcp_talker_streams_its_writes() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut stream, &mut all).unwrap();
            all.len()
        });
        let report = talk(&TalkOptions {
            to,
            transport: Transport::Tcp,
            priority: 1,
            tos: None,
            count: 10,
            payload: 1000,
            tag: "prio1".into(),
            txtime_delay: None,
            interleave: vec![],
        });
        assert_eq!((report.sent, report.bytes, report.priority, report.error), (10, 10_000, 1, None));
        assert!(reader.join().unwrap() > 10_000);
    }

    #[test]
    fn talk_options_round_trip_through_the_command_line() {
        let options = TalkOptions {
            to: "192.0.2.1:8080".parse().unwrap(),
            transport: Transport::Tcp,
            priority: 1,
            tos: Some(16),
            count: 5,
            payload: 64,
            tag: "t".into(),
            txtime_delay: None,
            interleave: vec![],
        };
        assert_eq!(options.to_args()[..4], ["talk", "192.0.2.1:8080", "--transport", "tcp"]);
    }
}
