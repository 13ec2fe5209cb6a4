//! The C layer of a verify allocates nothing: `nanu_vault_verify` makes exactly as many heap
//! allocations as `Vault::verify` does for the same request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nanu::{nanu_status, nanu_vault, nanu_verdict, nanu_verify_request};
use nanu_core::{Context, KdfParams, KeySpec, Options, Vault, VerifyRequest};

/// Counts the allocations of the current thread (the vault's commit thread allocates too).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// thread-local Cell without a destructor, so touching it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_c_layer_of_verify_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::passphrase("pw").kdf(KdfParams::INSECURE_FOR_TESTS);
    let vault = Vault::create(dir.path().join("a.vault"), &options).unwrap();
    let spec: KeySpec = serde_json::from_str(
        r#"{"owner": "acme", "scopes": ["chat"], "ips": ["10.0.0.0/8"],
            "limits": ["requests=1000000/min", "tokens=1000000000/day", "cost=$100000/month"]}"#,
    )
    .unwrap();
    let minted = vault.mint(&spec, &Context::default()).unwrap();
    let secret = minted.secret.expose().to_owned();
    let handle = Box::into_raw(Box::new(nanu_vault::new(vault)));
    // SAFETY: the handle stays live until nanu_vault_close at the end of the test.
    let vault = unsafe { (*handle).vault() };

    let rust_request = VerifyRequest {
        ip: Some("10.1.2.3".parse().unwrap()),
        scope: Some("chat"),
        env: Some("live"),
        ..VerifyRequest::default()
    };
    let (ip, scope, env) = ("10.1.2.3", "chat", "live");
    let c_request = nanu_verify_request {
        ip: ip.as_ptr().cast(),
        ip_len: ip.len(),
        scope: scope.as_ptr().cast(),
        scope_len: scope.len(),
        model: std::ptr::null(),
        model_len: 0,
        env: env.as_ptr().cast(),
        env_len: env.len(),
        hold_input_tokens: 0,
        hold_output_tokens: 0,
        hold_cost: 0,
        at_us: 0,
    };
    let mut verdict = std::mem::MaybeUninit::<nanu_verdict>::uninit();

    // Warm up both paths (lazy statics, first-use growth), then count.
    for _ in 0..10 {
        assert!(vault.verify(&secret, &rust_request).unwrap().allowed);
    }
    const ROUNDS: u64 = 100;
    let before = allocations();
    for _ in 0..ROUNDS {
        let verdict = vault.verify(&secret, &rust_request).unwrap();
        assert!(verdict.allowed);
    }
    let rust = allocations() - before;

    let before = allocations();
    for _ in 0..ROUNDS {
        // SAFETY: the handle is live, the texts outlive the call and `verdict` is writable.
        let status = unsafe {
            nanu::nanu_vault_verify(
                handle,
                secret.as_ptr().cast(),
                secret.len(),
                &c_request,
                verdict.as_mut_ptr(),
            )
        };
        assert_eq!(status, nanu_status::Ok);
    }
    let c = allocations() - before;
    // SAFETY: the last call returned NANU_STATUS_OK, so the verdict was written.
    assert!(unsafe { verdict.assume_init_ref() }.allowed);
    assert_eq!(
        c, rust,
        "{ROUNDS} verifies: {c} allocations through C, {rust} in Rust"
    );

    // SAFETY: nothing uses the handle after this.
    assert_eq!(unsafe { nanu::nanu_vault_close(handle) }, nanu_status::Ok);
}
