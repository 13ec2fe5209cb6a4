//! The C ABI called as C would call it: raw pointers, explicit lengths, status numbers,
//! against real vault files.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use nanu::*;

fn last_error() -> String {
    // SAFETY: nanu_last_error returns a NUL-terminated string valid until the next nanu call
    // on this thread; it is copied at once.
    unsafe { CStr::from_ptr(nanu_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn c_text(ptr: *const c_char) -> String {
    // SAFETY: every caller passes a NUL-terminated string that nanu keeps alive for the call.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

fn array_text(array: &[c_char]) -> String {
    let bytes: Vec<u8> = array
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn options(passphrase: &str) -> *mut nanu_options {
    let mut options = ptr::null_mut();
    // SAFETY: `options` is a valid out pointer; the passphrase slice is valid for its length.
    unsafe {
        assert_eq!(nanu_options_new(&mut options), nanu_status::Ok);
        let status =
            nanu_options_set_passphrase(options, passphrase.as_ptr().cast(), passphrase.len());
        assert_eq!(status, nanu_status::Ok);
        assert_eq!(nanu_options_set_kdf(options, 8, 1, 1), nanu_status::Ok);
    }
    options
}

struct Fixture {
    /// Taken by tests that reopen the file after the fixture closed it.
    dir: Option<tempfile::TempDir>,
    path: String,
    vault: *mut nanu_vault,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.vault").to_str().unwrap().to_owned();
        let opts = options("correct horse");
        let mut vault = ptr::null_mut();
        // SAFETY: path and options are valid; `vault` is a valid out pointer; the options are
        // freed once, after the call that copies them.
        unsafe {
            let status = nanu_vault_create(path.as_ptr().cast(), path.len(), opts, &mut vault);
            assert_eq!(status, nanu_status::Ok, "{}", last_error());
            nanu_options_free(opts);
        }
        Fixture {
            dir: Some(dir),
            path,
            vault,
        }
    }

    /// Closes the vault, keeping its folder for a reopen.
    fn close(mut self) -> (tempfile::TempDir, String) {
        (self.dir.take().unwrap(), self.path.clone())
    }

    fn mint(&self, spec: &str) -> (String, String) {
        let mut secret = ptr::null_mut();
        // SAFETY: the vault is open, the spec slice is valid, `secret` is a valid out pointer,
        // and the secret is freed once after its texts are copied.
        unsafe {
            let status = nanu_vault_mint(
                self.vault,
                spec.as_ptr().cast(),
                spec.len(),
                ptr::null(),
                &mut secret,
            );
            assert_eq!(status, nanu_status::Ok, "{}", last_error());
            let out = (
                c_text(nanu_secret_key_id(secret)),
                c_text(nanu_secret_value(secret)),
            );
            assert_eq!(nanu_secret_len(secret), out.1.len());
            nanu_secret_free(secret);
            out
        }
    }

    fn verify(&self, secret: &[u8], request: Option<&nanu_verify_request>) -> nanu_verdict {
        let mut verdict = std::mem::MaybeUninit::<nanu_verdict>::uninit();
        let request = request.map_or(ptr::null(), |r| r as *const nanu_verify_request);
        // SAFETY: the vault is open, the secret slice and request are valid, and the verdict
        // is read only after NANU_STATUS_OK says it was written.
        unsafe {
            let status = nanu_vault_verify(
                self.vault,
                secret.as_ptr().cast(),
                secret.len(),
                request,
                verdict.as_mut_ptr(),
            );
            assert_eq!(status, nanu_status::Ok, "{}", last_error());
            verdict.assume_init()
        }
    }

    fn charge(&self, key_id: &str, usage: &nanu_usage) -> Result<nanu_charge_outcome, nanu_status> {
        let mut outcome = std::mem::MaybeUninit::<nanu_charge_outcome>::uninit();
        // SAFETY: the vault is open, key id and usage are valid, and the outcome is read only
        // after NANU_STATUS_OK says it was written.
        unsafe {
            match nanu_vault_charge(
                self.vault,
                key_id.as_ptr().cast(),
                key_id.len(),
                usage,
                outcome.as_mut_ptr(),
            ) {
                nanu_status::Ok => Ok(outcome.assume_init()),
                status => Err(status),
            }
        }
    }

    fn stats(&self) -> nanu_stats {
        let mut stats = nanu_stats::default();
        // SAFETY: the vault is open and `stats` is a valid out pointer.
        assert_eq!(
            unsafe { nanu_vault_stats(self.vault, &mut stats) },
            nanu_status::Ok
        );
        stats
    }

    fn json(&self, call: impl FnOnce(*mut *mut nanu_string) -> nanu_status) -> serde_json::Value {
        let mut text = ptr::null_mut();
        assert_eq!(call(&mut text), nanu_status::Ok, "{}", last_error());
        // SAFETY: the call succeeded, so `text` is a live nanu_string, freed once here.
        unsafe {
            let len = nanu_string_len(text);
            let bytes = std::slice::from_raw_parts(nanu_string_ptr(text).cast::<u8>(), len);
            let value = serde_json::from_slice(bytes).unwrap();
            nanu_string_free(text);
            value
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: the vault was opened by this fixture and nothing else uses it any more.
        let status = unsafe { nanu_vault_close(self.vault) };
        if !std::thread::panicking() {
            assert_eq!(status, nanu_status::Ok, "{}", last_error());
        }
    }
}

fn usage() -> nanu_usage {
    nanu_usage {
        model: ptr::null(),
        model_len: 0,
        endpoint: ptr::null(),
        endpoint_len: 0,
        input_tokens: 0,
        output_tokens: 0,
        has_cost: false,
        cost: 0,
        request_id: ptr::null(),
        request_id_len: 0,
        hold_id: 0,
        at_us: 0,
    }
}

fn request() -> nanu_verify_request {
    nanu_verify_request {
        ip: ptr::null(),
        ip_len: 0,
        scope: ptr::null(),
        scope_len: 0,
        model: ptr::null(),
        model_len: 0,
        env: ptr::null(),
        env_len: 0,
        hold_input_tokens: 0,
        hold_output_tokens: 0,
        hold_cost: 0,
        at_us: 0,
    }
}

#[test]
fn mint_verify_charge_and_reopen() {
    let f = Fixture::new();
    let (key_id, secret) = f.mint(concat!(
        r#"{"owner": "acme", "scopes": ["chat"], "#,
        r#""limits": ["requests=100/min", "tokens=1M/day", "cost=$10/month"]}"#
    ));
    assert!(
        key_id.starts_with("key_") && key_id.len() < NANU_KEY_ID_CAP,
        "{key_id}"
    );
    assert!(secret.starts_with("nanu_live_"));

    let scope = "chat";
    let req = nanu_verify_request {
        scope: scope.as_ptr().cast(),
        scope_len: scope.len(),
        ip: "10.1.2.3".as_ptr().cast(),
        ip_len: 8,
        hold_cost: 5_000,
        ..request()
    };
    let verdict = f.verify(secret.as_bytes(), Some(&req));
    assert!(verdict.allowed);
    assert_eq!(verdict.code, nanu_code::Valid);
    assert_eq!(array_text(&verdict.key_id), key_id);
    assert_eq!(array_text(&verdict.owner), "acme");
    assert_eq!(array_text(&verdict.env), "live");
    assert_eq!(array_text(&verdict.model), "");
    assert_eq!(verdict.remaining.requests, 99);
    assert_eq!(verdict.remaining.tokens, 1_000_000);
    assert_eq!(verdict.remaining.cost, 10_000_000 - 5_000);
    assert_eq!(verdict.remaining.input_tokens, NANU_UNLIMITED);
    assert_eq!(verdict.denied_by.level, nanu_level::None);
    assert_ne!(verdict.hold_id, 0);

    let u = nanu_usage {
        input_tokens: 1_200,
        output_tokens: 300,
        has_cost: true,
        cost: 4_500,
        hold_id: verdict.hold_id,
        ..usage()
    };
    let outcome = f.charge(&key_id, &u).unwrap();
    assert_eq!(
        (outcome.cost, outcome.priced, outcome.replayed),
        (4_500, true, false)
    );
    assert_eq!(outcome.exceeded_len, 0);
    assert_eq!(outcome.exceeded[0].level, nanu_level::None);

    let scope = "admin";
    let denied = nanu_verify_request {
        scope: scope.as_ptr().cast(),
        scope_len: scope.len(),
        ..request()
    };
    let verdict = f.verify(secret.as_bytes(), Some(&denied));
    assert!(!verdict.allowed);
    assert_eq!(verdict.code, nanu_code::ScopeDenied);
    assert_eq!(c_text(nanu_code_name(verdict.code as u32)), "scope_denied");
    assert_eq!(nanu_code_http_status(verdict.code as u32), 403);

    let rows = f.json(|out| {
        // SAFETY: the vault is open, the query slice is valid and `out` is a valid pointer.
        unsafe { nanu_vault_usage(f.vault, c"{}".as_ptr(), 2, out) }
    });
    assert_eq!(rows[0]["requests"], 1);
    assert_eq!(rows[0]["denied"], 1);
    assert_eq!(rows[0]["cost"], 4_500);
    assert_eq!(rows[0]["tokens"], 1_500);
    let (_dir, path) = f.close();

    let wrong = options("battery staple");
    let right = options("correct horse");
    let sentinel = ptr::dangling_mut::<nanu_vault>();
    let mut vault = sentinel;
    // SAFETY: path and options are valid and `vault` is a valid out pointer; each handle is
    // freed or closed once.
    unsafe {
        let status = nanu_vault_open(path.as_ptr().cast(), path.len(), wrong, &mut vault);
        assert_eq!(status, nanu_status::WrongPassphrase);
        assert_eq!(vault, sentinel, "a failed open must not write its output");
        assert!(!last_error().contains("battery"), "{}", last_error());
        assert_eq!(c_text(nanu_status_name(status as u32)), "wrong_passphrase");
        let status = nanu_vault_open(path.as_ptr().cast(), path.len(), right, &mut vault);
        assert_eq!(status, nanu_status::Ok, "{}", last_error());
        nanu_options_free(wrong);
        nanu_options_free(right);
        let mut text = ptr::null_mut();
        let status = nanu_vault_get(vault, key_id.as_ptr().cast(), key_id.len(), &mut text);
        assert_eq!(status, nanu_status::Ok);
        assert!(c_text(nanu_string_ptr(text)).contains("\"owner\":\"acme\""));
        nanu_string_free(text);
        assert_eq!(nanu_vault_close(vault), nanu_status::Ok);
    }
}

#[test]
fn null_arguments_are_errors_that_change_nothing() {
    let f = Fixture::new();
    let spec = r#"{"owner": "acme"}"#;
    // SAFETY: every pointer passed is NULL or valid; NULL handles are what is under test.
    unsafe {
        let status = nanu_vault_mint(
            ptr::null(),
            spec.as_ptr().cast(),
            spec.len(),
            ptr::null(),
            ptr::null_mut(),
        );
        assert_eq!(status, nanu_status::InvalidArgument);
        assert_eq!(last_error(), "vault is NULL");

        let status = nanu_vault_mint(
            f.vault,
            spec.as_ptr().cast(),
            spec.len(),
            ptr::null(),
            ptr::null_mut(),
        );
        assert_eq!(status, nanu_status::InvalidArgument);
        assert_eq!(last_error(), "out_secret is NULL");

        let mut secret = ptr::null_mut();
        let status = nanu_vault_mint(f.vault, ptr::null(), 5, ptr::null(), &mut secret);
        assert_eq!(status, nanu_status::InvalidArgument);
        assert_eq!(last_error(), "key spec json is NULL");
        assert!(secret.is_null());

        nanu_secret_free(ptr::null_mut());
        nanu_secrets_free(ptr::null_mut());
        nanu_string_free(ptr::null_mut());
        nanu_options_free(ptr::null_mut());
        assert_eq!(nanu_vault_close(ptr::null_mut()), nanu_status::Ok);
        assert_eq!(c_text(nanu_string_ptr(ptr::null())), "");
        assert_eq!(nanu_string_len(ptr::null()), 0);
        assert_eq!(c_text(nanu_secret_value(ptr::null())), "");
        assert!(nanu_secrets_get(ptr::null(), 0).is_null());

        let status = nanu_vault_verify(f.vault, c"x".as_ptr(), 1, ptr::null(), ptr::null_mut());
        assert_eq!(status, nanu_status::InvalidArgument);
    }
    assert_eq!(f.stats().keys, 0, "a failed mint must mint nothing");
    assert_eq!(
        f.stats().malformed,
        0,
        "a verify with nowhere to answer must not run"
    );
}

#[test]
fn bad_json_and_bad_text_are_named_in_the_error() {
    let f = Fixture::new();
    let mut secret = ptr::null_mut();
    let spec = r#"{"owner": "acme", "colour": "blue"}"#;
    let not_utf8 = b"{\"owner\": \"\xff\"}";
    let limits = r#"["requests=many/min"]"#;
    // SAFETY: every pointer passed is valid for its length; `secret` is a valid out pointer.
    unsafe {
        let status = nanu_vault_mint(
            f.vault,
            spec.as_ptr().cast(),
            spec.len(),
            ptr::null(),
            &mut secret,
        );
        assert_eq!(status, nanu_status::InvalidArgument);
        assert!(
            last_error().contains("invalid key spec json"),
            "{}",
            last_error()
        );
        assert!(last_error().contains("colour"), "{}", last_error());

        let status = nanu_vault_mint(
            f.vault,
            not_utf8.as_ptr().cast(),
            not_utf8.len(),
            ptr::null(),
            &mut secret,
        );
        assert_eq!(status, nanu_status::InvalidArgument);

        let owner = "acme";
        let status = nanu_vault_set_owner_policy(
            f.vault,
            owner.as_ptr().cast(),
            owner.len(),
            limits.as_ptr().cast(),
            limits.len(),
            ptr::null(),
        );
        assert_eq!(status, nanu_status::InvalidArgument);
        assert!(last_error().contains("limits json"), "{}", last_error());

        let bad_owner = b"\xc3";
        let status = nanu_vault_revoke_owner(
            f.vault,
            bad_owner.as_ptr().cast(),
            1,
            ptr::null(),
            ptr::null_mut(),
        );
        assert_eq!(status, nanu_status::InvalidArgument);
        assert_eq!(last_error(), "owner is not valid utf-8");

        let missing = "key_missing";
        let status =
            nanu_vault_revoke(f.vault, missing.as_ptr().cast(), missing.len(), ptr::null());
        assert_eq!(status, nanu_status::NotFound);
        assert!(last_error().contains("key_missing"), "{}", last_error());
    }
    assert!(secret.is_null());
}

#[test]
fn garbage_secrets_are_malformed_verdicts_not_errors() {
    let f = Fixture::new();
    for garbage in [
        &b"\xff\xfe"[..],
        b"",
        b"nanu_live_short",
        &[b'a'; 10_000][..],
    ] {
        let verdict = f.verify(garbage, None);
        assert!(!verdict.allowed);
        assert_eq!(verdict.code, nanu_code::Malformed);
        assert_eq!(array_text(&verdict.key_id), "");
        assert_eq!(verdict.remaining.requests, NANU_UNLIMITED);
    }
    let mut verdict = std::mem::MaybeUninit::<nanu_verdict>::uninit();
    // SAFETY: a NULL secret of length 0 is allowed; the verdict is read only after success.
    let verdict = unsafe {
        let status = nanu_vault_verify(f.vault, ptr::null(), 0, ptr::null(), verdict.as_mut_ptr());
        assert_eq!(status, nanu_status::Ok);
        verdict.assume_init()
    };
    assert_eq!(verdict.code, nanu_code::Malformed);
    assert_eq!(f.stats().malformed, 5);
}

#[test]
fn the_longest_owner_env_and_model_fit_the_verdict() {
    let f = Fixture::new();
    let owner = "ö".repeat(100);
    let model = format!("m/{}", "x".repeat(198));
    let spec = format!(r#"{{"owner": "{owner}", "env": "abcdefghijklmnop"}}"#);
    let (_, secret) = f.mint(&spec);
    let req = nanu_verify_request {
        model: model.as_ptr().cast(),
        model_len: model.len(),
        ..request()
    };
    let verdict = f.verify(secret.as_bytes(), Some(&req));
    assert!(verdict.allowed);
    assert_eq!(array_text(&verdict.owner), owner);
    assert_eq!(array_text(&verdict.env), "abcdefghijklmnop");
    assert_eq!(array_text(&verdict.model), model);
}

#[test]
fn limits_deny_exactly_and_charges_are_idempotent() {
    let f = Fixture::new();
    let (key_id, secret) = f.mint(r#"{"owner": "acme", "limits": ["requests=2"]}"#);
    assert!(f.verify(secret.as_bytes(), None).allowed);
    assert!(f.verify(secret.as_bytes(), None).allowed);
    let verdict = f.verify(secret.as_bytes(), None);
    assert!(!verdict.allowed);
    assert_eq!(verdict.code, nanu_code::UsageExceeded);
    assert_eq!(verdict.denied_by.level, nanu_level::Key);
    assert_eq!(verdict.denied_by.unit, nanu_unit::Requests);
    assert_eq!((verdict.denied_by.amount, verdict.denied_by.used), (2, 2));
    assert_eq!(verdict.remaining.requests, 0);

    let id = "r1";
    let first = nanu_usage {
        input_tokens: 10,
        request_id: id.as_ptr().cast(),
        request_id_len: id.len(),
        ..usage()
    };
    assert!(!f.charge(&key_id, &first).unwrap().replayed);
    assert!(f.charge(&key_id, &first).unwrap().replayed);
    let other = nanu_usage {
        input_tokens: 11,
        ..first
    };
    assert_eq!(
        f.charge(&key_id, &other).unwrap_err(),
        nanu_status::Conflict
    );
    assert!(last_error().contains("r1"), "{}", last_error());
}

#[test]
fn minting_many_returns_every_secret_in_order() {
    let f = Fixture::new();
    let specs = r#"[{"owner": "a"}, {"owner": "b", "env": "test"}, {"owner": "c"}]"#;
    let mut list = ptr::null_mut();
    // SAFETY: the vault is open, the specs slice is valid, `list` is a valid out pointer, and
    // the list is freed once after its items are read.
    unsafe {
        let status = nanu_vault_mint_many(
            f.vault,
            specs.as_ptr().cast(),
            specs.len(),
            ptr::null(),
            &mut list,
        );
        assert_eq!(status, nanu_status::Ok, "{}", last_error());
        assert_eq!(nanu_secrets_len(list), 3);
        assert!(c_text(nanu_secret_value(nanu_secrets_get(list, 1))).starts_with("nanu_test_"));
        assert!(nanu_secrets_get(list, 3).is_null());
        let ids: std::collections::HashSet<String> = (0..3)
            .map(|i| c_text(nanu_secret_key_id(nanu_secrets_get(list, i))))
            .collect();
        assert_eq!(ids.len(), 3);
        nanu_secrets_free(list);
    }
    assert_eq!(f.stats().keys, 3);
    assert_eq!(f.stats().owners, 3);
}

unsafe extern "C" fn collect_event(userdata: *mut c_void, json: *const c_char, len: usize) {
    // SAFETY: userdata is the Mutex<Vec<String>> that the test keeps alive until it
    // unsubscribes; json is valid for len bytes during this call.
    unsafe {
        let events = &*(userdata as *const Mutex<Vec<String>>);
        let bytes = std::slice::from_raw_parts(json.cast::<u8>(), len);
        events
            .lock()
            .unwrap()
            .push(String::from_utf8(bytes.to_vec()).unwrap());
    }
}

#[test]
fn subscribers_receive_committed_events() {
    let f = Fixture::new();
    let events = Mutex::new(Vec::<String>::new());
    let (key_id, _) = f.mint(r#"{"owner": "acme"}"#);
    let mut id = 0;
    // SAFETY: `events` outlives the subscription, which is ended below before it is dropped.
    unsafe {
        let userdata = &events as *const Mutex<Vec<String>> as *mut c_void;
        let status = nanu_vault_subscribe(f.vault, Some(collect_event), userdata, &mut id);
        assert_eq!(status, nanu_status::Ok);
        let status = nanu_vault_revoke(f.vault, key_id.as_ptr().cast(), key_id.len(), ptr::null());
        assert_eq!(status, nanu_status::Ok);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while events.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut existed = false;
    // SAFETY: the vault is open and `existed` is a valid out pointer.
    assert_eq!(
        unsafe { nanu_vault_unsubscribe(f.vault, id, &mut existed) },
        nanu_status::Ok
    );
    assert!(existed);
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(event["kind"], "revoked");
    assert_eq!(event["key_id"], key_id.as_str());
}

unsafe extern "C" fn test_clock(userdata: *mut c_void) -> i64 {
    // SAFETY: userdata is the AtomicI64 the test keeps alive until the vault is closed.
    unsafe { &*(userdata as *const AtomicI64) }.load(Ordering::SeqCst)
}

#[test]
fn a_c_clock_drives_expiry_and_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clock.vault").to_str().unwrap().to_owned();
    let now = AtomicI64::new(1_735_689_600_000_000); // 2025-01-01T00:00:00Z
    let opts = options("pw");
    let mut vault = ptr::null_mut();
    // SAFETY: `now` outlives the vault, which is closed at the end of this block.
    unsafe {
        let userdata = &now as *const AtomicI64 as *mut c_void;
        assert_eq!(
            nanu_options_set_clock(opts, Some(test_clock), userdata),
            nanu_status::Ok
        );
        let status = nanu_vault_create(path.as_ptr().cast(), path.len(), opts, &mut vault);
        assert_eq!(status, nanu_status::Ok, "{}", last_error());
        nanu_options_free(opts);
    }
    let f = Fixture {
        dir: Some(dir),
        path,
        vault,
    };
    let (_, secret) = f.mint(r#"{"owner": "acme", "ttl": "1h", "limits": ["requests=1/day"]}"#);
    let verdict = f.verify(secret.as_bytes(), None);
    assert!(verdict.allowed);
    let denied = f.verify(secret.as_bytes(), None);
    assert_eq!(denied.code, nanu_code::UsageExceeded);
    assert!(denied.has_resets_at);
    assert_eq!(denied.resets_at_ms, 1_735_689_600_000 + 86_400_000);
    assert!(denied.has_retry_after);
    assert_eq!(denied.retry_after_ms, 86_400_000);

    now.fetch_add(2 * 3_600_000_000, Ordering::SeqCst);
    assert_eq!(f.verify(secret.as_bytes(), None).code, nanu_code::Expired);
}

#[test]
fn rekey_replaces_the_passphrase() {
    let f = Fixture::new();
    f.mint(r#"{"owner": "acme"}"#);
    let new = options("new passphrase");
    // SAFETY: the vault is open and the options are live until freed here.
    unsafe {
        assert_eq!(
            nanu_vault_rekey(f.vault, new, ptr::null()),
            nanu_status::Ok,
            "{}",
            last_error()
        );
        nanu_options_free(new);
    }
    // SAFETY: the vault is open.
    assert_eq!(unsafe { nanu_vault_flush(f.vault) }, nanu_status::Ok);
    let (_dir, path) = f.close();
    let copy = path.as_str();
    for (passphrase, expected) in [
        ("correct horse", nanu_status::WrongPassphrase),
        ("new passphrase", nanu_status::Ok),
    ] {
        let opts = options(passphrase);
        let mut vault = ptr::null_mut();
        // SAFETY: path and options are valid, `vault` is a valid out pointer, and the handles
        // are released once.
        unsafe {
            assert_eq!(
                nanu_vault_open(copy.as_ptr().cast(), copy.len(), opts, &mut vault),
                expected
            );
            nanu_options_free(opts);
            assert_eq!(nanu_vault_close(vault), nanu_status::Ok);
        }
    }
}

#[test]
fn status_and_code_numbers_never_change() {
    let pinned = [
        (nanu_status::Ok, 0, "ok"),
        (nanu_status::InvalidArgument, 100, "invalid_argument"),
        (nanu_status::NotFound, 200, "not_found"),
        (nanu_status::WrongPassphrase, 300, "wrong_passphrase"),
        (nanu_status::Locked, 301, "locked"),
        (nanu_status::NotAVault, 302, "not_a_vault"),
        (nanu_status::Storage, 400, "storage"),
        (nanu_status::Corrupt, 401, "corrupt"),
        (nanu_status::Conflict, 500, "conflict"),
        (nanu_status::Closed, 501, "closed"),
        (nanu_status::Panic, 900, "panic"),
        (nanu_status::Internal, 901, "internal"),
    ];
    for (status, number, name) in pinned {
        assert_eq!(status as u32, number);
        assert_eq!(c_text(nanu_status_name(number)), name);
    }
    assert_eq!(c_text(nanu_status_name(7)), "unknown");
    assert_eq!(nanu_code::RateLimited as u32, 13);
    assert_eq!(c_text(nanu_code_name(14)), "unknown");
    assert_eq!(c_text(nanu_version()), env!("CARGO_PKG_VERSION"));
}

#[test]
fn remaining_gives_units_and_the_breakdown() {
    let f = Fixture::new();
    let (key_id, secret) =
        f.mint(r#"{"owner": "acme", "limits": ["requests=10/day", "tokens=500"]}"#);
    let owner = "acme";
    let limits = r#"["requests=3/hour"]"#;
    // SAFETY: the vault is open and every slice is valid for its length.
    let status = unsafe {
        nanu_vault_set_owner_policy(
            f.vault,
            owner.as_ptr().cast(),
            owner.len(),
            limits.as_ptr().cast(),
            limits.len(),
            ptr::null(),
        )
    };
    assert_eq!(status, nanu_status::Ok, "{}", last_error());
    assert!(f.verify(secret.as_bytes(), None).allowed);

    let mut units = std::mem::MaybeUninit::<nanu_remaining>::uninit();
    let json = f.json(|out| {
        // SAFETY: the vault is open, the key id slice is valid, and both outputs are valid.
        unsafe {
            nanu_vault_remaining(
                f.vault,
                key_id.as_ptr().cast(),
                key_id.len(),
                0,
                units.as_mut_ptr(),
                out,
            )
        }
    });
    // SAFETY: the call above succeeded, so the units were written.
    let units = unsafe { units.assume_init() };
    assert_eq!(units.requests, 2, "the owner's 3/hour is the tighter limit");
    assert_eq!(units.tokens, 500);
    assert_eq!(units.cost, NANU_UNLIMITED);
    assert_eq!(json["requests"], 2);
    assert_eq!(json["limits"].as_array().unwrap().len(), 3);

    let missing = "key_missing";
    // SAFETY: the vault is open and the key id slice is valid; NULL outputs are allowed.
    let status = unsafe {
        nanu_vault_remaining(
            f.vault,
            missing.as_ptr().cast(),
            missing.len(),
            0,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(status, nanu_status::NotFound);
}
