//! A path trace of one flow: the flow's request sent again while every node and the
//! external host capture its opening packets (TCP SYN) on all their interfaces; each hop
//! where one was seen, in the order the kernel clock saw them, with the source address it
//! carried there. Where the source changed, and the last hop it reached, say where a
//! packet went wrong: a SYN that leaves the gateway node with the pod's address is a
//! missing SNAT there.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::Flow;
use crate::error::{HarnessError, Result};
use crate::provider::Cluster;
use crate::verdict::snat::AddressBook;

/// How long each capture runs; the request is sent [`CAPTURE_START`] into it.
const CAPTURE: Duration = Duration::from_millis(2500);
/// Time for every capture to start listening before the request.
const CAPTURE_START: Duration = Duration::from_millis(700);
/// How long the replayed request may take.
const REQUEST: Duration = Duration::from_secs(1);

/// Where a packet was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// "node worker2", "the external host".
    pub place: String,
    pub interface: String,
    /// "In" or "Out", as the capture saw it.
    pub direction: String,
    pub source: IpAddr,
    /// The SYN's sequence number: no NAT changes it, so it names one connection at every hop.
    pub seq: u64,
    /// Seconds since the epoch, on the kernel clock every place shares.
    pub at: f64,
}

/// A flow's trace: the hops in order, what the client got back, and the raw captures.
#[derive(Debug, Clone)]
pub struct Trace {
    pub flow: String,
    pub hops: Vec<Hop>,
    pub answer: String,
    /// (place, what its capture printed or why it printed nothing).
    pub captures: Vec<(String, String)>,
    /// (place, its capture as a pcap file: every SYN to the destination, for Wireshark).
    pub pcaps: Vec<(String, Vec<u8>)>,
    /// The source address's role at each hop, from the trial's address book.
    pub roles: Vec<String>,
    /// Per node, the iptables rules whose packet counters the replay moved (requests of
    /// trials running beside it may have moved some too), or why they were not read.
    pub rules: Vec<(String, std::result::Result<Vec<String>, String>)>,
}

/// The destination of `url` (`http://<ip>:<port>/...`).
pub(crate) fn destination(url: &str) -> Option<SocketAddr> {
    url.split("://").nth(1)?.split('/').next()?.parse().ok()
}

/// One line of `tcpdump -i any -nn -tt`: `<epoch> <interface> <In|Out> IP <src>.<port> > <dst>.<port>: ...`.
pub fn parse_capture_line(place: &str, line: &str) -> Option<Hop> {
    let mut words = line.split_whitespace();
    let at: f64 = words.next()?.parse().ok()?;
    let interface = words.next()?.to_owned();
    let direction = words.next()?.to_owned();
    if words.next()? != "IP" {
        return None;
    }
    let (source, _port) = words.next()?.rsplit_once('.')?;
    let seq = line.split(", seq ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some(Hop { place: place.to_owned(), interface, direction, source: source.parse().ok()?, seq, at })
}

/// Replays `flow` on `cluster` with every node and the external host capturing.
pub fn trace(cluster: &Arc<dyn Cluster>, flow: &Flow, book: &AddressBook) -> Result<Trace> {
    let to = destination(&flow.url)
        .ok_or_else(|| HarnessError::Command { command: format!("trace {}", flow.url), detail: "not an http://<ip>:<port>/ URL: nothing to capture".into() })?;
    let filter = format!("tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0 and dst host {} and dst port {}", to.ip(), to.port());
    // tcpdump writes the pcap to fd 3, the pipe to base64 (stdout: text every exec path
    // carries), and prints each packet to stderr (`--print`, tcpdump 4.99) for the hops.
    let script = format!("timeout {:.1} tcpdump -i any -nn -tt -l -U --print -w /dev/fd/3 '{filter}' 3>&1 1>&2 | base64 -w0", CAPTURE.as_secs_f64());
    let args: Vec<&str> = vec!["-c", &script];
    let counters = |node: &crate::model::Node| crate::provider::rule_counters_on(cluster.as_ref(), node).map_err(|e| e.to_string());
    let before: Vec<_> = cluster.nodes().iter().map(counters).collect();
    let (captures, answer) = std::thread::scope(|scope| {
        let mut running = Vec::new();
        for node in cluster.nodes() {
            let args = &args;
            running.push((format!("node {}", node.name), scope.spawn(move || cluster.run_in_node_network(node, "sh", args))));
        }
        running.push(("the external host".to_owned(), scope.spawn(|| cluster.run_outside("sh", &args))));
        std::thread::sleep(CAPTURE_START);
        let answer = cluster.request_from(&flow.client, &flow.url, REQUEST);
        let captures: Vec<(String, Result<crate::model::ExecOutput>)> =
            running.into_iter().map(|(place, handle)| (place, handle.join().expect("a capture returns"))).collect();
        (captures, answer)
    });
    let mut hops = Vec::new();
    let mut raw = Vec::new();
    let mut pcaps = Vec::new();
    for (place, output) in captures {
        match output {
            Ok(output) if output.stderr.contains("listening on") => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(output.stdout.trim()) {
                    Ok(pcap) if !pcap.is_empty() => pcaps.push((place.clone(), pcap)),
                    Ok(_) => {}
                    Err(e) => raw.push((place.clone(), format!("its pcap could not be read back: {e}"))),
                }
                let printed: String =
                    output.stderr.lines().filter(|l| !l.starts_with("tcpdump:") && !l.starts_with("listening on")).map(|l| format!("{l}\n")).collect();
                let mut seen: Vec<Hop> = Vec::new();
                for hop in printed.lines().filter_map(|line| parse_capture_line(&place, line)) {
                    // The first of each (interface, direction, source): retransmissions add nothing.
                    if !seen.iter().any(|s| s.interface == hop.interface && s.direction == hop.direction && s.source == hop.source) {
                        seen.push(hop);
                    }
                }
                hops.extend(seen);
                raw.push((place, printed));
            }
            Ok(output) => raw.push((place, format!("no capture: {}; {}", output.exit, output.stderr.trim()))),
            Err(e) => raw.push((place, format!("no capture: {e}"))),
        }
    }
    // Other trials' requests to the same destination are captured too: the replay's SYNs
    // are those that left the client with its own address, followed by their sequence number.
    let ours: std::collections::BTreeSet<u64> = hops.iter().filter(|h| h.source == flow.client.address).map(|h| h.seq).collect();
    hops.retain(|h| ours.contains(&h.seq));
    hops.sort_by(|a, b| a.at.total_cmp(&b.at));
    let rules = cluster
        .nodes()
        .iter()
        .zip(before)
        .map(|(node, before)| {
            let moved = before.and_then(|before| counters(node).map(|after| crate::verdict::iptables::moved_rules(&before, &after, 1)));
            (format!("node {}", node.name), moved)
        })
        .collect();
    let roles = hops.iter().map(|h| book.describe(h.source, &flow.client).1).collect();
    let answer = match answer {
        Ok(cni_probe::Observation::Answered { reply }) => {
            format!("answered; the external echo saw source {}", book.describe(reply.client.ip(), &flow.client).1)
        }
        Ok(other) => format!("{}: {other:?}", other.kind()),
        Err(e) => format!("the request could not be sent: {e}"),
    };
    Ok(Trace { flow: format!("pod {}/{} -> {to}", flow.client.namespace, flow.client.name), hops, answer, captures: raw, pcaps, roles, rules })
}

