//! A forgiving reader of content streams and CMaps: operands, then the
//! operator they belong to.
//!
//! lopdf's content parser gives up on a whole page at the first thing it does
//! not expect (an operator inside a `TJ` array, a stray delimiter), so a
//! page with one odd byte lost all its text. Like poppler, this reader skips
//! what it cannot use and goes on: keywords inside arrays are dropped,
//! unbalanced delimiters ignored, inline images (`BI … ID … EI`) passed over.

/// An operand of a content-stream operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Number(f64),
    /// A literal or hex string's bytes.
    String(Vec<u8>),
    Name(Vec<u8>),
    Array(Vec<Operand>),
    /// Anything else (a dictionary, `true`, `null`): kept as a placeholder so
    /// operand counts stay right.
    Other,
}

impl Operand {
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Operand::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Arrays nest at most this deep; deeper ones are read flat.
const MAX_NESTING: usize = 32;
pub(crate) struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    /// An operator keeps at most about this many operands (the last ones).
    max_operands: usize,
}

enum Token<'a> {
    Operand(Operand),
    Keyword(&'a [u8]),
    ArrayStart,
    ArrayEnd,
    DictStart,
    DictEnd,
}

fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl<'a> Lexer<'a> {
    /// A content stream's lexer: an operator takes a few operands.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Lexer::with_max_operands(data, 64)
    }

    /// A CMap's lexer: `endbfchar` takes every entry before it.
    pub(crate) fn with_max_operands(data: &'a [u8], max_operands: usize) -> Self {
        Lexer {
            data,
            pos: 0,
            max_operands: max_operands.max(2),
        }
    }

    /// The next operator and its operands, or `None` at the end.
    pub(crate) fn next_op(&mut self, operands: &mut Vec<Operand>) -> Option<&'a [u8]> {
        operands.clear();
        let mut arrays: Vec<Vec<Operand>> = Vec::new();
        let mut dict_depth = 0usize;
        loop {
            match self.token()? {
                Token::Operand(o) => match arrays.last_mut() {
                    Some(a) => a.push(o),
                    None if dict_depth > 0 => {}
                    None => self.push(operands, o),
                },
                Token::ArrayStart if arrays.len() < MAX_NESTING => arrays.push(Vec::new()),
                Token::ArrayStart => {}
                Token::ArrayEnd => {
                    if let Some(done) = arrays.pop() {
                        match arrays.last_mut() {
                            Some(outer) => outer.push(Operand::Array(done)),
                            None if dict_depth == 0 => self.push(operands, Operand::Array(done)),
                            None => {}
                        }
                    }
                }
                Token::DictStart => dict_depth += 1,
                Token::DictEnd => {
                    dict_depth = dict_depth.saturating_sub(1);
                    if dict_depth == 0 && arrays.is_empty() {
                        self.push(operands, Operand::Other);
                    }
                }
                // Inside an array or a dictionary a keyword is a value
                // (`true`, `null`) or a stray operator: either way not ours.
                Token::Keyword(k) if !arrays.is_empty() || dict_depth > 0 => {
                    if let Some(a) = arrays.last_mut()
                        && matches!(k, b"true" | b"false" | b"null")
                    {
                        a.push(Operand::Other);
                    }
                }
                Token::Keyword(b"true" | b"false" | b"null") => self.push(operands, Operand::Other),
                Token::Keyword(b"ID") => {
                    self.skip_inline_image();
                    operands.clear();
                }
                Token::Keyword(k) => return Some(k),
            }
        }
    }

    fn push(&self, operands: &mut Vec<Operand>, o: Operand) {
        if operands.len() >= self.max_operands {
            operands.drain(..self.max_operands / 2);
        }
        operands.push(o);
    }

    /// Passes over an inline image's data, up to and including `EI`.
    fn skip_inline_image(&mut self) {
        let start = (self.pos + 1).min(self.data.len());
        let data = &self.data[start..];
        let end = (0..data.len().saturating_sub(1))
            .find(|&i| {
                data[i] == b'E'
                    && data[i + 1] == b'I'
                    && (i == 0 || is_white(data[i - 1]))
                    && data.get(i + 2).is_none_or(|b| is_white(*b) || is_delimiter(*b))
            })
            .map_or(data.len(), |i| i + 2);
        self.pos = start + end;
    }

    fn token(&mut self) -> Option<Token<'a>> {
        let data = self.data;
        loop {
            while self.pos < data.len() && is_white(data[self.pos]) {
                self.pos += 1;
            }
            let b = *data.get(self.pos)?;
            if b == b'%' {
                while self.pos < data.len() && !matches!(data[self.pos], b'\r' | b'\n') {
                    self.pos += 1;
                }
                continue;
            }
            self.pos += 1;
            return Some(match b {
                b'[' => Token::ArrayStart,
                b']' => Token::ArrayEnd,
                b'<' if data.get(self.pos) == Some(&b'<') => {
                    self.pos += 1;
                    Token::DictStart
                }
                b'>' if data.get(self.pos) == Some(&b'>') => {
                    self.pos += 1;
                    Token::DictEnd
                }
                b'<' => Token::Operand(Operand::String(self.hex_string())),
                b'(' => Token::Operand(Operand::String(self.literal_string())),
                b'/' => Token::Operand(Operand::Name(self.name())),
                b'{' | b'}' | b'>' | b')' => continue,
                _ => {
                    let start = self.pos - 1;
                    while self.pos < data.len() && !is_white(data[self.pos]) && !is_delimiter(data[self.pos]) {
                        self.pos += 1;
                    }
                    let word = &data[start..self.pos];
                    match parse_number(word) {
                        Some(n) => Token::Operand(Operand::Number(n)),
                        None => Token::Keyword(word),
                    }
                }
            });
        }
    }

    fn name(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(&b) = self.data.get(self.pos) {
            if is_white(b) || is_delimiter(b) {
                break;
            }
            self.pos += 1;
            if b == b'#'
                && let (Some(h), Some(l)) = (
                    self.data.get(self.pos).copied().and_then(hex),
                    self.data.get(self.pos + 1).copied().and_then(hex),
                )
            {
                out.push(h << 4 | l);
                self.pos += 2;
                continue;
            }
            out.push(b);
        }
        out
    }

    fn hex_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        while let Some(&b) = self.data.get(self.pos) {
            self.pos += 1;
            if b == b'>' {
                break;
            }
            if let Some(d) = hex(b) {
                match high.take() {
                    Some(h) => out.push(h << 4 | d),
                    None => high = Some(d),
                }
            }
        }
        if let Some(h) = high {
            out.push(h << 4);
        }
        out
    }

    fn literal_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        while let Some(&b) = self.data.get(self.pos) {
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    out.push(b);
                }
                b'\\' => {
                    let Some(&e) = self.data.get(self.pos) else { break };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'\r' => {
                            if self.data.get(self.pos) == Some(&b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.data.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }
}

fn parse_number(word: &[u8]) -> Option<f64> {
    let first = *word.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return None;
    }
    let s = std::str::from_utf8(word).ok()?;
    if let Ok(n) = s.parse::<f64>() {
        return n.is_finite().then_some(n);
    }
    // Producers write `--5` or `5-`; poppler reads what digits there are.
    let cleaned: String = s
        .chars()
        .enumerate()
        .filter(|(i, c)| c.is_ascii_digit() || *c == '.' || (*i == 0 && *c == '-'))
        .map(|(_, c)| c)
        .collect();
    cleaned.parse::<f64>().ok().or(Some(0.0))
}
