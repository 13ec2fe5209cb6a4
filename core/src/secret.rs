//! The key format: `<prefix>_<env>_<body><check>`.
//!
//! `prefix` (per vault, `nanu` by default) and `env` (`live`, `test`, ...) are each a lowercase
//! letter followed by up to 15 lowercase letters or digits. `body` is 32 random bytes written
//! as one base62 number (`0-9A-Za-z`), left-padded with `0` to 43 characters. `check` is the
//! CRC32 of every byte before it, as 6 base62 characters, left-padded with `0`.
//!
//! The prefix and env are in the text for people and secret scanners only: the vault keeps the
//! env of each key itself, and nothing is ever parsed out of a secret by splitting on `_`.
//! The checksum lets [`check_shape`] turn away typos and garbage before any storage access.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorCode, Result};

/// Longest prefix or env, in bytes.
const MAX_WORD_LEN: usize = 16;

/// Random bytes in a body.
const BODY_BYTES: usize = 32;

/// Base62 characters of a body: the fewest that hold any 256-bit number (62^43 > 2^256).
const BODY_LEN: usize = 43;

/// Base62 characters of a check: the fewest that hold any CRC32 (62^6 > 2^32).
const CHECK_LEN: usize = 6;

/// Characters after the second underscore.
const TAIL_LEN: usize = BODY_LEN + CHECK_LEN;

/// Shortest valid key: one-letter prefix and env.
const MIN_SECRET_LEN: usize = 1 + 1 + 1 + 1 + TAIL_LEN;

/// Longest input the offline shape check of a verify looks at: the longest valid key (16-byte
/// prefix and env). Longer input is malformed at once.
pub const MAX_SECRET_LEN: usize = MAX_WORD_LEN + 1 + MAX_WORD_LEN + 1 + TAIL_LEN;

/// Surrounding whitespace [`check_shape`] is willing to trim. Raw input longer than
/// `MAX_SECRET_LEN` plus this is rejected without being looked at, so that a huge input costs
/// nothing, not even a scan for whitespace.
const MAX_PADDING: usize = 64;

/// The regex secret scanners can use to find keys in text (any vault prefix, any env).
///
/// `\b` counts `_` as a word character, so a key glued to a preceding word by an underscore
/// (`token_nanu_live_...`) is not found; every ordinary separator (space, quote, `=`, `:`,
/// line start) is.
pub const SECRET_REGEX: &str = r"\b[a-z][a-z0-9]{0,15}_[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{49}\b";

/// Base62 digits, in value order.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A secret key string. Zeroed on drop; `Debug` shows at most the prefix and env
/// (`Secret(nanu_live_…)`), never the body.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The key text, to hand to the user once. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Everything up to the second underscore is public by design; the rest is not.
        let text = self.0.as_bytes();
        let public = match scan_word(text, 0) {
            Some(after_prefix) => scan_word(text, after_prefix + 1).map(|end| &self.0[..=end]),
            None => None,
        };
        write!(f, "Secret({}…)", public.unwrap_or(""))
    }
}

/// Checks a vault's key prefix: a lowercase ASCII letter, then up to 15 lowercase ASCII letters
/// or digits.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    validate_word("key prefix", prefix)
}

/// Checks a key environment name (`live`, `test`, ...): a lowercase ASCII letter, then up to
/// 15 lowercase ASCII letters or digits.
pub fn validate_env(env: &str) -> Result<()> {
    validate_word("key env", env)
}

fn validate_word(what: &str, word: &str) -> Result<()> {
    if is_word(word.as_bytes()) {
        return Ok(());
    }
    // The word is configuration, never key material, so it may be quoted; but only a bounded
    // piece of it, in case a caller passed something huge by mistake.
    let shown: String = word.chars().take(MAX_WORD_LEN + 8).collect();
    let ellipsis = if shown.len() < word.len() { "…" } else { "" };
    Err(Error::invalid(format!(
        "invalid {what} {shown:?}{ellipsis}: expected a lowercase letter followed by up to \
         {} lowercase letters or digits",
        MAX_WORD_LEN - 1
    )))
}

