//! The probe: one small binary that runs in pods and on external hosts, like agnhost.
//!
//! `cni-probe serve` answers every HTTP request with the client's `ip:port` as the server
//! saw it (so after any SNAT) and its own name, as JSON. `cni-probe get` calls a URL and
//! prints one [`Observation`] as JSON: what was seen, or why nothing was (refused, timed
//! out, unreachable). Nothing here knows where it runs: a network namespace or a container.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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

fn serve(listen: SocketAddr, name: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(tiny_http::Server::http(listen)?);
    let bound = server.server_addr().to_ip().unwrap_or(listen);
    // The line the harness waits for: the socket is bound, requests will be answered.
    println!("listening on {bound}");
    std::io::stdout().flush()?;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = Arc::clone(&server);
            let name = name.to_owned();
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
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

/// Requests `url` once and says what happened.
pub fn get(url: &str, timeout: Duration) -> Observation {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(url).call() {
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
