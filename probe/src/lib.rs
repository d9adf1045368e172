//! The probe: one small binary that runs in pods and on external hosts, like agnhost.
//!
//! `cni-probe serve` answers every HTTP request with the client's `ip:port` as the server
//! saw it (so after any SNAT) and its own name, as JSON. `cni-probe get` calls a URL and
//! prints one [`Observation`] as JSON: what was seen, or why nothing was (refused, timed
//! out, unreachable). Nothing here knows where it runs: a network namespace or a container.

pub mod attachments;
pub mod hold;
pub mod talk;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// What the echo server answers: the peer as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The client's address and port as seen by the server (after NAT).
    pub client: SocketAddr,
    /// The name the server was started with.
    pub server: String,
    /// The request path.
    pub path: String,
}

/// The outcome of one request, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Observation {
    /// The server answered; what it said.
    Answered { reply: EchoReply },
    /// The server answered with something that is not an echo reply.
    BadReply { status: u16, body: String },
    /// The connection was actively refused (RST): nothing listens, or a reject rule.
    Refused { detail: String },
    /// No answer in time: dropped somewhere on the way or on the way back.
    TimedOut { detail: String },
    /// The network said there is no route (ICMP unreachable, no route in the client).
    Unreachable { detail: String },
    /// Any other failure.
    Failed { detail: String },
}

impl Observation {
    /// A short name of the outcome, for messages and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Observation::Answered { .. } => "answered",
            Observation::BadReply { .. } => "bad reply",
            Observation::Refused { .. } => "refused",
            Observation::TimedOut { .. } => "timed out",
            Observation::Unreachable { .. } => "unreachable",
            Observation::Failed { .. } => "failed",
        }
    }
}

#[derive(Parser)]
#[command(name = "cni-probe", version, about = "Echo server and client for CNI conformance scenarios")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP echo until killed; print `listening on ADDR` once bound.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Name to answer with.
        #[arg(long, default_value = "probe")]
        name: String,
    },
    /// Send many requests at a concurrency and print a [`LoadReport`] as JSON.
    Load {
        url: String,
        #[arg(long, default_value_t = 100)]
        requests: u64,
        #[arg(long, default_value_t = 4)]
        concurrency: u64,
        /// Give up on one request after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
        /// Count the values of this response header too (e.g. a route generation).
        #[arg(long)]
        header: Option<String>,
        /// Open a new connection for every request, so that a balancer choosing per
        /// connection (L4) makes an independent choice per request.
        #[arg(long)]
        new_connection_per_request: bool,
    },
    /// Ask a serving probe at URL (its REQUESTS_PATH) how many requests it answered.
    Served { url: String },
    /// Send marked traffic as a time-sensitive talker does and print a `TalkReport`.
    Talk {
        to: SocketAddr,
        #[arg(long, value_enum, default_value = "udp")]
        transport: talk::Transport,
        /// SO_PRIORITY, set after the TOS.
        #[arg(long, default_value_t = 0)]
        priority: u32,
        #[arg(long)]
        tos: Option<u32>,
        #[arg(long, default_value_t = 100)]
        count: u64,
        #[arg(long, default_value_t = 200)]
        payload: usize,
        #[arg(long, default_value = "talker")]
        tag: String,
        /// UDP only: SO_TXTIME on CLOCK_TAI, each datagram's delivery time (SCM_TXTIME) this
        /// many microseconds after it is sent.
        #[arg(long)]
        txtime_delay_us: Option<u64>,
        /// Before each packet, one UDP datagram to ADDRESS:PORT@PRIORITY (repeatable).
        #[arg(long)]
        interleave: Vec<talk::Interleaved>,
    },
    /// Hold one TCP connection to a serving probe's echo (its hold port) open, a byte every
    /// interval, and print a `HoldReport` (longest gap between echoes, how it ended).
    Hold {
        to: SocketAddr,
        #[arg(long, default_value_t = 3000)]
        for_ms: u64,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Print the BPF programs attached with tcx to each link of this network namespace,
    /// one per line (`tcx egress on eth0: restore_prio`); needs CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN (or CAP_BPF) to read them.
    BpfAttachments,
    /// Request URL once and print the observation as JSON; exit 0 only if it answered.
    Get {
        url: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

/// Entry point of the `cni-probe` binary.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { listen, name } => match serve(listen, &name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cni-probe serve: failed to serve on {listen}: {e}");
                ExitCode::from(1)
            }
        },
        Command::Load { url, requests, concurrency, timeout_ms, header, new_connection_per_request } => {
            let options = LoadOptions { requests, concurrency, timeout: Duration::from_millis(timeout_ms), header, new_connection_per_request };
            let report = load(&url, &options);
            println!("{}", serde_json::to_string(&report).expect("report serializes"));
            ExitCode::SUCCESS
        }
        Command::Served { url } => match agent(Duration::from_secs(3))
            .get(&url)
            .call()
            .map_err(|e| e.to_string())
            .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
        {
            Ok(body) => {
                println!("{}", body.trim());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cni-probe served: {url}: {e}");
                ExitCode::from(2)
            }
        },
        Command::Hold { to, for_ms, interval_ms } => {
            let report = hold::hold(to, Duration::from_millis(for_ms), Duration::from_millis(interval_ms));
            println!("{}", serde_json::to_string(&report).expect("report serializes"));
            ExitCode::SUCCESS
        }
        Command::Talk { to, transport, priority, tos, count, payload, tag, txtime_delay_us, interleave } => {
            let report = talk::talk(&talk::TalkOptions {
                to,
                transport,
                priority,
                tos,
                count,
                payload,
                tag,
                txtime_delay: txtime_delay_us.map(Duration::from_micros),
                interleave,
            });
            println!("{}", serde_json::to_string(&report).expect("report serializes"));
            if report.error.is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::BpfAttachments => match attachments::tcx_attachments() {
            Ok(lines) => {
                lines.iter().for_each(|line| println!("{line}"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cni-probe bpf-attachments: {e}");
                ExitCode::from(2)
            }
        },
        Command::Get { url, timeout_ms } => {
            let observation = get(&url, Duration::from_millis(timeout_ms));
            println!("{}", serde_json::to_string(&observation).expect("observation serializes"));
            match observation {
                Observation::Answered { .. } => ExitCode::SUCCESS,
                _ => ExitCode::from(2),
            }
        }
    }
}

/// The path where a serving probe says how many requests it answered.
pub const REQUESTS_PATH: &str = "/__probe/requests";

/// What a serving probe answered so far whose path starts with the prefix asked for
/// (requests to [`REQUESTS_PATH`] never counted). Asking by prefix keeps out what others
/// send the pod, such as the kubelet's readiness probes on `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedRequests {
    pub requests: u64,
    /// The path prefix counted.
    pub path_prefix: String,
}

