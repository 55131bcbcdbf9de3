//! Inline commands: one line of space-separated words, what people type
//! into telnet or `nc` (`SET greeting "hello world"`) and what
//! redis-benchmark's `PING_INLINE` test sends.
//!
//! Words are split as Redis's `sdssplitargs` splits them, so a line means
//! the same here as there: double quotes with `\n`, `\r`, `\t`, `\b`, `\a`
//! and `\xHH` escapes, single quotes with only `\'`, and a closing quote
//! that must end its word. An empty line is no command at all and is
//! skipped, which is how Redis ignores the bare CRLF that `redis-cli
//! --pipe` sends before its closing `ECHO`. A NUL byte ends the line, as
//! it ends the C string `sdssplitargs` reads: a TLS `ClientHello` or other
//! binary garbage is split like any line, never looped on.

/// The longest inline line, as in Redis (`PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;

/// Why a line could not be split.
#[derive(Debug, PartialEq, Eq)]
pub struct Unbalanced;

/// The words of `line` (its CRLF already removed): at most one per byte,
/// so no line makes more than itself.
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, Unbalanced> {
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut words = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|b| is_space(*b)) {
            at += 1;
        }
        if at >= line.len() {
            return Ok(words);
        }
        let (word, next) = word(line, at)?;
        assert!(next > at, "a word is at least one byte of the line");
        words.push(word);
        at = next;
    }
}

/// C's `isspace`, which `sdssplitargs` uses between words.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

/// The word starting at `at`, and where the text after it starts.
fn word(line: &[u8], mut at: usize) -> Result<(Vec<u8>, usize), Unbalanced> {
    let mut word = Vec::new();
    while let Some(&b) = line.get(at) {
        at = match b {
            b' ' | b'\n' | b'\r' | b'\t' => break,
            b'"' => double_quoted(line, at + 1, &mut word)?,
            b'\'' => single_quoted(line, at + 1, &mut word)?,
            _ => {
                word.push(b);
                at + 1
            }
        };
    }
    Ok((word, at))
}

/// The rest of a `"…"` part from `at` (after the quote) into `word`;
/// where the text after the closing quote starts.
fn double_quoted(line: &[u8], mut at: usize, word: &mut Vec<u8>) -> Result<usize, Unbalanced> {
    loop {
        match *line.get(at..).ok_or(Unbalanced)? {
            [] => return Err(Unbalanced),
            [b'\\', b'x', high, low, ..] if hex(high).is_some() && hex(low).is_some() => {
                word.push(hex(high).unwrap_or(0) << 4 | hex(low).unwrap_or(0));
                at += 4;
            }
            [b'\\', escaped, ..] => {
                word.push(unescape(escaped));
                at += 2;
            }
            [b'"', ..] => return closed(line, at + 1),
            [b, ..] => {
                word.push(b);
                at += 1;
            }
        }
    }
}

/// The rest of a `'…'` part, where only `\'` is an escape.
fn single_quoted(line: &[u8], mut at: usize, word: &mut Vec<u8>) -> Result<usize, Unbalanced> {
    loop {
        match *line.get(at..).ok_or(Unbalanced)? {
            [] => return Err(Unbalanced),
            [b'\\', b'\'', ..] => {
                word.push(b'\'');
                at += 2;
            }
            [b'\'', ..] => return closed(line, at + 1),
            [b, ..] => {
                word.push(b);
                at += 1;
            }
        }
    }
}

/// A closing quote must end its word (`"a"b` is refused, as in Redis).
fn closed(line: &[u8], at: usize) -> Result<usize, Unbalanced> {
    match line.get(at) {
        None => Ok(at),
        Some(&b) if is_space(b) => Ok(at),
        Some(_) => Err(Unbalanced),
    }
}

fn unescape(b: u8) -> u8 {
    match b {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn lines_split_on_spaces_and_honour_quotes_as_redis_does() {
        assert_eq!(words("PING"), ["PING"]);
        assert_eq!(words("  SET  k\tv  "), ["SET", "k", "v"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("   "), Vec::<String>::new());
        assert_eq!(words(r#"SET k "hello world""#), ["SET", "k", "hello world"]);
        assert_eq!(words(r#"ECHO "a\"b\n\x41""#), ["ECHO", "a\"b\nA"]);
        assert_eq!(words(r#"ECHO "\xZZ""#), ["ECHO", "xZZ"]);
        assert_eq!(words(r"ECHO 'it\'s' '\n'"), ["ECHO", "it's", "\\n"]);
        assert_eq!(words(r#"ECHO a"b c" d"#), ["ECHO", "ab c", "d"]);
        assert_eq!(words(r#"ECHO """#), ["ECHO", ""]);
    }

    /// A NUL made `word` return an empty word without moving on, and
    /// `split` pushed empty words until the node ran out of memory (a
    /// fresh-eyes test: `PING \0`, or `openssl s_client` on the Redis
    /// port, grew a node by 300 MB a second until the kernel killed it).
    #[test]
    fn a_nul_byte_ends_an_inline_line_as_in_redis() {
        assert_eq!(words("PING \0"), ["PING"]);
        assert_eq!(words("\0"), Vec::<String>::new());
        assert_eq!(words("abc\0def ghi"), ["abc"]);
        assert_eq!(split(b"ECHO \"a\0b\""), Err(Unbalanced));
        assert_eq!(split(b"ECHO 'a\0b'"), Err(Unbalanced));
    }

    /// Every line of up to four bytes from the bytes that steer the
    /// splitter: it ends, with no more words, nor word bytes, than the
    /// line has bytes.
    #[test]
    fn every_short_line_splits_into_no_more_than_itself() {
        let alphabet = [0u8, b' ', b'\t', b'"', b'\'', b'\\', b'x', b'4', b'a', 0xff];
        let mut lines: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = lines
                .iter()
                .filter(|l| l.len() == lines.last().map_or(0, Vec::len))
                .flat_map(|l| alphabet.iter().map(move |&b| [l.as_slice(), &[b]].concat()))
                .collect();
            lines.extend(longer);
        }
        assert_eq!(lines.len(), 1 + 10 + 100 + 1_000 + 10_000);
        for line in &lines {
            if let Ok(words) = split(line) {
                assert!(words.len() <= line.len(), "{line:?} gave {words:?}");
                let bytes: usize = words.iter().map(Vec::len).sum();
                assert!(bytes <= line.len(), "{line:?} gave {words:?}");
            }
        }
    }

    #[test]
    fn unbalanced_quotes_are_refused() {
        for line in [
            r#"SET k "open"#,
            "SET k 'open",
            r#"ECHO "a"b"#,
            "ECHO 'a'b",
            r#"ECHO "\"#,
        ] {
            assert_eq!(split(line.as_bytes()), Err(Unbalanced), "{line}");
        }
    }
}
