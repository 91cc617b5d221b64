//! The fast path: an [`Object`] that reads as the one serde builds, made by a parser
//! for this one shape. It checks the whole record as strictly as `serde_json` does
//! (it may refuse more, never less) and gives up, leaving the record to the serde
//! path, at anything that is not the usual, well-formed user: an escape in a field it
//! keeps, a key given twice, a field of another type, a float, a deep nest. So every
//! answer it gives is the one the serde path would give, and every error still comes
//! from there, worded as before.
//!
//! Why: serde's generic visitors cost a call per token, and calls are what WebAssembly
//! makes dear (each checks the stack and the CPU deadline), as are a loop's turns
//! (each checks the deadline at the loop's head). So the usual record takes few of
//! either: a short string (a key, a name) ends within 16 bytes looked at in place by
//! two 64-bit tests, a longer one is scanned 16 bytes at a time by the SDK's `json`
//! finders (SSE2 natively, SIMD128 in WebAssembly), digits go 8 at a time, and
//! whitespace, which the usual record has none of, costs one look.
//! `tests` holds a differential test against the serde path over mutated users.

use crate::shape::{Dated, Leaf, List, Location, Login, Name, Node, Object, Picture, Street};
use sluice_plugin_sdk::json::find_string_special;
use std::borrow::Cow;

/// Deeper than any user; past it, the serde path (and its recursion limit) decides.
const MAX_DEPTH: usize = 32;

/// `value` read as a user or a whole response, or `None`: ask the serde path.
pub fn parse(value: &[u8]) -> Option<Object<'_>> {
    // Checked once, as a whole: every string borrowed below is then valid UTF-8.
    let text = simdutf8::basic::from_utf8(value).ok()?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    p.ws();
    let top = p.object_of(|p, key, top: &mut Object<'_>| match key {
        b"results" => set(&mut top.results, p.results()?),
        b"error" => None, // randomuser.me's error answer: the serde path says it
        _ => p.user_field(key, top),
    })?;
    p.ws();
    (p.i == p.s.len()).then_some(top)
}

