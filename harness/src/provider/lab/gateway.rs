//! The lab's Gateway: a real nginx in the edge namespace (at an address a LoadBalancer
//! would give), configured from HTTPRoutes the way NGINX Gateway Fabric translates them: one
//! weighted upstream per route rule, `mirror` for RequestMirror, and the route's
//! generation in a response header so a new configuration can be seen to be live.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Child;

use super::{shell, LabFault};
use crate::error::{HarnessError, Result};
use crate::model::{HttpRoute, ROUTE_GENERATION_HEADER};

/// The Gateway's address on the underlay, as MetalLB would hand out on kind's network.
pub fn gateway_address() -> Ipv4Addr {
    Ipv4Addr::new(172, 18, 0, 150)
}

/// The n-th LoadBalancer Service address: 172.18.0.151 to .199.
pub fn service_address(index: usize) -> Option<Ipv4Addr> {
    (index < 49).then(|| Ipv4Addr::new(172, 18, 0, 151 + index as u8))
}

/// kube-proxy-style rules for a Service VIP: each endpoint rule takes its share of what
/// the rules before it left (1/k, 1/(k-1), ..., 1), chosen at random per connection, then
/// masquerade so answers come back through the VIP. The uniform-probabilities fault makes
/// every rule 1/k instead: the classic mistake.
pub fn service_rules(chain: &str, vip: Ipv4Addr, endpoints: &[(IpAddr, u16)], faults: &[LabFault]) -> String {
    let k = endpoints.len();
    let mut rules = format!("*nat\n:{chain} - [0:0]\n-A PREROUTING -d {vip}/32 -p tcp --dport 80 -j {chain}\n");
    for (i, (ip, port)) in endpoints.iter().enumerate() {
        let probability = if faults.contains(&LabFault::UniformProbabilities) { 1.0 / k as f64 } else { 1.0 / (k - i) as f64 };
        let choose = if i + 1 < k { format!("-m statistic --mode random --probability {probability:.10} ") } else { String::new() };
        rules.push_str(&format!("-A {chain} -p tcp {choose}-j DNAT --to-destination {ip}:{port}\n"));
    }
    rules.push_str("COMMIT\n");
    rules
}

/// A route with its backends resolved to pod addresses.
#[derive(Debug, Clone)]
pub struct ResolvedRoute {
    pub route: HttpRoute,
    /// (address, weight) per backend, in the route's order.
    pub backends: Vec<(IpAddr, u16, u32)>,
    pub mirror: Option<(IpAddr, u16)>,
}

/// The nginx configuration for every route, as NGINX Gateway Fabric would write it.
pub fn render_config(prefix: &Path, routes: &BTreeMap<String, ResolvedRoute>, faults: &[LabFault]) -> String {
    let dir = prefix.display();
    let mut http = String::new();
    let mut locations = String::new();
    for (index, resolved) in routes.values().enumerate() {
        let route = &resolved.route;
        let mut backends = resolved.backends.clone();
        if faults.contains(&LabFault::WrongWeights) && backends.len() >= 2 {
            let (first, second) = (backends[0].2, backends[1].2);
            backends[0].2 = second;
            backends[1].2 = first;
        }
        // nginx has no weight 0: a backend without weight is left out, as NGF does.
        let servers: Vec<String> = backends.iter().filter(|b| b.2 > 0).map(|(ip, port, weight)| format!("    server {ip}:{port} weight={weight};\n")).collect();
        locations.push_str(&format!("    location {} {{\n        add_header {ROUTE_GENERATION_HEADER} {} always;\n", route.path_prefix, route.generation));
        if servers.is_empty() {
            locations.push_str("        return 500;\n    }\n");
            continue;
        }
        http.push_str(&format!("  upstream route{index} {{\n{}  }}\n", servers.concat()));
        if let Some((ip, port)) = resolved.mirror.filter(|_| !faults.contains(&LabFault::MirroringOff)) {
            locations.push_str(&format!("        mirror /_mirror/route{index};\n"));
            locations.push_str(&format!("        proxy_pass http://route{index};\n    }}\n"));
            locations
                .push_str(&format!("    location = /_mirror/route{index} {{\n        internal;\n        proxy_pass http://{ip}:{port}$request_uri;\n    }}\n"));
        } else {
            locations.push_str(&format!("        proxy_pass http://route{index};\n    }}\n"));
        }
    }
    format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  proxy_connect_timeout 2s;\n{http}  server {{\n    listen {}:80;\n{locations}  }}\n}}\n",
        gateway_address()
    )
}