/// The URL that asks a probe serving at `base` (`http://host:port`) how many requests
/// under `path_prefix` it answered.
pub fn served_url(base: &str, path_prefix: &str) -> String {
    format!("{base}{REQUESTS_PATH}?prefix={path_prefix}")
}

/// Counts of answered requests by path; paths beyond the first [`ServedCounter::MAX_PATHS`]
/// are counted together, so a scan cannot grow it without bound.
#[derive(Debug, Default)]
struct ServedCounter {
    by_path: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl ServedCounter {
    const MAX_PATHS: usize = 4096;
    const OTHER_PATHS: &'static str = "(other paths)";

    fn record(&self, path: &str) {
        let mut by_path = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        let key = if by_path.len() < Self::MAX_PATHS || by_path.contains_key(path) { path } else { Self::OTHER_PATHS };
        *by_path.entry(key.to_owned()).or_default() += 1;
    }

    fn served(&self, path_prefix: &str) -> ServedRequests {
        let by_path = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        let requests = by_path.iter().filter(|(path, _)| path.starts_with(path_prefix)).map(|(_, n)| n).sum();
        ServedRequests { requests, path_prefix: path_prefix.to_owned() }
    }

    /// Answers a request to [`REQUESTS_PATH`] (`?prefix=/p`; no prefix counts everything).
    fn answer(&self, request: tiny_http::Request) {
        let query = request.url().split_once('?').map(|(_, q)| q).unwrap_or_default();
        let prefix = query.split('&').find_map(|pair| pair.strip_prefix("prefix=")).unwrap_or_default();
        let body = serde_json::to_string(&self.served(prefix)).expect("serializes");
        let _ = request.respond(tiny_http::Response::from_string(body));
    }
}

fn serve(listen: SocketAddr, name: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(tiny_http::Server::http(listen)?);
    let served = Arc::new(ServedCounter::default());
    // The TSN listener: UDP on the same port, counting datagrams per talker.
    let listener = Arc::new(talk::Listener::default());
    let udp = std::net::UdpSocket::bind(listen)?;
    let hearing = Arc::clone(&listener);
    std::thread::spawn(move || hearing.run(&udp));
    // The echo long-lived connections are held to: one per network namespace (a second
    // probe serving beside the first on another port leaves it to the first).
    match std::net::TcpListener::bind(SocketAddr::new(listen.ip(), hold::HOLD_PORT)) {
        Ok(held) => drop(std::thread::spawn(move || hold::echo(held))),
        Err(e) => eprintln!("cni-probe serve: no hold echo on port {}: {e}", hold::HOLD_PORT),
    }
    let bound = server.server_addr().to_ip().unwrap_or(listen);
    // The line the harness waits for: the socket is bound, requests will be answered.
    println!("listening on {bound}");
    std::io::stdout().flush()?;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = Arc::clone(&server);
            let served = Arc::clone(&served);
            let listener = Arc::clone(&listener);
            let name = name.to_owned();
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let path = request.url().split('?').next().unwrap_or_default().to_owned();
                    if path == REQUESTS_PATH {
                        served.answer(request);
                        continue;
                    }
                    if path == talk::HEARD_PATH {
                        let body = serde_json::to_string(&listener.heard()).expect("serializes");
                        let _ = request.respond(tiny_http::Response::from_string(body));
                        continue;
                    }
                    served.record(&path);
                    answer(request, &name);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

fn answer(request: tiny_http::Request, name: &str) {
    let Some(client) = request.remote_addr().copied() else {
        let _ = request.respond(tiny_http::Response::from_string("no peer address").with_status_code(500));
        return;
    };
    let reply = EchoReply { client, server: name.to_owned(), path: request.url().to_owned() };
    let body = serde_json::to_string(&reply).expect("reply serializes");
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("valid header");
    let _ = request.respond(tiny_http::Response::from_string(body).with_header(header));
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into()
}

/// Requests `url` once and says what happened.
pub fn get(url: &str, timeout: Duration) -> Observation {
    match agent(timeout).get(url).call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string().unwrap_or_default();
            match serde_json::from_str::<EchoReply>(&body) {
                Ok(reply) if status == 200 => Observation::Answered { reply },
                _ => Observation::BadReply { status, body },
            }
        }
        Err(error) => classify(error),
    }
}

