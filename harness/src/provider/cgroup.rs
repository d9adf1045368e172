//! A pod's resource usage from its cgroup on its node (cgroup v2, as kind's nodes and
//! current distributions have): the CPU time its containers used (`cpu.stat`
//! `usage_usec`) and the most memory they held at once (`memory.peak`, Linux 5.19+).

use std::time::Duration;

use crate::model::ResourceUsage;

/// A shell script, run on the pod's node, that finds the pod's cgroup (the systemd driver
/// names it `...-pod<uid with underscores>.slice`, cgroupfs `pod<uid>`) and prints its
/// CPU time and peak memory, or says on stderr what it could not find.
pub fn reading_script(pod_uid: &str) -> String {
    let underscored = pod_uid.replace('-', "_");
    format!(
        r#"d=$(find /sys/fs/cgroup -maxdepth 6 -type d \( -name '*pod{underscored}.slice' -o -name 'pod{pod_uid}' \) | head -n 1)
[ -n "$d" ] || {{ echo "no cgroup of pod {pod_uid} under /sys/fs/cgroup (cgroup v2)" >&2; exit 3; }}
echo "cgroup $d"
grep '^usage_usec ' "$d/cpu.stat"
if [ -r "$d/memory.peak" ]; then echo "memory.peak $(cat "$d/memory.peak")"; else echo "memory.peak missing (Linux 5.19 or later has it)"; fi"#
    )
}

/// What [`reading_script`] printed, as usage; or what is missing.
pub fn parse_reading(printed: &str) -> Result<ResourceUsage, String> {
    let value = |key: &str| printed.lines().find_map(|line| line.strip_prefix(key).map(str::trim));
    let cpu = value("usage_usec ").ok_or_else(|| format!("no usage_usec in cpu.stat: {}", printed.trim()))?;
    let cpu: u64 = cpu.parse().map_err(|_| format!("usage_usec is not a number: {cpu}"))?;
    let peak = value("memory.peak ").ok_or_else(|| format!("no memory.peak: {}", printed.trim()))?;
    let peak: u64 = peak.parse().map_err(|_| format!("memory.peak is not a number: {peak}"))?;
    Ok(ResourceUsage { cpu: Duration::from_micros(cpu), peak_memory_bytes: peak, processes: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINTED: &str = "cgroup /sys/fs/cgroup/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0a1b2c3d_4e5f.slice\nusage_usec 8123456\nmemory.peak 73400320\n";

    #[test]
    fn a_pod_s_cpu_time_and_peak_memory_are_read_from_its_cgroup() {
        assert_eq!(parse_reading(PRINTED), Ok(ResourceUsage { cpu: Duration::from_micros(8_123_456), peak_memory_bytes: 73_400_320, processes: 1 }));
    }

    #[test]
    fn an_older_kernel_without_memory_peak_is_named() {
        let error = parse_reading("cgroup /x\nusage_usec 5\nmemory.peak missing (Linux 5.19 or later has it)\n").unwrap_err();
        assert!(error.contains("memory.peak is not a number: missing (Linux 5.19"), "{error}");
    }

    #[test]
    fn the_script_finds_the_pod_by_either_driver_s_name() {
        let script = reading_script("0a1b2c3d-4e5f");
        assert!(script.contains("-name '*pod0a1b2c3d_4e5f.slice'") && script.contains("-name 'pod0a1b2c3d-4e5f'"), "{script}");
    }

    /// The script, run for real against a made-up cgroup tree in the systemd driver's layout.
    #[test]
    fn the_script_reads_a_cgroup_tree_laid_out_as_kubelet_s_systemd_driver_lays_it_out() {
        let root = tempfile::tempdir().unwrap();
        let pod = root.path().join("kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0a1b2c3d_4e5f.slice");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(pod.join("cpu.stat"), "usage_usec 42000\nuser_usec 30000\nsystem_usec 12000\n").unwrap();
        std::fs::write(pod.join("memory.peak"), "1048576\n").unwrap();
        let script = reading_script("0a1b2c3d-4e5f").replace("/sys/fs/cgroup", &root.path().display().to_string());
        let output = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let usage = parse_reading(&String::from_utf8_lossy(&output.stdout)).unwrap();
        assert_eq!((usage.cpu, usage.peak_memory_bytes), (Duration::from_millis(42), 1 << 20));
        let missing = std::process::Command::new("sh")
            .args(["-c", &reading_script("ffff").replace("/sys/fs/cgroup", &root.path().display().to_string())])
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no cgroup of pod ffff"));
    }
}