/// Set a field seen for the first time (a key given twice: the serde path, whose
/// derived structs refuse a second copy even after a `null`). A `null` is kept as
/// `Leaf::Null` / `Node::Null` so a second copy is seen; serde's `None` for it reads
/// the same everywhere a field is read (missing), which the differential test checks.
#[inline(always)]
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    // What is replaced is `None`: forgotten rather than dropped, which cost a call
    // into `Leaf`'s drop glue for every field (0.7% of the job's CPU).
    std::mem::forget(slot.replace(value));
    Some(())
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// JSON's whitespace: space, tab, line feed, carriage return. The usual record
    /// has none between its tokens: one look, no loop (in WebAssembly a loop checks
    /// the CPU deadline at its head; some 400 times a user).
    #[inline(always)]
    fn ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.ws_run();
        }
    }

    #[inline(never)]
    fn ws_run(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// An object whose members `member` reads (it is at each value, after the colon),
    /// into a `T` that starts empty. Keys with escapes: the serde path.
    fn object_of<T: Default>(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8], &mut T) -> Option<()>,
    ) -> Option<T> {
        self.eat(b'{')?;
        let mut out = T::default();
        self.items(b'}', |p| {
            let key = p.plain_short()?;
            p.colon()?;
            member(p, key.as_bytes(), &mut out)
        })?;
        Some(out)
    }

    /// After a key: the colon, and the whitespace around it.
    fn colon(&mut self) -> Option<()> {
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(())
    }

    /// The members of an object or the elements of an array, after its opening
    /// bracket: `item` reads each, at its first byte; commas between, `close` after.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `"results": [user, ...]`.
    fn results(&mut self) -> Option<List<Node<Object<'a>>>> {
        self.eat(b'[')?;
        let mut users = Vec::new();
        self.items(b']', |p| {
            let user = p.object_of(|p, key, user: &mut Object<'a>| match key {
                // A user with these is not a user: the serde path.
                b"results" | b"error" => None,
                _ => p.user_field(key, user),
            })?;
            users.push(Node::Obj(user));
            Some(())
        })?;
        Some(List::Arr(users))
    }

    /// One member of a user object. Inlined, as `leaf_str` is: a call per field
    /// saved (0.9% of the job's instructions for the two; `obj` inlined too: +1.2%).
    #[inline(always)]
    fn user_field(&mut self, key: &[u8], user: &mut Object<'a>) -> Option<()> {
        match key {
            b"gender" => set(&mut user.gender, self.leaf_str()?),
            b"email" => set(&mut user.email, self.leaf_str()?),
            b"phone" => set(&mut user.phone, self.leaf_str()?),
            b"name" => self.obj(&mut user.name, |p, key, n: &mut Name<'a>| match key {
                b"first" => set(&mut n.first, p.leaf_str()?),
                b"last" => set(&mut n.last, p.leaf_str()?),
                _ => p.skip_value(1),
            }),
            b"location" => self.obj(
                &mut user.location,
                |p, key, l: &mut Location<'a>| match key {
                    b"street" => p.obj(&mut l.street, |p, key, s: &mut Street<'a>| match key {
                        b"number" => set(&mut s.number, p.leaf_scalar()?),
                        b"name" => set(&mut s.name, p.leaf_str()?),
                        _ => p.skip_value(3),
                    }),
                    b"city" => set(&mut l.city, p.leaf_str()?),
                    b"state" => set(&mut l.state, p.leaf_scalar()?),
                    b"country" => set(&mut l.country, p.leaf_str()?),
                    b"postcode" => set(&mut l.postcode, p.leaf_scalar()?),
                    _ => p.skip_value(2),
                },
            ),
            b"login" => self.obj(&mut user.login, |p, key, l: &mut Login<'a>| match key {
                b"uuid" => set(&mut l.uuid, p.leaf_str()?),
                b"username" => set(&mut l.username, p.leaf_str()?),
                _ => p.skip_value(2),
            }),
            b"dob" | b"registered" => {
                let slot = if key == b"dob" {
                    &mut user.dob
                } else {
                    &mut user.registered
                };
                self.obj(slot, |p, key, d: &mut Dated<'a>| match key {
                    b"date" => set(&mut d.date, p.leaf_str()?),
                    _ => p.skip_value(2),
                })
            }
            b"picture" => self.obj(
                &mut user.picture,
                |p, key, pic: &mut Picture<'a>| match key {
                    b"medium" => set(&mut pic.medium, p.leaf_str()?),
                    _ => p.skip_value(2),
                },
            ),
            _ => self.skip_value(1),
        }
    }

    /// An object field, into `slot`.
    fn obj<T: Default>(
        &mut self,
        slot: &mut Option<Node<T>>,
        member: impl FnMut(&mut Self, &'a [u8], &mut T) -> Option<()>,
    ) -> Option<()> {
        // The usual first: `null` looked for only when the value is not an object.
        let node = if self.peek() == Some(b'{') {
            Node::Obj(self.object_of(member)?)
        } else {
            self.literal(b"null")?;
            Node::Null
        };
        set(slot, node)
    }

    /// A string field, or `null`. Anything else: the serde path.
    #[inline(always)]
    fn leaf_str(&mut self) -> Option<Leaf<'a>> {
        if self.peek() == Some(b'"') {
            return Some(Leaf::Str(Cow::Borrowed(self.plain_short()?)));
        }
        self.literal(b"null")?;
        Some(Leaf::Null)
    }

    /// A string or integer field, or `null`.
    fn leaf_scalar(&mut self) -> Option<Leaf<'a>> {
        match self.peek()? {
            // A plain integer is written as JSON wrote it; anything else (a float, a
            // minus, a number past u64) is rare: the serde path spells it.
            b'-' => None,
            b'0'..=b'9' => {
                let start = self.i;
                // JSON's integer part: `0`, or digits not starting with one.
                if self.s[start] == b'0' {
                    self.i += 1;
                } else {
                    self.digits();
                }
                if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || self.i - start > 19 {
                    return None;
                }
                // SAFETY: `text` is valid UTF-8 and the token is ASCII digits: both
                // ends are character boundaries.
                let token = unsafe { self.text.get_unchecked(start..self.i) };
                Some(Leaf::Num(Cow::Borrowed(token)))
            }
            _ => self.leaf_str(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// [`plain_string`](Self::plain_string) for a string that is usually short (a
    /// key, a name): the end of one of up to 15 bytes is found by two 64-bit tests
    /// in place, without the call into the SDK's SIMD finder (a call is dear in
    /// WebAssembly: each checks the stack and the CPU deadline; for the keys, 3.9%
    /// of the job's instructions); a longer string, or one with an escape, goes the
    /// usual way.
    #[inline(always)]
    fn plain_short(&mut self) -> Option<&'a str> {
        let start = self.i + 1;
        match self.plain_short_end() {
            // SAFETY: as in `plain_string`: ASCII quotes at both ends.
            Some(end) => Some(unsafe { self.text.get_unchecked(start..end) }),
            None => self.plain_string(),
        }
    }

    /// Where the string at the parser ends (its closing quote), if it has no escape
    /// and ends within 16 bytes; the parser is then past it. Otherwise `None`, and
    /// the parser has not moved.
    #[inline(always)]
    fn plain_short_end(&mut self) -> Option<usize> {
        let start = self.i + 1;
        if self.peek() != Some(b'"') {
            return None;
        }
        let chunk = self.s.get(start..start + 16)?;
        let low = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
        let high = u64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
        let at = match (string_special_in(low), string_special_in(high)) {
            (0, 0) => return None,
            (0, h) => 8 + h.trailing_zeros() as usize / 8,
            (l, _) => l.trailing_zeros() as usize / 8,
        };
        if chunk[at] != b'"' {
            return None;
        }
        self.i = start + at + 1;
        Some(start + at)
    }

    /// A string with no escapes, borrowed (the quotes are not part of it).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + find_string_special(&self.s[start..])?;
        if self.s[end] != b'"' {
            return None; // an escape or a control character
        }
        self.i = end + 1;
        // SAFETY: `text` is valid UTF-8 (checked in `parse`), and both ends are at
        // ASCII quotes: character boundaries. (Slicing the `str` checked both, and
        // cost the seeds' job 5% more instructions.)
        Some(unsafe { self.text.get_unchecked(start..end) })
    }

    /// Skip a string, escapes checked as serde_json checks them.
    #[inline(always)]
    fn skip_string(&mut self) -> Option<()> {
        if self.plain_short_end().is_some() {
            return Some(());
        }
        self.eat(b'"')?;
        // Most strings have no escape: their end, found without entering a loop.
        self.i += find_string_special(&self.s[self.i..])?;
        if self.s[self.i] == b'"' {
            self.i += 1;
            return Some(());
        }
        self.skip_string_escaped()
    }

    /// The rest of a string from its first escape (or control character) on.
    #[inline(never)]
    fn skip_string_escaped(&mut self) -> Option<()> {
        loop {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.s.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
            self.i += find_string_special(&self.s[self.i..])?;
        }
    }

    /// A number, checked against JSON's grammar:
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. Exponents, and more
    /// digits than a double spells without rounding to infinity, go to the serde path.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            let before = self.i;
            self.digits();
            if self.i == before {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || self.i - start > 300 {
            return None;
        }
        Some(())
    }

    /// A run of digits, 8 bytes at a time (a time stamp's 13 take two looks, not 13
    /// turns of a loop that checks the CPU deadline at its head).
    fn digits(&mut self) {
        while let Some(chunk) = self.s.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // Per byte, zero for a digit (high nibble 3, low nibble 9 at most: adding
            // 6 to it carries into the high nibble past 9, never into the next byte).
            let off = ((x & 0xf0f0_f0f0_f0f0_f0f0) ^ 0x3030_3030_3030_3030)
                | (((x & 0x0f0f_0f0f_0f0f_0f0f) + 0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0);
            if off != 0 {
                self.i += off.trailing_zeros() as usize / 8;
                return;
            }
            self.i += 8;
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// [`skip`](Self::skip), a string (what most skipped values are) without the
    /// call into it.
    #[inline(always)]
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if self.peek() == Some(b'"') {
            self.skip_string()
        } else {
            self.skip(depth)
        }
    }

    /// Skip any value, checked, `depth` objects or arrays deep.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                self.items(b'}', |p| {
                    p.skip_string()?;
                    p.colon()?;
                    p.skip_value(depth + 1)
                })
            }
            b'[' => {
                self.i += 1;
                self.items(b']', |p| p.skip(depth + 1))
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }
}

/// A bit set in each byte of `x` (8 bytes, little-endian) that is a quote, a
/// backslash or a control character, and none in any byte before the first such one
/// (the usual SWAR tests: bytes after the first may be flagged falsely, never one
/// before it).
#[inline(always)]
fn string_special_in(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_0x20 = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    zero_in(x ^ (ONES * b'"' as u64)) | zero_in(x ^ (ONES * b'\\' as u64)) | below_0x20
}

#[cfg(test)]
mod tests;
