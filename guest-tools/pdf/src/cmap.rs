//! CMaps: a font's ToUnicode map (codes to text) and an embedded encoding
//! CMap (bytes to codes to CIDs).
//!
//! Ranges stay ranges: a 3 KB file may declare one `bfrange` over all 2^32
//! codes, which expanded into a map would take minutes and gigabytes (lopdf
//! does that). Lookups search the sorted ranges instead; how many ranges and
//! single entries one CMap may hold is capped.

use std::collections::HashMap;

use crate::lexer::{Lexer, Operand};

/// The most `bfchar`/`cidchar` entries and the most ranges one CMap keeps.
const MAX_ENTRIES: usize = 200_000;
/// The most destination strings one `bfrange` array may list.
const MAX_ARRAY: usize = 65_536;

#[derive(Debug)]
enum Target {
    /// The text of the range's first code; each next code adds one to its last character.
    Text(Vec<char>),
    /// One text per code, in order.
    List(Vec<String>),
    /// The CID of the range's first code; each next code is the next CID.
    Cid(u32),
}

#[derive(Debug)]
struct Range {
    first: u32,
    last: u32,
    target: Target,
}

#[derive(Debug, Default)]
pub(crate) struct CMap {
    /// (bytes, first, last): which byte sequences are codes, by length.
    codespace: Vec<(usize, u32, u32)>,
    singles: HashMap<u32, String>,
    cids: HashMap<u32, u32>,
    /// Sorted by first code.
    ranges: Vec<Range>,
}

/// A hex string's bytes as a big-endian number (at most four bytes count).
fn code_of(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .rev()
        .take(4)
        .rev()
        .fold(0u32, |acc, b| acc << 8 | u32::from(*b))
}

/// A ToUnicode destination: UTF-16BE, as the specification says.
fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

impl CMap {
    pub(crate) fn parse(data: &[u8]) -> CMap {
        let mut map = CMap::default();
        let mut lexer = Lexer::with_max_operands(data, 3 * MAX_ENTRIES);
        let mut operands = Vec::new();
        let mut entries = 0usize;
        while let Some(op) = lexer.next_op(&mut operands) {
            if entries > MAX_ENTRIES {
                break;
            }
            match op {
                b"endcodespacerange" => {
                    for pair in operands.chunks_exact(2) {
                        if let [Operand::String(lo), Operand::String(hi)] = pair
                            && (1..=4).contains(&lo.len())
                        {
                            map.codespace.push((lo.len(), code_of(lo), code_of(hi)));
                        }
                    }
                }
                b"endbfchar" => {
                    for pair in operands.chunks_exact(2) {
                        let text = match &pair[1] {
                            Operand::String(dst) => utf16(dst),
                            Operand::Name(name) => crate::glyphs::unicode_of_name(name).unwrap_or_default(),
                            _ => continue,
                        };
                        if let Operand::String(src) = &pair[0] {
                            map.singles.insert(code_of(src), text);
                            entries += 1;
                        }
                    }
                }
                b"endcidchar" => {
                    for pair in operands.chunks_exact(2) {
                        if let (Operand::String(src), Some(cid)) = (&pair[0], pair[1].number()) {
                            map.cids.insert(code_of(src), cid.max(0.0) as u32);
                            entries += 1;
                        }
                    }
                }
                b"endbfrange" | b"endcidrange" => {
                    let cid = op == b"endcidrange";
                    for triple in operands.chunks_exact(3) {
                        let (Operand::String(lo), Operand::String(hi)) = (&triple[0], &triple[1]) else {
                            continue;
                        };
                        let (first, last) = (code_of(lo), code_of(hi));
                        if last < first {
                            continue;
                        }
                        let target = match (&triple[2], cid) {
                            (Operand::Number(n), true) => Target::Cid(n.max(0.0) as u32),
                            (Operand::String(dst), false) => Target::Text(utf16(dst).chars().collect()),
                            (Operand::Array(items), false) => Target::List(
                                items
                                    .iter()
                                    .take(MAX_ARRAY)
                                    .map(|o| match o {
                                        Operand::String(s) => utf16(s),
                                        _ => String::new(),
                                    })
                                    .collect(),
                            ),
                            _ => continue,
                        };
                        // A range's list counts entry by entry against the cap.
                        entries += match &target {
                            Target::List(items) => items.len().max(1),
                            _ => 1,
                        };
                        map.ranges.push(Range { first, last, target });
                    }
                }
                _ => {}
            }
        }
        // Later entries win, as when a map is filled in order: a stable sort
        // keeps their order among equal starts, and lookups take the last fit.
        map.ranges.sort_by_key(|r| r.first);
        map
    }

    fn range(&self, code: u32) -> Option<&Range> {
        let end = self.ranges.partition_point(|r| r.first <= code);
        // Ranges rarely overlap; a few steps back find the one that holds the code.
        self.ranges[..end].iter().rev().take(64).find(|r| code <= r.last)
    }

    /// The text a ToUnicode map gives a code.
    pub(crate) fn text(&self, code: u32) -> Option<String> {
        if let Some(s) = self.singles.get(&code) {
            return Some(s.clone());
        }
        let r = self.range(code)?;
        let offset = code - r.first;
        match &r.target {
            Target::Text(chars) => {
                let (last, head) = chars.split_last()?;
                let shifted = char::from_u32(u32::from(*last).checked_add(offset)?)?;
                let mut s: String = head.iter().collect();
                s.push(shifted);
                Some(s)
            }
            Target::List(items) => items.get(offset as usize).cloned(),
            Target::Cid(_) => None,
        }
    }

    /// The CID an encoding CMap gives a code.
    pub(crate) fn cid(&self, code: u32) -> Option<u32> {
        if let Some(c) = self.cids.get(&code) {
            return Some(*c);
        }
        match self.range(code)?.target {
            Target::Cid(start) => start.checked_add(code - self.range(code)?.first),
            _ => None,
        }
    }

    /// How many bytes the code at the start of `bytes` takes, by the codespace
    /// ranges (`default` when the map declares none or none fits).
    pub(crate) fn code_len(&self, bytes: &[u8], default: usize) -> usize {
        for len in 1..=4 {
            if len > bytes.len() {
                break;
            }
            let code = code_of(&bytes[..len]);
            if self
                .codespace
                .iter()
                .any(|&(n, lo, hi)| n == len && lo <= code && code <= hi)
            {
                return len;
            }
        }
        default
    }

    pub(crate) fn has_codespace(&self) -> bool {
        !self.codespace.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_over_every_code_is_looked_up_not_expanded() {
        let map = CMap::parse(
            b"1 begincodespacerange <00000000> <FFFFFFFF> endcodespacerange\n\
              2 beginbfrange <00000000> <FFFFFFFF> <0041> <00000020> <00000021> [<0062> <0063>] endbfrange\n\
              1 beginbfchar <00000005> <00660069> endbfchar",
        );
        assert_eq!(map.text(0).as_deref(), Some("A"));
        assert_eq!(map.text(1).as_deref(), Some("B"));
        assert_eq!(map.text(0x21).as_deref(), Some("c"));
        assert_eq!(map.text(5).as_deref(), Some("fi"));
        assert_eq!(map.text(0xFFFF_FFFF), None, "beyond the last character");
        assert_eq!(map.code_len(&[0, 0, 0, 1], 1), 4);
    }
}
