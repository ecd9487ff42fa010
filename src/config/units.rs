//! Human units in `gateway.toml`: durations (`"15s"`, `"250ms"`, `"1h 30m"`) and
//! byte sizes (`"16KiB"`, `"10MiB"`, `"1GB"`, or a bare number of bytes).

use std::time::Duration;

/// Parses a duration such as `"15s"`, `"250ms"` or `"2m 30s"`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a number with a unit, e.g. \"500ms\", \"15s\", \"5m\""))
}

/// Parses a byte size: a bare integer (bytes) or a number with a unit (`B`, `KB`, `KiB`,
/// `MB`, `MiB`, `GB`, `GiB`; case-insensitive).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("\"{s}\" is not a size; write e.g. \"16KiB\", \"10MiB\" or a number of bytes")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\"; use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("8 kib"), Ok(8192));
        assert!(parse_size("ten MiB").is_err());
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
