//! Small helpers for human-readable output.

/// Formats a byte count with thousands separators.
pub fn bytes(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Lower-case hex of a byte slice.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `part / whole` as a percentage, 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::bytes(0), "0");
        assert_eq!(super::bytes(999), "999");
        assert_eq!(super::bytes(1000), "1,000");
        assert_eq!(super::bytes(10305688), "10,305,688");
    }
}
