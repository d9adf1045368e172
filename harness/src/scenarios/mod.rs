//! The scenario library: CNI- and provider-agnostic scenarios that suites pick from.

pub mod canary;
pub mod egress;
pub mod performance;
pub mod tsn;
pub mod upgrade;

#[cfg(test)]
mod tests {
    #[test]
    fn the_hold_echo_is_not_on_the_port_the_suites_call_closed() {
        // Every provider's closed port is the external echo's port + 1.
        assert_ne!(cni_probe::hold::HOLD_PORT, crate::model::POD_PORT + 1, "a closed-port scenario would be answered by the hold echo");
    }

    #[test]
    fn nextest_runs_every_disruptive_scenario_last() {
        let config = std::fs::read_to_string(crate::workspace_root().join(".config/nextest.toml")).expect(".config/nextest.toml ships with the project");
        let disruptive: Vec<_> = super::egress::all()
            .into_iter()
            .chain(super::egress::failover())
            .chain(super::egress::excluded_destinations())
            .chain(super::canary::all())
            .chain(super::tsn::all())
            .chain(super::performance::all())
            .chain(super::upgrade::all())
            .filter(|s| s.disruptive)
            .collect();
        assert!(!disruptive.is_empty());
        for scenario in disruptive {
            assert!(config.contains(&format!("test(={})", scenario.name)), "{} needs a priority override in .config/nextest.toml", scenario.name);
        }
    }
}
