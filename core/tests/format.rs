//! The key format as a vault sees it: minted secrets verify to their own key, and every edit
//! of a secret is turned away as malformed (offline) or not found (no such digest).

mod common;

use std::collections::HashSet;

use common::{TestVault, options, spec};
use nanu::{Code, Context, KeySpec, MAX_SECRET_LEN, Minted, SECRET_REGEX, Vault, VerifyRequest};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 6-character base62 check the format appends: CRC32 of everything before it.
fn check_of(text: &str) -> String {
    let mut value = crc32fast::hash(text.as_bytes());
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

/// Verifies `text` and asserts it is refused without naming any key.
fn assert_refused(vault: &Vault, text: &str) {
    let verdict = vault
        .verify(text, &VerifyRequest::default())
        .expect("verify never fails on bad input");
    assert!(!verdict.allowed, "{text:?} was allowed");
    assert!(
        matches!(verdict.code, Code::Malformed | Code::NotFound),
        "{text:?} gave {:?}",
        verdict.code
    );
    assert_eq!(verdict.key_id, None, "{text:?} named a key");
}

/// Characters to substitute and insert: all of ASCII, and look-alikes and invisible characters
/// (Cyrillic а о е, fullwidth ０ Ａ ＿, Greek ο, zero-width space, no-break space, é).
fn replacements() -> Vec<char> {
    let mut chars: Vec<char> = (0u8..=127).map(char::from).collect();
    chars.extend([
        'а', 'о', 'е', '０', 'Ａ', '＿', 'ο', '\u{200B}', '\u{A0}', 'é',
    ]);
    chars
}

#[test]
fn ten_thousand_minted_secrets_each_verify_to_their_own_key() {
    let tv = TestVault::new();
    let specs: Vec<KeySpec> = (0..10_000)
        .map(|i| {
            let mut s = spec(&format!("owner{}", i % 97), &[]);
            s.env = if i % 3 == 0 {
                "test".into()
            } else {
                String::new()
            };
            s
        })
        .collect();
    let minted = tv
        .vault
        .mint_many(&specs, &Context::default())
        .expect("mint_many");
    assert_eq!(minted.len(), 10_000);

    let regex = regex::Regex::new(SECRET_REGEX).expect("the published regex compiles");
    let mut ids = HashSet::new();
    let mut secrets = HashSet::new();
    for (i, m) in minted.iter().enumerate() {
        let text = m.secret.expose();
        let env = if i % 3 == 0 { "test" } else { "live" };
        assert!(text.starts_with(&format!("nanu_{env}_")), "{i}: {m:?}");
        assert_eq!(regex.find(text).map(|f| f.as_str()), Some(text));
        assert!(ids.insert(m.key_id.clone()), "duplicate key id");
        assert!(secrets.insert(text.to_owned()), "duplicate secret");

        let verdict = tv.verify(m);
        assert!(verdict.allowed, "{i}: {verdict:?}");
        assert_eq!(verdict.code, Code::Valid);
        assert_eq!(verdict.key_id.as_deref(), Some(m.key_id.as_str()));
        assert_eq!(
            verdict.owner.as_deref(),
            Some(format!("owner{}", i % 97).as_str())
        );
        assert_eq!(verdict.env.as_deref(), Some(env));
    }
    assert_eq!(tv.vault.stats().keys, 10_000);
    assert_eq!(tv.vault.owners().len(), 97);
}

#[test]
fn every_single_character_edit_of_a_secret_is_refused() {
    let tv = TestVault::new();
    let keys: Vec<Minted> = (0..4).map(|_| tv.mint("acme", &[])).collect();
    let chars = replacements();
    for m in &keys {
        let text = m.secret.expose();
        for (pos, original) in text.char_indices() {
            // Dropped.
            assert_refused(&tv.vault, &format!("{}{}", &text[..pos], &text[pos + 1..]));
            // Changed, including a case change and a look-alike.
            for &c in &chars {
                if c != original {
                    let edited = format!("{}{c}{}", &text[..pos], &text[pos + 1..]);
                    assert_refused(&tv.vault, &edited);
                }
            }
            // Added inside.
            if pos > 0 {
                for &c in &chars {
                    assert_refused(&tv.vault, &format!("{}{c}{}", &text[..pos], &text[pos..]));
                }
            }
        }
        // Added at either end: only ASCII whitespace is trimmed.
        for &c in &chars {
            for edited in [format!("{c}{text}"), format!("{text}{c}")] {
                if c.is_ascii_whitespace() {
                    let verdict = tv
                        .vault
                        .verify(&edited, &VerifyRequest::default())
                        .expect("verify");
                    assert_eq!(verdict.key_id.as_deref(), Some(m.key_id.as_str()));
                } else {
                    assert_refused(&tv.vault, &edited);
                }
            }
        }
        // The key itself still verifies: no edit above changed anything.
        assert!(tv.verify(m).allowed);
    }
}

#[test]
fn case_changes_nul_and_look_alikes_are_refused() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    let text = m.secret.expose();
    let cases = [
        text.to_ascii_uppercase(),
        text.to_ascii_lowercase(),
        format!("{text}\0"),
        format!("\0{text}"),
        format!("{}\0{}", &text[..12], &text[12..]),
        text.replacen('_', "\u{FF3F}", 1),
        text.replacen('n', "\u{0578}", 1),
        text.chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap(),
                _ => c,
            })
            .collect(),
        format!("\u{FEFF}{text}"),
        format!("{text}\u{200B}"),
    ];
    for case in &cases {
        assert_ne!(case, text);
        assert_refused(&tv.vault, case);
    }
    let verdict = tv.vault.verify("", &VerifyRequest::default()).unwrap();
    assert_eq!(verdict.code, Code::Malformed);
}

