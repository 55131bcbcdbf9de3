//! Inline commands: one line of space-separated words, what people type
//! into telnet or `nc` (`SET greeting "hello world"`) and what
//! redis-benchmark's `PING_INLINE` test sends.
//!
//! Words are split as Redis's `sdssplitargs` splits them, so a line means
//! the same here as there: double quotes with `\n`, `\r`, `\t`, `\b`, `\a`
//! and `\xHH` escapes, single quotes with only `\'`, and a closing quote
//! that must end its word. An empty line is no command at all and is
//! skipped, which is how Redis ignores the bare CRLF that `redis-cli
//! --pipe` sends before its closing `ECHO`.

/// The longest inline line, as in Redis (`PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;

/// Why a line could not be split.
#[derive(Debug, PartialEq, Eq)]
pub struct Unbalanced;

/// The words of `line` (its CRLF already removed).
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, Unbalanced> {
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
            b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
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
