//! Kubernetes resource quantities (`1Gi`, `500M`, `1.5Gi`, `2e9`) read as whole units, for
//! comparing storage sizes.

/// The number of bytes (or units) a quantity stands for, rounded up; `None` if it is not a
/// quantity Kubernetes would accept or is negative.
pub fn parse(q: &str) -> Option<u128> {
    parse_scaled(q, 1)
}

/// The number of thousandths a quantity stands for (`500m` → 500, `2` → 2000), rounded up:
/// CPU requests and capacities in millicores.
pub fn parse_milli(q: &str) -> Option<u128> {
    parse_scaled(q, 1000)
}

/// A quantity times `scale`, rounded up.
fn parse_scaled(q: &str, scale: u128) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "m" => return parse_number(number, scale).map(|n| n.div_ceil(1000)),
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..].parse().ok()?;
            10u128.checked_pow(exp)?
        }
        _ => return None,
    };
    parse_number(number, multiplier.checked_mul(scale)?)
}

/// `number` (decimal, at most one '.') times `multiplier`, rounded up.
fn parse_number(number: &str, multiplier: u128) -> Option<u128> {
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int.checked_mul(multiplier)?;
    if !frac.is_empty() && frac.len() <= 18 {
        let scale = 10u128.pow(frac.len() as u32);
        let f: u128 = frac.parse().ok()?;
        total = total.checked_add((f * multiplier).div_ceil(scale))?;
    } else if frac.len() > 18 {
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::{parse, parse_milli};

    #[test]
    fn cpu_reads_in_millicores() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("0.25"), Some(250));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("x"), None);
    }

    #[test]
    fn quantities_read_as_kubernetes_reads_them() {
        assert_eq!(parse("1Gi"), Some(1 << 30));
        assert_eq!(parse("500M"), Some(500_000_000));
        assert_eq!(parse("1.5Gi"), Some(3 << 29));
        assert_eq!(parse("2e3"), Some(2000));
        assert_eq!(parse("100"), Some(100));
        assert_eq!(parse("1500m"), Some(2));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("-1Gi"), None);
        assert_eq!(parse("1GB"), None);
        assert_eq!(parse(""), None);
    }
}