/// What a load run saw: who answered, with which status, how fast.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub requests: u64,
    /// Answers by the `server` name in the echo reply.
    pub by_server: BTreeMap<String, u64>,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer, by outcome (refused, timed out, ...).
    pub failures: BTreeMap<String, u64>,
    /// Answers by the value of the recorded header ("" when absent).
    pub by_header: BTreeMap<String, u64>,
    /// The recorded header's value of each answer, in the order the answers came.
    pub header_sequence: Vec<String>,
    /// The first few answers that were not echo replies: status and body, as evidence.
    pub odd_answers: Vec<String>,
    pub latency_ms: Percentiles,
    pub elapsed_ms: f64,
    pub requests_per_second: f64,
}

impl LoadReport {
    /// Adds a later batch's answers: counts add up, latency is the mean weighted by
    /// requests and, for each percentile, the worst batch's (percentiles do not add).
    pub fn absorb(&mut self, batch: LoadReport) {
        let total = self.requests + batch.requests;
        if total > 0 {
            self.latency_ms.mean = (self.latency_ms.mean * self.requests as f64 + batch.latency_ms.mean * batch.requests as f64) / total as f64;
        }
        self.latency_ms.p50 = self.latency_ms.p50.max(batch.latency_ms.p50);
        self.latency_ms.p90 = self.latency_ms.p90.max(batch.latency_ms.p90);
        self.latency_ms.p99 = self.latency_ms.p99.max(batch.latency_ms.p99);
        self.requests = total;
        for (from, into) in [(batch.by_server, &mut self.by_server), (batch.by_header, &mut self.by_header)] {
            from.into_iter().for_each(|(k, v)| *into.entry(k).or_default() += v);
        }
        batch.by_status.into_iter().for_each(|(k, v)| *self.by_status.entry(k).or_default() += v);
        batch.failures.into_iter().for_each(|(k, v)| *self.failures.entry(k).or_default() += v);
        self.header_sequence.extend(batch.header_sequence);
        let room = 3usize.saturating_sub(self.odd_answers.len());
        self.odd_answers.extend(batch.odd_answers.into_iter().take(room));
        self.elapsed_ms += batch.elapsed_ms;
        self.requests_per_second = if self.elapsed_ms > 0.0 { self.requests as f64 * 1000.0 / self.elapsed_ms } else { 0.0 };
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    #[serde(default)]
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        Self { mean, p50: at(0.50), p90: at(0.90), p99: at(0.99), max: samples[samples.len() - 1] }
    }
}

