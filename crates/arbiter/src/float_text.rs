//! `f64` as the text `format!("{x}")` gives (shortest round-trip digits, plain decimal, never an
//! exponent), built from zmij's shortest digits for numbers in [−1, 1].
//!
//! `arbiter aggregate` writes one posterior per item and label, 600,000 numbers for a
//! million-rating file; the standard formatter took longer than the Dawid–Skene fit. zmij
//! (already compiled for serde_json) finds the shortest digits several times faster, and its
//! layout (`1e-10`, `1.0`) is rewritten here. The two differ only when the value lies exactly
//! halfway between two shortest candidates (zmij rounds to even, `{}` rounds up), which needs a
//! value with few significant bits, such as 0.71973419189453125; such values, and numbers
//! outside [−1, 1], go to the standard formatter.

use std::fmt::Write as _;

/// Appends `x` to `out` exactly as `write!(out, "{x}")` would.
pub fn push_f64(out: &mut String, x: f64, buf: &mut zmij::Buffer) {
    if x.is_nan() || x.abs() > 1.0 {
        let _ = write!(out, "{x}");
        return;
    }
    let text = buf.format_finite(x);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    // Most posteriors come out as `0.` and digits ending in a non-zero one, which is already
    // the text of `{}` (the general path below would rebuild the same bytes).
    if let Some(frac) = text.strip_prefix("0.")
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().last().is_some_and(|b| b != b'0')
    {
        let zeros = frac.bytes().take_while(|&b| b == b'0').count();
        if !may_be_halfway(x, frac.len() - zeros, -(zeros as i64)) {
            if negative {
                out.push('-');
            }
            out.push_str(text);
            return;
        }
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i32>() {
            Ok(e) => (m, e),
            Err(_) => {
                let _ = write!(out, "{x}");
                return;
            }
        },
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // All digits, and where the decimal point falls among them.
    let mut digits = [0u8; 48];
    let mut n = 0;
    for b in int.bytes().chain(frac.bytes()) {
        let Some(slot) = digits.get_mut(n) else {
            let _ = write!(out, "{x}");
            return;
        };
        *slot = b;
        n += 1;
    }
    let mut point = int.len() as i64 + i64::from(exponent);
    let mut first = 0;
    while first < n && digits[first] == b'0' {
        first += 1;
        point -= 1;
    }
    let mut end = n;
    while end > first && digits[end - 1] == b'0' {
        end -= 1;
    }
    let digits = &digits[first..end];
    if may_be_halfway(x, digits.len(), point) {
        let _ = write!(out, "{x}");
        return;
    }
    if negative {
        out.push('-');
    }
    let Ok(digits) = std::str::from_utf8(digits) else {
        let _ = write!(out, "{}", x.abs());
        return;
    };
    if digits.is_empty() {
        out.push('0');
    } else if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(digits);
    } else if point as usize >= digits.len() {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        let (a, b) = digits.split_at(point as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
}

/// Whether `x` could lie exactly halfway between two `n`-digit decimals (the one case where
/// the shortest digits of zmij and of `{}` differ), given that its shortest form has `n`
/// significant digits and its decimal point `point` places after the first. `x` = m·2^−k with
/// m odd has an exact decimal expansion of k fractional digits, of which the first
/// max(0, −point) are zeros; a halfway value has exactly n + 1 significant digits, so values
/// with more than n + 2 cannot be one.
fn may_be_halfway(x: f64, n: usize, point: i64) -> bool {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    if m == 0 {
        return false;
    }
    let k = -(e + i64::from(m.trailing_zeros()));
    k - (-point).max(0) <= n as i64 + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x: f64, buf: &mut zmij::Buffer) {
        let mut got = String::new();
        push_f64(&mut got, x, buf);
        assert_eq!(got, format!("{x}"), "bits {:#x}", x.to_bits());
    }

    #[test]
    fn same_text_as_display() {
        let mut buf = zmij::Buffer::new();
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e-10,
            1e-5,
            1e-4,
            0.1 + 0.2,
            1.0 / 3.0,
            2.0 / 3.0,
            123456789.0,
            1e15,
            1e16,
            1e17,
            1e21,
            1e22,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            f64::EPSILON,
            1.0 - f64::EPSILON,
            0.999_999_999_999_999_9,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            check(x, &mut buf);
        }
        // Random bit patterns (every exponent) and random probabilities (what is written).
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            check(f64::from_bits(next()), &mut buf);
            check((next() >> 11) as f64 / (1u64 << 53) as f64, &mut buf);
            // Few significant bits: the values that could fall halfway between candidates.
            let bits = 1 + (next() % 60) as i32;
            check((next() >> (64 - bits)) as f64 * 2f64.powi(-bits), &mut buf);
            check(-(next() as f64 / u64::MAX as f64).powi(7), &mut buf);
        }
    }
}
