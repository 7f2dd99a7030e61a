//! Resource use of a worker process, read from `/proc`.

use std::time::Instant;

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 in Linux's ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident memory of `pid` in bytes (0 when it is gone or on another OS).
pub fn rss_bytes(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds (user + system) used by `pid` so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU use in percent of one core since `previous` (when, CPU seconds), and the new sample.
pub fn cpu_percent(
    pid: u32,
    previous: Option<(Instant, f64)>,
    since_start: f64,
) -> (f64, Option<(Instant, f64)>) {
    let Some(now_cpu) = cpu_seconds(pid) else {
        return (0.0, None);
    };
    let now = Instant::now();
    let percent = match previous {
        Some((then, cpu)) if now.duration_since(then).as_secs_f64() > 0.05 => {
            (now_cpu - cpu) / now.duration_since(then).as_secs_f64() * 100.0
        }
        // No usable sample yet: the average since the worker started.
        _ if since_start > 0.0 => now_cpu / since_start * 100.0,
        _ => 0.0,
    };
    (percent.max(0.0), Some((now, now_cpu)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid) > 1024 * 1024);
        assert!(cpu_seconds(pid).is_some());
        assert_eq!(rss_bytes(u32::MAX), 0);
        assert!(cpu_seconds(u32::MAX).is_none());
        let (_, sample) = cpu_percent(pid, None, 1.0);
        assert!(sample.is_some());
    }
}