#[test]
fn a_mebibyte_of_input_is_malformed() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    let inputs = [
        "a".repeat(1 << 20),
        format!("{}{}", m.secret.expose(), " ".repeat(1 << 20)),
        format!("{}{}", " ".repeat(1 << 20), m.secret.expose()),
        m.secret
            .expose()
            .repeat((1 << 20) / m.secret.expose().len() + 1),
        "\0".repeat(1 << 20),
    ];
    for input in &inputs {
        assert!(input.len() >= 1 << 20);
        let verdict = tv
            .vault
            .verify(input, &VerifyRequest::default())
            .expect("verify");
        assert_eq!(verdict.code, Code::Malformed);
        assert!(!verdict.allowed);
    }
    let stats = tv.vault.stats();
    assert_eq!(stats.malformed, inputs.len() as u64);
    assert_eq!(stats.not_found, 0);
    const { assert!(MAX_SECRET_LEN < 200) };
}

#[test]
fn a_well_formed_secret_of_no_key_is_not_found() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    let text = m.secret.expose();
    // Same body, other env in the text, a checksum that fits: the env is not parsed out of the
    // text, and the digest of this text belongs to no key.
    let body = &text["nanu_live_".len()..text.len() - 6];
    let relabelled = format!("nanu_test_{body}");
    let relabelled = format!("{relabelled}{}", check_of(&relabelled));
    // Another body with a valid checksum.
    let mut other = format!("nanu_live_{}", "7".repeat(body.len()));
    other.push_str(&check_of(&other.clone()));
    for forged in [relabelled, other] {
        let verdict = tv
            .vault
            .verify(&forged, &VerifyRequest::default())
            .expect("verify");
        assert_eq!(verdict.code, Code::NotFound, "{forged}");
        assert_eq!(verdict.key_id, None);
    }
    assert_eq!(tv.vault.stats().not_found, 2);
    assert_eq!(tv.vault.stats().malformed, 0);
}

#[test]
fn a_secret_with_surrounding_ascii_whitespace_verifies() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    for padded in [
        format!("  {}\r\n", m.secret.expose()),
        format!("\t{}", m.secret.expose()),
    ] {
        let verdict = tv
            .vault
            .verify(&padded, &VerifyRequest::default())
            .expect("verify");
        assert!(verdict.allowed);
        assert_eq!(verdict.key_id.as_deref(), Some(m.key_id.as_str()));
    }
}

#[test]
fn a_vault_prefix_and_key_env_are_written_into_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.prefix = "acme7".into();
    let vault = Vault::create(dir.path().join("p.vault"), &opts).unwrap();
    assert_eq!(vault.prefix(), "acme7");
    let mut s = spec("bob", &[]);
    s.env = "staging".into();
    let m = vault.mint(&s, &Context::default()).unwrap();
    assert!(m.secret.expose().starts_with("acme7_staging_"));
    assert!(m.key_id.starts_with("key_"));
    assert!(!format!("{m:?}").contains(&m.secret.expose()[14..]));
    let verdict = vault
        .verify(m.secret.expose(), &VerifyRequest::default())
        .unwrap();
    assert_eq!(verdict.env.as_deref(), Some("staging"));

    let mut bad = options();
    bad.prefix = "Acme".into();
    let err = Vault::create(dir.path().join("q.vault"), &bad).unwrap_err();
    assert_eq!(err.code(), nanu::ErrorCode::InvalidArgument);
    let mut s = spec("bob", &[]);
    s.env = "Live".into();
    let err = vault.mint(&s, &Context::default()).unwrap_err();
    assert_eq!(err.code(), nanu::ErrorCode::InvalidArgument);
}

#[test]
fn one_bad_spec_in_mint_many_mints_nothing() {
    let tv = TestVault::new();
    let mut bad = spec("acme", &[]);
    bad.env = "no spaces".into();
    let specs = vec![spec("acme", &[]), bad, spec("zeta", &[])];
    let err = tv.vault.mint_many(&specs, &Context::default()).unwrap_err();
    assert_eq!(err.code(), nanu::ErrorCode::InvalidArgument);
    assert!(err.message().starts_with("key spec 1:"), "{err}");
    assert_eq!(tv.vault.stats().keys, 0);
    assert!(tv.vault.owners().is_empty());
}