/// Mints a new secret from 32 bytes of the operating system's random source.
///
/// Fails with `invalid_argument` for a bad prefix or env, and with `storage` if the random
/// source cannot be read.
pub fn generate(prefix: &str, env: &str) -> Result<Secret> {
    validate_prefix(prefix)?;
    validate_env(env)?;

    let mut random = Zeroizing::new([0u8; BODY_BYTES]);
    getrandom::fill(random.as_mut()).map_err(|e| {
        Error::new(
            ErrorCode::Storage,
            format!("cannot read the system random source: {e}"),
        )
    })?;
    Ok(assemble(prefix, env, &random))
}

/// Writes a secret from given body bytes. The caller has validated `prefix` and `env`.
/// Separate from [`generate`] so that tests and shared test vectors can be deterministic.
pub(crate) fn assemble(prefix: &str, env: &str, body: &[u8; BODY_BYTES]) -> Secret {
    // Exact capacity: the string never reallocates, so no unzeroed copy is left behind.
    let len = prefix.len() + 1 + env.len() + 1 + TAIL_LEN;
    let mut text = Zeroizing::new(String::with_capacity(len));
    text.push_str(prefix);
    text.push('_');
    text.push_str(env);
    text.push('_');

    let mut digits = Zeroizing::new([0u8; BODY_LEN]);
    encode_body(body, &mut digits);
    for &digit in digits.iter() {
        text.push(char::from(digit));
    }

    let mut check = [0u8; CHECK_LEN];
    encode_check(crc32fast::hash(text.as_bytes()), &mut check);
    for &digit in &check {
        text.push(char::from(digit));
    }
    Secret(text)
}

/// The offline check run before any storage access. Trims surrounding ASCII whitespace, then
/// checks the length bound, the character classes of the whole shape and the checksum.
/// Returns the trimmed text if it could be a key, `None` if it cannot.
///
/// Case-sensitive and exact: any changed, dropped or added character, internal whitespace,
/// NUL or non-ASCII character (look-alikes such as Cyrillic `а` or fullwidth digits) is
/// rejected. Raw input longer than [`MAX_SECRET_LEN`] plus 64 bytes of padding is rejected
/// without being read. Does not allocate.
///
/// A body is not checked to be below 2^256: such a text cannot have been minted, and the
/// storage lookup that follows finds no key for it.
pub fn check_shape(input: &str) -> Option<&str> {
    if input.len() > MAX_SECRET_LEN + MAX_PADDING {
        return None;
    }
    let text = input.trim_ascii();
    let bytes = text.as_bytes();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
        return None;
    }

    let after_prefix = scan_word(bytes, 0)?;
    let after_env = scan_word(bytes, after_prefix + 1)?;
    let tail = &bytes[after_env + 1..];
    if tail.len() != TAIL_LEN || !tail.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }

    let (checked, check) = bytes.split_at(bytes.len() - CHECK_LEN);
    let stated = decode_check(check)?;
    (stated == u64::from(crc32fast::hash(checked))).then_some(text)
}

/// Reads a prefix or env starting at `start` and returns the index of the `_` that ends it.
fn scan_word(bytes: &[u8], start: usize) -> Option<usize> {
    let rest = bytes.get(start..)?;
    let len = rest
        .iter()
        .take(MAX_WORD_LEN + 1)
        .position(|&b| b == b'_')?;
    is_word(&rest[..len]).then_some(start + len)
}

/// `[a-z][a-z0-9]{0,15}`.
fn is_word(word: &[u8]) -> bool {
    match word.split_first() {
        Some((first, rest)) => {
            word.len() <= MAX_WORD_LEN
                && first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }
        None => false,
    }
}

