//! What `/proc` tells about processes: whether one is still alive, and which processes another
//! one started. The harness uses it to clean up a worker's slots, and tests to find and check them.

use std::collections::HashMap;
use std::fs;

/// Whether a process with this pid exists and is not a zombie (a killed process that its parent
/// has not reaped yet has ended for every purpose a test cares about).
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat) != Some('Z'),
        Err(_) => false,
    }
}

/// How many file descriptors `pid` has open (each connection the coordinator holds is one).
pub fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// A field of `/proc/PID/status` in KiB, such as `VmHWM` (the peak resident set) or `VmRSS`;
/// 0 when the process or the field is gone.
pub fn status_kib(pid: i32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or(0)
}

/// Every process started by `pid`, directly or not, read from `/proc`.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (child, parent) in all_parents() {
        children.entry(parent).or_default().push(child);
    }
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(next) = todo.pop() {
        for &child in children.get(&next).into_iter().flatten() {
            found.push(child);
            todo.push(child);
        }
    }
    found
}

/// (pid, parent pid) of every process visible in `/proc`.
fn all_parents() -> Vec<(i32, i32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_pid(&stat)?))
        })
        .collect()
}

/// The fields of `/proc/PID/stat` after the command name, which is in parentheses and may itself
/// contain spaces and parentheses.
fn stat_fields(stat: &str) -> Vec<&str> {
    let after_name = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    after_name.split_whitespace().collect()
}

fn process_state(stat: &str) -> Option<char> {
    stat_fields(stat).first()?.chars().next()
}

fn parent_pid(stat: &str) -> Option<i32> {
    stat_fields(stat).get(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command name with spaces and parentheses does not shift the fields after it.
    #[test]
    fn stat_fields_skip_the_command_name() {
        let stat = "42 (we (ird) name) S 7 42 42 0";
        assert_eq!(process_state(stat), Some('S'));
        assert_eq!(parent_pid(stat), Some(7));
    }

    /// Our own process is alive; a pid beyond the kernel's range is not.
    #[test]
    fn own_process_is_alive() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(i32::MAX));
    }
}