struct Answer {
    odd: Option<String>,
    server: Option<String>,
    status: Option<u16>,
    failure: Option<&'static str>,
    header: String,
    latency_ms: f64,
}

/// How to run a load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub requests: u64,
    pub concurrency: u64,
    pub timeout: Duration,
    /// Count the values of this response header too.
    pub header: Option<String>,
    /// No keep-alive: every request on a new connection.
    pub new_connection_per_request: bool,
}

impl LoadOptions {
    /// The `cni-probe` arguments that run this load against `url`.
    pub fn to_args(&self, url: &str) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "load".into(),
            url.into(),
            "--requests".into(),
            self.requests.to_string(),
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--timeout-ms".into(),
            self.timeout.as_millis().to_string(),
        ];
        if let Some(header) = &self.header {
            args.extend(["--header".into(), header.clone()]);
        }
        if self.new_connection_per_request {
            args.push("--new-connection-per-request".into());
        }
        args
    }
}

/// Sends requests to `url` from concurrent workers, each on its own keep-alive
/// connection unless asked for a new one per request, and reports what answered.
pub fn load(url: &str, options: &LoadOptions) -> LoadReport {
    let LoadOptions { requests, concurrency, timeout, header, new_connection_per_request } = options.clone();
    let header = header.as_deref();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(requests as usize)));
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, answers, url, header) = (Arc::clone(&next), Arc::clone(&answers), url.to_owned(), header.map(str::to_owned));
            std::thread::spawn(move || {
                let mut agent = agent(timeout);
                while next.fetch_add(1, Ordering::SeqCst) < requests {
                    if new_connection_per_request {
                        agent = self::agent(timeout);
                    }
                    let sent = Instant::now();
                    let answer = match agent.get(&url).call() {
                        Ok(mut response) => {
                            let status = response.status().as_u16();
                            let value = header.as_deref().and_then(|h| response.headers().get(h)).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                            let body = response.body_mut().read_to_string().unwrap_or_default();
                            let server = serde_json::from_str::<EchoReply>(&body).ok().map(|r| r.server);
                            let odd = server.is_none().then(|| format!("HTTP {status}: {}", body.chars().take(200).collect::<String>()));
                            Answer { odd, server, status: Some(status), failure: None, header: value, latency_ms: sent.elapsed().as_secs_f64() * 1e3 }
                        }
                        Err(error) => Answer {
                            odd: None,
                            server: None,
                            status: None,
                            failure: Some(classify(error).kind()),
                            header: String::new(),
                            latency_ms: sent.elapsed().as_secs_f64() * 1e3,
                        },
                    };
                    answers.lock().expect("not poisoned").push(answer);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed();
    let answers = std::mem::take(&mut *answers.lock().expect("not poisoned"));
    let mut report = LoadReport { requests: answers.len() as u64, ..Default::default() };
    for answer in &answers {
        if let Some(server) = &answer.server {
            *report.by_server.entry(server.clone()).or_default() += 1;
        }
        if let Some(status) = answer.status {
            *report.by_status.entry(status).or_default() += 1;
            *report.by_header.entry(answer.header.clone()).or_default() += 1;
            report.header_sequence.push(answer.header.clone());
        }
        if let Some(odd) = answer.odd.as_ref().filter(|_| report.odd_answers.len() < 3) {
            report.odd_answers.push(odd.clone());
        }
        if let Some(failure) = answer.failure {
            *report.failures.entry(failure.to_owned()).or_default() += 1;
        }
    }
    if header.is_none() {
        report.header_sequence.clear();
        report.by_header.clear();
    }
    report.latency_ms = Percentiles::of(answers.iter().map(|a| a.latency_ms).collect());
    report.elapsed_ms = elapsed.as_secs_f64() * 1e3;
    report.requests_per_second = report.requests as f64 / elapsed.as_secs_f64().max(1e-9);
    report
}

fn classify(error: ureq::Error) -> Observation {
    use std::io::ErrorKind;
    let detail = error.to_string();
    match &error {
        ureq::Error::Timeout(_) => Observation::TimedOut { detail },
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => Observation::Refused { detail },
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Observation::TimedOut { detail },
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Observation::Unreachable { detail },
            _ => Observation::Failed { detail },
        },
        _ => Observation::Failed { detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn observation_json_names_the_outcome() {
        let observation = Observation::Refused { detail: "connection refused".into() };
        let json = serde_json::to_string(&observation).unwrap();
        assert_eq!(json, r#"{"outcome":"refused","detail":"connection refused"}"#);
        assert_eq!(serde_json::from_str::<Observation>(&json).unwrap(), observation);
    }

    #[test]
    fn a_closed_port_is_refused_not_timed_out() {
        // Bind then drop: the port is free and nothing listens on it.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let observation = get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2));
        assert!(matches!(observation, Observation::Refused { .. }), "{observation:?}");
    }

    #[test]
    fn talk_options_parse_back_from_their_command_line() {
        let options = talk::TalkOptions {
            to: "192.0.2.1:8080".parse().unwrap(),
            transport: talk::Transport::Udp,
            priority: 2,
            tos: Some(16),
            count: 5,
            payload: 64,
            tag: "t2".into(),
            txtime_delay: Some(Duration::from_micros(40)),
            interleave: vec!["10.244.1.3:8081@1".parse().unwrap(), "10.0.0.2:8081@2".parse().unwrap()],
        };
        let mut argv = vec!["cni-probe".to_owned()];
        argv.extend(options.to_args());
        let Command::Talk { to, transport, priority, tos, count, payload, tag, txtime_delay_us, interleave } = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not a talk")
        };
        assert_eq!(
            talk::TalkOptions { to, transport, priority, tos, count, payload, tag, txtime_delay: txtime_delay_us.map(Duration::from_micros), interleave },
            options
        );
    }

    #[test]
    fn load_options_round_trip_through_the_command_line() {
        let options = LoadOptions {
            requests: 59,
            concurrency: 8,
            timeout: Duration::from_millis(2500),
            header: Some("X-Route-Generation".into()),
            new_connection_per_request: true,
        };
        let mut argv = vec!["cni-probe".to_owned()];
        argv.extend(options.to_args("http://192.0.2.1/"));
        let Command::Load { url, requests, concurrency, timeout_ms, header, new_connection_per_request } = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not a load")
        };
        assert_eq!(
            (url.as_str(), requests, concurrency, timeout_ms, header.as_deref(), new_connection_per_request),
            ("http://192.0.2.1/", 59, 8, 2500, Some("X-Route-Generation"), true)
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }

    #[test]
    fn load_counts_who_answered_and_what_failed() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let handle = std::thread::spawn(move || {
            for _ in 0..20 {
                let request = server.recv().unwrap();
                answer(request, "backend");
            }
        });
        let options = |requests| LoadOptions { requests, concurrency: 4, timeout: Duration::from_secs(2), header: None, new_connection_per_request: false };
        let report = load(&format!("http://{addr}/"), &options(20));
        handle.join().unwrap();
        assert_eq!((report.requests, report.by_server.get("backend"), report.by_status.get(&200)), (20, Some(&20), Some(&20)));
        assert!(report.requests_per_second > 0.0 && report.latency_ms.max >= report.latency_ms.p50);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let refused = load(&format!("http://127.0.0.1:{port}/"), &options(3));
        assert_eq!(refused.failures.get("refused"), Some(&3));
    }

    #[test]
    fn served_counts_only_the_paths_asked_for_not_readiness_probes() {
        let counter = ServedCounter::default();
        for path in ["/", "/", "/t8/getPaidForecast", "/t8/getPaidForecast/eu", "/", "/t9/getPaidForecast"] {
            counter.record(path);
        }
        assert_eq!(counter.served("/t8/getPaidForecast").requests, 2, "the kubelet's probes on / and another trial's route are not copies");
        assert_eq!(counter.served("").requests, 6);
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let handle = std::thread::spawn(move || counter.answer(server.recv().unwrap()));
        let body = agent(Duration::from_secs(2))
            .get(&served_url(&format!("http://{addr}"), "/t8/getPaidForecast"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        handle.join().unwrap();
        assert_eq!(serde_json::from_str::<ServedRequests>(&body).unwrap(), ServedRequests { requests: 2, path_prefix: "/t8/getPaidForecast".into() });
    }

    #[test]
    fn echo_reports_the_client_address_it_saw() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let handle = std::thread::spawn(move || {
            let request = server.recv().unwrap();
            answer(request, "external");
        });
        let observation = get(&format!("http://{addr}/hello"), Duration::from_secs(2));
        handle.join().unwrap();
        let Observation::Answered { reply } = observation else { panic!("{observation:?}") };
        assert_eq!(reply.server, "external");
        assert_eq!(reply.path, "/hello");
        assert_eq!(reply.client.ip().to_string(), "127.0.0.1");
    }
}