/// Writes 32 bytes, read as one big-endian number, as 43 base62 digits.
fn encode_body(body: &[u8; BODY_BYTES], out: &mut [u8; BODY_LEN]) {
    // Long division by 62 over eight 32-bit limbs, least significant digit first.
    let mut limbs = [0u32; BODY_BYTES / 4];
    for (limb, chunk) in limbs.iter_mut().zip(body.chunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    for slot in out.iter_mut().rev() {
        let mut rem = 0u64;
        for limb in limbs.iter_mut() {
            let cur = (rem << 32) | u64::from(*limb);
            // cur < 62 * 2^32, so the quotient fits in 32 bits and the remainder below 62.
            *limb = (cur / 62) as u32;
            rem = cur % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    limbs.zeroize();
}

/// Writes a CRC32 as 6 base62 digits.
fn encode_check(crc: u32, out: &mut [u8; CHECK_LEN]) {
    let mut value = crc;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
}

/// Reads 6 base62 digits. The result can exceed `u32::MAX` (62^6 > 2^32), and then matches
/// no CRC.
fn decode_check(digits: &[u8]) -> Option<u64> {
    digits
        .iter()
        .try_fold(0u64, |acc, &b| Some(acc * 62 + u64::from(digit_value(b)?)))
}

fn digit_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'Z' => Some(b - b'A' + 10),
        b'a'..=b'z' => Some(b - b'a' + 36),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(prefix: &str, env: &str, seed: u8) -> Secret {
        let mut body = [0u8; BODY_BYTES];
        for (i, b) in body.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(97);
        }
        assemble(prefix, env, &body)
    }

    /// Keys with short, default and longest words, for the exhaustive edit tests.
    fn samples() -> Vec<Secret> {
        vec![
            fixed("nanu", "live", 1),
            fixed("a", "b", 2),
            fixed("abcdefghijklmno9", "z0123456789abcde", 3),
        ]
    }

    fn replacements() -> Vec<char> {
        let mut chars: Vec<char> = (0u8..=127).map(char::from).collect();
        // Look-alikes and invisible characters: Cyrillic a, o, e; fullwidth 0 and A;
        // Greek omicron; zero-width space; no-break space; e with acute accent.
        chars.extend(['а', 'о', 'е', '０', 'Ａ', 'ο', '\u{200B}', '\u{A0}', 'é']);
        chars
    }

    #[test]
    fn generated_secrets_pass_and_match_the_regex() {
        let re = regex::Regex::new(SECRET_REGEX).unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let (prefix, env) = if i % 2 == 0 {
                ("nanu", "live")
            } else {
                ("acme7", "test")
            };
            let secret = generate(prefix, env).unwrap();
            let text = secret.expose();
            assert_eq!(text.len(), prefix.len() + env.len() + 2 + 49);
            assert!(text.starts_with(&format!("{prefix}_{env}_")));
            assert_eq!(check_shape(text), Some(text));
            let found = re.find(text).map(|m| m.as_str());
            assert_eq!(found, Some(text));
            assert!(seen.insert(text.to_owned()), "duplicate secret");
        }
    }

    #[test]
    fn matches_independent_test_vectors() {
        // Computed with Python's arbitrary-precision integers and zlib.crc32.
        let vectors: [([u8; 32], &str); 3] = [
            (
                [0; 32],
                "nanu_live_000000000000000000000000000000000000000000001Oy2L",
            ),
            (
                [0xff; 32],
                "nanu_live_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp137oXGz",
            ),
            (
                std::array::from_fn(|i| i as u8),
                "nanu_live_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf0oCLgH",
            ),
        ];
        for (body, expected) in vectors {
            let secret = assemble("nanu", "live", &body);
            assert_eq!(secret.expose(), expected);
            assert_eq!(check_shape(expected), Some(expected));
        }
    }

    #[test]
    fn check_is_crc32_of_everything_before_it() {
        let secret = fixed("nanu", "live", 9);
        let text = secret.expose();
        let (head, check) = text.split_at(text.len() - CHECK_LEN);
        assert_eq!(
            decode_check(check.as_bytes()),
            Some(u64::from(crc32fast::hash(head.as_bytes())))
        );
    }

    #[test]
    fn every_substitution_is_rejected() {
        for secret in samples() {
            let text = secret.expose();
            for (pos, original) in text.char_indices() {
                for c in replacements() {
                    if c == original {
                        continue;
                    }
                    let mut edited = String::from(&text[..pos]);
                    edited.push(c);
                    edited.push_str(&text[pos + 1..]);
                    assert_eq!(check_shape(&edited), None, "{edited:?} passed");
                }
            }
        }
    }

    #[test]
    fn every_deletion_is_rejected() {
        for secret in samples() {
            let text = secret.expose();
            for pos in 0..text.len() {
                let edited = format!("{}{}", &text[..pos], &text[pos + 1..]);
                assert_eq!(check_shape(&edited), None, "{edited:?} passed");
            }
        }
    }

    #[test]
    fn every_insertion_is_rejected_except_trimmed_whitespace() {
        for secret in samples() {
            let text = secret.expose();
            for pos in 0..=text.len() {
                for c in replacements() {
                    let edited = format!("{}{c}{}", &text[..pos], &text[pos..]);
                    let at_an_end = pos == 0 || pos == text.len();
                    if at_an_end && c.is_ascii_whitespace() {
                        assert_eq!(check_shape(&edited), Some(text));
                    } else {
                        assert_eq!(check_shape(&edited), None, "{edited:?} passed");
                    }
                }
            }
        }
    }

    #[test]
    fn case_changes_are_rejected() {
        for secret in samples() {
            let text = secret.expose();
            for (pos, c) in text.char_indices().filter(|(_, c)| c.is_ascii_alphabetic()) {
                let swapped = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
                let edited = format!("{}{swapped}{}", &text[..pos], &text[pos + 1..]);
                assert_eq!(check_shape(&edited), None, "{edited:?} passed");
            }
            assert_eq!(check_shape(&text.to_ascii_uppercase()), None);
            assert_eq!(check_shape(&text.to_ascii_lowercase()), None);
        }
    }

    #[test]
    fn adjacent_transpositions_are_rejected() {
        for secret in samples() {
            let text = secret.expose();
            let bytes = text.as_bytes();
            for pos in 0..bytes.len() - 1 {
                if bytes[pos] == bytes[pos + 1] {
                    continue;
                }
                let mut edited = bytes.to_vec();
                edited.swap(pos, pos + 1);
                let edited = String::from_utf8(edited).unwrap();
                assert_eq!(check_shape(&edited), None, "{edited:?} passed");
            }
        }
    }

    #[test]
    fn nul_look_alikes_and_internal_space_are_rejected() {
        let secret = fixed("nanu", "live", 4);
        let text = secret.expose();
        let cases = [
            format!("{text}\0"),
            format!("\0{text}"),
            text.replacen('a', "а", 1),
            text.replacen('e', "е", 1),
            text.replacen('_', " ", 1),
            text.replacen('_', "＿", 1),
            text.chars()
                .map(|c| if c.is_ascii_digit() { fullwidth(c) } else { c })
                .collect(),
            format!("{} {}", &text[..20], &text[20..]),
            format!("{}\t{}", &text[..20], &text[20..]),
        ];
        for case in &cases {
            assert_ne!(case, text);
            assert_eq!(check_shape(case), None, "{case:?} passed");
        }
    }

    fn fullwidth(c: char) -> char {
        char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap()
    }

    #[test]
    fn surrounding_ascii_whitespace_is_trimmed() {
        let secret = fixed("nanu", "test", 5);
        let text = secret.expose();
        assert_eq!(check_shape(&format!("  {text}\r\n")), Some(text));
        assert_eq!(check_shape(&format!("\t{text}")), Some(text));
        assert_eq!(
            check_shape(&format!("{}{text}", " ".repeat(MAX_PADDING))),
            Some(text)
        );
        // Non-ASCII whitespace is not trimmed.
        assert_eq!(check_shape(&format!("\u{A0}{text}")), None);
        assert_eq!(check_shape(&format!("{text}\u{3000}")), None);
    }

    #[test]
    fn oversized_input_is_rejected_by_length() {
        let secret = fixed("abcdefghijklmno9", "z0123456789abcde", 6);
        let text = secret.expose();
        assert_eq!(text.len(), MAX_SECRET_LEN);
        assert_eq!(check_shape(text), Some(text));
        let padded = format!("{text}{}", " ".repeat(MAX_PADDING + 1));
        assert_eq!(check_shape(&padded), None);
        let mib = "a".repeat(1 << 20);
        assert_eq!(check_shape(&mib), None);
        let mib_of_space = format!("{text}{}", " ".repeat(1 << 20));
        assert_eq!(check_shape(&mib_of_space), None);
    }

    #[test]
    fn garbage_is_rejected() {
        for input in [
            "",
            " ",
            "nanu",
            "nanu_live_",
            "___",
            "nanu__",
            &"_".repeat(60),
        ] {
            assert_eq!(check_shape(input), None, "{input:?} passed");
        }
    }

    #[test]
    fn near_misses_do_not_match_the_regex() {
        let re = regex::Regex::new(SECRET_REGEX).unwrap();
        let secret = fixed("nanu", "live", 7);
        let text = secret.expose();
        let body = &text[10..];
        let near_misses = [
            format!("nanu_live_{}", &body[1..]),
            format!("nanu_live_{body}x"),
            format!("nanu_live_{}_{}", &body[..20], &body[21..]),
            format!("Nanu_live_{body}"),
            format!("nanu_LIVE_{body}"),
            format!("nanu_live{body}"),
            format!("1nanu_live_{body}"),
            format!("abcdefghijklmnopq_live_{body}"),
        ];
        for near_miss in &near_misses {
            assert!(!re.is_match(near_miss), "{near_miss:?} matched");
            assert_eq!(check_shape(near_miss), None, "{near_miss:?} passed");
        }
        // Glued to a word by an underscore: documented as not found.
        assert!(!re.is_match(&format!("token_{text}")));
        // Found inside ordinary text.
        for context in [
            format!("Authorization: Bearer {text}\n"),
            format!("NANU_KEY=\"{text}\""),
            format!("{{\"key\":\"{text}\"}}"),
        ] {
            assert_eq!(re.find(&context).map(|m| m.as_str()), Some(text));
        }
    }

    #[test]
    fn debug_shows_only_prefix_and_env() {
        for secret in samples() {
            let text = secret.expose();
            let shown = format!("{secret:?}");
            let second_underscore = text.rfind('_').unwrap();
            assert_eq!(shown, format!("Secret({}…)", &text[..=second_underscore]));
            assert!(!shown.contains(&text[second_underscore + 1..second_underscore + 5]));
        }
        let minted = generate("nanu", "live").unwrap();
        assert_eq!(format!("{minted:?}"), "Secret(nanu_live_…)");
        assert_eq!(format!("{:?}", Some(&minted)), "Some(Secret(nanu_live_…))");
    }

    #[test]
    fn bad_prefix_and_env_are_invalid_arguments() {
        for bad in [
            "",
            "Nanu",
            "1nanu",
            "na-nu",
            "na_nu",
            "nanü",
            "abcdefghijklmnopq",
            " nanu",
        ] {
            let err = validate_prefix(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(err.message().starts_with("invalid key prefix"), "{err}");
            assert_eq!(
                generate(bad, "live").unwrap_err().code(),
                ErrorCode::InvalidArgument
            );
            assert!(
                validate_env(bad)
                    .unwrap_err()
                    .message()
                    .starts_with("invalid key env")
            );
            assert_eq!(
                generate("nanu", bad).unwrap_err().code(),
                ErrorCode::InvalidArgument
            );
        }
        for good in ["a", "nanu", "sk", "x9", "abcdefghijklmnop"] {
            assert_eq!(validate_prefix(good), Ok(()));
            assert_eq!(validate_env(good), Ok(()));
        }
        let long = "x".repeat(1000);
        assert!(validate_prefix(&long).unwrap_err().message().len() < 200);
    }
}