impl Trace {
    /// The hop the packet was last seen at, if any.
    pub fn last_hop(&self) -> Option<(&Hop, &str)> {
        self.hops.last().zip(self.roles.last().map(String::as_str))
    }

    /// Each place the packet left through its uplink (`eth0` out), with the source it
    /// carried: where an address is translated or not.
    pub fn exits(&self) -> Vec<String> {
        self.hops
            .iter()
            .zip(&self.roles)
            .filter(|(h, _)| h.direction == "Out" && h.interface == "eth0")
            .map(|(h, role)| format!("left {} through {} with source {role}", h.place, h.interface))
            .collect()
    }

    pub fn render(&self) -> String {
        let mut out = format!("flow: {} (its opening SYN), sent again with every node and the external host capturing\nanswer: {}\n\nhops of its SYN (followed by sequence number), in the order the kernel clock saw them:\n", self.flow, self.answer);
        if self.hops.is_empty() {
            out.push_str("  the SYN was seen nowhere: it never left the pod\n");
        }
        let first = self.hops.first().map_or(0.0, |h| h.at);
        for (hop, role) in self.hops.iter().zip(&self.roles) {
            out.push_str(&format!("  +{:>8.3} ms  {:<22} {:<16} {:<3}  source {role}\n", (hop.at - first) * 1e3, hop.place, hop.interface, hop.direction));
        }
        if let Some((hop, role)) = self.last_hop() {
            out.push_str(&format!("\nlast seen: {} {} {}, source {role}\n", hop.place, hop.interface, hop.direction));
        }
        for exit in self.exits() {
            out.push_str(&format!("{exit}\n"));
        }
        out.push_str("\niptables rules whose packet counters the replay moved (trials beside it may have moved some too):\n");
        for (place, moved) in &self.rules {
            match moved {
                Ok(rules) if rules.is_empty() => out.push_str(&format!("--- {place}: none\n")),
                Ok(rules) => out.push_str(&format!("--- {place}\n{}\n", rules.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"))),
                Err(e) => out.push_str(&format!("--- {place}: not read: {e}\n")),
            }
        }
        out.push_str("\ncaptures (tcpdump -i any -nn -tt, SYNs to the destination; each also as a pcap file in captures/, whose\ninterface indexes are the place's own: a reader elsewhere names them wrongly, so read the names here):\n");
        for (place, text) in &self.captures {
            out.push_str(&format!("--- {place}\n{}\n", text.trim_end()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_line_gives_the_interface_direction_and_source() {
        let hop =
            parse_capture_line("node worker2", "1764930000.123456 eth0  Out IP 10.244.1.5.41234 > 172.18.0.100.8080: Flags [S], seq 1, win 64240, length 0")
                .unwrap();
        assert_eq!((hop.interface.as_str(), hop.direction.as_str(), hop.source, hop.seq), ("eth0", "Out", "10.244.1.5".parse().unwrap(), 1));
        assert!((hop.at - 1764930000.123456).abs() < 1e-6);
        assert!(parse_capture_line("n", "tcpdump: listening on any").is_none());
        assert!(parse_capture_line("n", "1764930000.1 eth0 Out IP6 fe80::1.41234 > fe80::2.80: Flags [S]").is_none());
    }

    #[test]
    fn the_destination_of_a_url() {
        assert_eq!(destination("http://172.18.0.100:8080/"), Some("172.18.0.100:8080".parse().unwrap()));
        assert_eq!(destination("http://gateway.local/x"), None);
    }
}