/// The running gateway of one lab.
pub struct Gateway {
    prefix: PathBuf,
    process: Child,
    /// What nginx is configured with.
    served: BTreeMap<String, ResolvedRoute>,
    /// The newest version of every route; with the stale-config fault, one ahead of `served`.
    latest: BTreeMap<String, ResolvedRoute>,
}

impl Gateway {
    /// Starts nginx in the lab's edge namespace.
    pub fn start(netns: &str, state: &Path, faults: &[LabFault]) -> Result<Self> {
        if !super::host::on_path("nginx") {
            return Err(HarnessError::MissingTool {
                tool: "nginx".into(),
                purpose: "the lab's Gateway".into(),
                install: "install it with `apt-get install nginx-light` or run `cargo xtask deps`".into(),
            });
        }
        let prefix = state.join("gateway");
        for dir in ["", "body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            crate::cleanup::guard_creation(|| {
                std::fs::create_dir_all(prefix.join(dir))
                    .map_err(|e| HarnessError::Command { command: format!("create {}", prefix.display()), detail: e.to_string() })
            })?;
        }
        let config = prefix.join("nginx.conf");
        write_config(&config, &render_config(&prefix, &BTreeMap::new(), faults))?;
        let process = std::process::Command::new("ip")
            .args(["netns", "exec", netns, "nginx", "-p"])
            .arg(&prefix)
            .arg("-c")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| HarnessError::Command { command: "nginx".into(), detail: e.to_string() })?;
        let gateway = Self { prefix, process, served: BTreeMap::new(), latest: BTreeMap::new() };
        gateway.await_listening()?;
        Ok(gateway)
    }

    /// Waits until nginx has written its pid file with its pid: it has read its config and
    /// opened its sockets. (`ip netns exec` execs nginx in place, so the child is the master.)
    fn await_listening(&self) -> Result<()> {
        let master = self.process.id().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if std::fs::read_to_string(self.prefix.join("nginx.pid")).is_ok_and(|pid| pid.trim() == master) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default();
        Err(HarnessError::NotReady {
            what: "the lab gateway (nginx)".into(),
            detail: format!("no pid file with pid {master} after 10s; error.log: {}", log.trim()),
        })
    }

    /// Sets `route` and reloads nginx. With the stale-config fault, nginx gets the route's
    /// previous version instead (none for a new route): every change is one version late.
    pub fn apply(&mut self, route: ResolvedRoute, faults: &[LabFault]) -> Result<()> {
        let name = route.route.name.clone();
        let previous = self.latest.insert(name.clone(), route.clone());
        match (faults.contains(&LabFault::StaleConfig), previous) {
            (false, _) => drop(self.served.insert(name, route)),
            (true, Some(previous)) => drop(self.served.insert(name, previous)),
            (true, None) => drop(self.served.remove(&name)),
        }
        let config = self.prefix.join("nginx.conf");
        write_config(&config, &render_config(&self.prefix, &self.served, faults))?;
        let master = self.process.id().to_string();
        let master = master.as_str();
        let old_workers = workers_of(master);
        shell::run("kill", &["-HUP", master], None)?;
        // A reload is not atomic: old workers keep accepting until they are told to quit.
        // Like NGINX Gateway Fabric, report the route applied only once they have gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let workers = workers_of(master);
            if !workers.is_empty() && workers.iter().all(|w| !old_workers.contains(w)) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(HarnessError::NotReady {
                    what: "the lab gateway's reload".into(),
                    detail: format!("old workers {old_workers:?} still running after 10s"),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The worker processes of an nginx master, from /proc.
fn workers_of(master: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{master}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
                .flat_map(|children| children.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        })
        .unwrap_or_default()
}

/// Under the interrupt guard: the configuration lives in the cluster's state directory,
/// which a rewrite after the cleanup would bring back.
fn write_config(path: &Path, text: &str) -> Result<()> {
    crate::cleanup::guard_creation(|| {
        crate::files::write_atomically(path, text.as_bytes())
            .map_err(|e| crate::error::HarnessError::Command { command: format!("writing the lab Gateway's {}", path.display()), detail: e.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WeightedBackend;

    fn resolved(weights: [u32; 2], mirror: bool) -> BTreeMap<String, ResolvedRoute> {
        let route = HttpRoute {
            name: "current-weather-route-t1".into(),
            path_prefix: "/t1/getCurrentWeather".into(),
            backends: vec![
                WeightedBackend { service: "current-weather-pod-1".into(), port: 8080, weight: weights[0] },
                WeightedBackend { service: "current-weather-pod-2".into(), port: 8080, weight: weights[1] },
            ],
            mirror_to: mirror.then(|| ("traffic-analyzer".to_owned(), 8080)),
            generation: 3,
        };
        let backends = vec![("10.244.1.2".parse().unwrap(), 8080, weights[0]), ("10.244.2.2".parse().unwrap(), 8080, weights[1])];
        let mirror = mirror.then(|| ("10.244.1.9".parse().unwrap(), 8080));
        BTreeMap::from([(route.name.clone(), ResolvedRoute { route, backends, mirror })])
    }

    #[test]
    fn a_canary_route_becomes_a_weighted_upstream() {
        insta::assert_snapshot!("nginx_canary", render_config(Path::new("/run/gw"), &resolved([95, 5], false), &[]));
    }

    #[test]
    fn a_mirror_filter_becomes_an_nginx_mirror() {
        let config = render_config(Path::new("/run/gw"), &resolved([60, 40], true), &[]);
        assert!(config.contains("mirror /_mirror/route0;") && config.contains("proxy_pass http://10.244.1.9:8080$request_uri;"), "{config}");
        let off = render_config(Path::new("/run/gw"), &resolved([60, 40], true), &[LabFault::MirroringOff]);
        assert!(!off.contains("mirror "), "{off}");
    }

    #[test]
    fn a_weight_zero_backend_is_left_out() {
        let config = render_config(Path::new("/run/gw"), &resolved([100, 0], false), &[]);
        assert!(config.contains("server 10.244.1.2:8080 weight=100;") && !config.contains("10.244.2.2"), "{config}");
    }

    #[test]
    fn service_rules_split_evenly_per_endpoint() {
        let endpoints: Vec<(IpAddr, u16)> = (1..=4).map(|i| (format!("10.244.1.{i}").parse().unwrap(), 8080)).collect();
        insta::assert_snapshot!("service_rules", service_rules("LAB-SVC-0", service_address(0).unwrap(), &endpoints, &[]));
        let uniform = service_rules("LAB-SVC-0", service_address(0).unwrap(), &endpoints, &[LabFault::UniformProbabilities]);
        assert_eq!(uniform.matches("--probability 0.2500000000").count(), 3, "{uniform}");
    }

    #[test]
    fn the_wrong_weights_fault_swaps_them() {
        let config = render_config(Path::new("/run/gw"), &resolved([95, 5], false), &[LabFault::WrongWeights]);
        assert!(config.contains("server 10.244.1.2:8080 weight=5;"), "{config}");
    }
}
