//! Whole numbers written as text without the shortest-digits algorithms.
//!
//! Both the sheet XML `write` produces (ryu's text, as rust_xlsxwriter
//! writes it) and the JSON `read` returns (serde_json's) give a whole number
//! as its digits and `.0`. Most numbers of a spreadsheet are whole (ids,
//! counts, date serials, formulas' cached `0`), and ryu and zmij spend most of
//! their time on 128-bit multiplications that WebAssembly has no instruction
//! for: in the xlsx bench those two were about a sixth of `write`'s
//! instructions natively. The tests hold the text equal to ryu's and
//! serde_json's over whole numbers and their edges.

/// The largest magnitude written here: well below 1e16, where ryu turns to
/// exponents, and exact in an `i64`.
const LIMIT: f64 = 1e15;

/// Writes `n` as `digits.0` (`-` first when negative) at the end of `out`
/// when it is a whole number below [`LIMIT`] in magnitude; `false`, writing
/// nothing, for anything else (fractions, `-0.0`, huge values, NaN).
pub(crate) fn push_whole(out: &mut Vec<u8>, n: f64) -> bool {
    let Some(digits) = whole_digits(n) else {
        return false;
    };
    let mut buf = [0u8; 20];
    out.extend_from_slice(digits.text(&mut buf));
    out.extend_from_slice(b".0");
    true
}

/// How many characters `n`'s `Display` text has when it is whole and
/// below [`LIMIT`] (`Display` writes no `.0`).
pub(crate) fn whole_display_len(n: f64) -> Option<u32> {
    let digits = whole_digits(n)?;
    let mut buf = [0u8; 20];
    Some(digits.text(&mut buf).len() as u32)
}

struct Whole(i64);

impl Whole {
    fn text<'b>(&self, buf: &'b mut [u8; 20]) -> &'b [u8] {
        let negative = self.0 < 0;
        let mut n = self.0.unsigned_abs();
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if negative {
            i -= 1;
            buf[i] = b'-';
        }
        &buf[i..]
    }
}

fn whole_digits(n: f64) -> Option<Whole> {
    // `-0.0 == 0.0`, but its text is `-0.0`: left to the general path. NaN
    // fails the first test (and its `fract` is NaN).
    let below_limit = n.abs() < LIMIT;
    if !below_limit || n.fract() != 0.0 || (n == 0.0 && n.is_sign_negative()) {
        return None;
    }
    Some(Whole(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<f64> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            9.0,
            10.0,
            99.0,
            100.0,
            1e14,
            1e15 - 1.0,
            1e15,
            -1e15,
            1e16,
            0.5,
            -2.5,
        ];
        let mut x = 1u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let digits = (x >> 60) as i32;
            let m = (x >> 11) as f64 / (1u64 << 53) as f64;
            let n = (m * 10f64.powi(digits)).trunc();
            v.push(if x & 1 == 0 { n } else { -n });
            v.push(n + 0.25);
        }
        for i in 0..100_000 {
            v.push(f64::from(i));
        }
        v.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE, 1e-300]);
        v
    }

    #[test]
    fn whole_numbers_read_as_ryu_and_serde_json_write_them() {
        let mut ryu = ryu::Buffer::new();
        for n in samples() {
            let mut out = Vec::new();
            if push_whole(&mut out, n) {
                let text = std::str::from_utf8(&out).unwrap();
                assert_eq!(text, ryu.format_finite(n), "{n}");
                assert_eq!(text, serde_json::to_string(&n).unwrap(), "{n}");
                assert_eq!(whole_display_len(n), Some(n.to_string().len() as u32), "{n}");
            } else {
                assert!(out.is_empty());
                assert_eq!(whole_display_len(n), None, "{n}");
                assert!(!n.is_finite() || n.fract() != 0.0 || n.abs() >= LIMIT || n.is_sign_negative() && n == 0.0);
            }
        }
    }
}
