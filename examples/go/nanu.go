// Package nanu wraps the nanu C ABI (include/nanu.h) for Go through cgo: an embedded API-key
// vault that mints keys, verifies requests against their limits and charges their usage, in
// the calling process.
//
// It links the library built by `cargo build -p nanu-ffi` in ../../target/debug; point
// CGO_LDFLAGS at another build (`-L DIR -Wl,-rpath,DIR`) to use it instead.
//
// A Vault is safe for concurrent use by many goroutines; Close waits for calls in flight.
package nanu

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -lnanu -Wl,-rpath,${SRCDIR}/../../target/debug
#include <stdlib.h>
#include <string.h>
#include "nanu.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Unlimited is the remaining figure of a unit that no limit counts.
const Unlimited = uint64(math.MaxUint64)

// Status is a nanu_status number.
type Status uint32

// Error is a failed call: the C status, its stable name (the same error codes as every nanu
// binding: "invalid_argument", "not_found", "wrong_passphrase", "locked", "not_a_vault",
// "corrupt", "storage", "conflict", "closed") and nanu's message, which never contains a
// secret.
type Error struct {
	Status  Status
	Code    string
	Message string
}

func (e *Error) Error() string {
	return e.Code + ": " + e.Message
}

// check turns a status into an error. It must run on the OS thread of the call it checks,
// since the message is per thread: callers lock the goroutine to its thread around both.
func check(status C.nanu_status) error {
	if status == C.NANU_STATUS_OK {
		return nil
	}
	return &Error{
		Status:  Status(status),
		Code:    C.GoString(C.nanu_status_name(C.uint32_t(status))),
		Message: C.GoString(C.nanu_last_error()),
	}
}

// lockThread keeps the goroutine on its OS thread until the returned function runs, so that
// nanu_last_error() is read on the thread of the call that failed.
func lockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

// errClosed is what calls on a closed Vault return.
var errClosed = &Error{Status: C.NANU_STATUS_CLOSED, Code: "closed", Message: "the vault is closed"}

// Durability says what a crash may lose; see include/nanu.h.
type Durability uint32

// The durability levels.
const (
	Durable Durability = C.NANU_DURABILITY_DURABLE
	Process Durability = C.NANU_DURABILITY_PROCESS
	Relaxed Durability = C.NANU_DURABILITY_RELAXED
)

// KDF holds Argon2id parameters for a new vault.
type KDF struct {
	MemoryKiB, Passes, Lanes uint32
}

// TestKDF is the cheapest KDF Argon2 accepts: for tests only.
var TestKDF = &KDF{MemoryKiB: 8, Passes: 1, Lanes: 1}

// Options say how to create or open a vault. Give a Passphrase or a 32-byte Key.
type Options struct {
	Passphrase string
	Key        []byte
	Durability Durability
	// KDF parameters for a new vault; nil for the default (64 MiB, 3 passes).
	KDF *KDF
}

// cBytes copies a Go string into C memory, so that C structs can point at it without
// holding Go pointers. Free the result with C.free.
func cBytes(s string) (*C.char, C.size_t) {
	if s == "" {
		return nil, 0
	}
	return (*C.char)(C.CBytes([]byte(s))), C.size_t(len(s))
}

// empty gives a non-NULL pointer to pass an empty text (NULL means "not given").
var empty = [1]byte{}

// text passes Go bytes to one call: nanu never keeps an argument pointer after the call.
func text(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return (*C.char)(unsafe.Pointer(&empty[0])), 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

func (o Options) build() (*C.nanu_options, error) {
	var opts *C.nanu_options
	if err := check(C.nanu_options_new(&opts)); err != nil {
		return nil, err
	}
	var err error
	switch {
	case o.Key != nil:
		ptr, n := text(o.Key)
		err = check(C.nanu_options_set_key(opts, (*C.uint8_t)(unsafe.Pointer(ptr)), n))
	default:
		ptr, n := text([]byte(o.Passphrase))
		err = check(C.nanu_options_set_passphrase(opts, ptr, n))
	}
	if err == nil {
		err = check(C.nanu_options_set_durability(opts, C.uint32_t(o.Durability)))
	}
	if err == nil && o.KDF != nil {
		err = check(C.nanu_options_set_kdf(opts, C.uint32_t(o.KDF.MemoryKiB),
			C.uint32_t(o.KDF.Passes), C.uint32_t(o.KDF.Lanes)))
	}
	if err != nil {
		C.nanu_options_free(opts)
		return nil, err
	}
	return opts, nil
}

// Vault is an open vault file.
type Vault struct {
	mu sync.RWMutex
	v  *C.nanu_vault
}

type openFn func(*C.char, C.size_t, *C.nanu_options, **C.nanu_vault) C.nanu_status

func start(path string, o Options, open openFn) (*Vault, error) {
	unlock := lockThread()
	defer unlock()
	opts, err := o.build()
	if err != nil {
		return nil, err
	}
	defer C.nanu_options_free(opts)
	ptr, n := text([]byte(path))
	var v *C.nanu_vault
	if err := check(open(ptr, n, opts, &v)); err != nil {
		return nil, err
	}
	return &Vault{v: v}, nil
}

// Create creates a new vault file at path, which must not exist.
func Create(path string, o Options) (*Vault, error) {
	return start(path, o, func(
		p *C.char, n C.size_t, o *C.nanu_options, out **C.nanu_vault,
	) C.nanu_status {
		return C.nanu_vault_create(p, n, o, out)
	})
}

// Open opens an existing vault file.
func Open(path string, o Options) (*Vault, error) {
	return start(path, o, func(
		p *C.char, n C.size_t, o *C.nanu_options, out **C.nanu_vault,
	) C.nanu_status {
		return C.nanu_vault_open(p, n, o, out)
	})
}

// Close commits everything and closes the file, after the calls in flight. Closing twice is
// harmless.
func (v *Vault) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.v == nil {
		return nil
	}
	unlock := lockThread()
	defer unlock()
	err := check(C.nanu_vault_close(v.v))
	v.v = nil
	return err
}

// call runs f with the open vault, on one OS thread so that f's error message is its own.
func (v *Vault) call(f func(*C.nanu_vault) error) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.v == nil {
		return errClosed
	}
	unlock := lockThread()
	defer unlock()
	return f(v.v)
}

// Minted is a new key: its id and its secret, shown once.
type Minted struct {
	KeyID  string
	Secret string
}

func jsonOf(value any) ([]byte, error) {
	switch v := value.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case json.RawMessage:
		return v, nil
	default:
		return json.Marshal(v)
	}
}

// Mint mints a key from a key spec: JSON text, or a value encoding/json turns into it, such
// as map[string]any{"owner": "acme", "limits": []string{"requests=100/min"}}.
func (v *Vault) Mint(spec any) (Minted, error) {
	doc, err := jsonOf(spec)
	if err != nil {
		return Minted{}, err
	}
	var minted Minted
	err = v.call(func(vault *C.nanu_vault) error {
		ptr, n := text(doc)
		var secret *C.nanu_secret
		if err := check(C.nanu_vault_mint(vault, ptr, n, nil, &secret)); err != nil {
			return err
		}
		defer C.nanu_secret_free(secret)
		minted.KeyID = C.GoString(C.nanu_secret_key_id(secret))
		minted.Secret = C.GoStringN(C.nanu_secret_value(secret), C.int(C.nanu_secret_len(secret)))
		return nil
	})
	return minted, err
}

// Request is what a verify checks; empty fields are not given.
type Request struct {
	IP, Scope, Model, Env                       string
	HoldInputTokens, HoldOutputTokens, HoldCost uint64
	// At is the time of the request; the zero time is now.
	At time.Time
}

// Remaining holds the least remaining per unit over a key and its owner (Unlimited when no
// limit counts the unit).
type Remaining struct {
	Requests, Tokens, InputTokens, OutputTokens, Cost uint64
}

// LimitState describes one limit of a key (Level "key") or of its owner ("owner").
type LimitState struct {
	Level                         string
	Index                         uint32
	Unit                          string
	Amount, Used, Held, Remaining uint64
	// ResetsAt is the zero time for a lifetime limit.
	ResetsAt time.Time
}

// Verdict is the answer of a verify. A denial is a verdict, not an error.
type Verdict struct {
	Allowed                  bool
	Code                     string
	KeyID, Owner, Env, Model string
	Grace                    bool
	HoldID                   uint64
	RetryAfter               time.Duration
	ResetsAt                 time.Time
	Remaining                Remaining
	DeniedBy                 *LimitState
}

var unitNames = [...]string{"requests", "tokens", "input_tokens", "output_tokens", "cost"}

func epochMillis(has C.bool, ms C.int64_t) time.Time {
	if !bool(has) {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

func limitState(s *C.nanu_limit_state) *LimitState {
	if s.level == C.NANU_LEVEL_NONE {
		return nil
	}
	level := "key"
	if s.level == C.NANU_LEVEL_OWNER {
		level = "owner"
	}
	return &LimitState{
		Level:     level,
		Index:     uint32(s.index),
		Unit:      unitNames[s.unit],
		Amount:    uint64(s.amount),
		Used:      uint64(s.used),
		Held:      uint64(s.held),
		Remaining: uint64(s.remaining),
		ResetsAt:  epochMillis(s.has_resets_at, s.resets_at_ms),
	}
}

func remainingOf(r *C.nanu_remaining) Remaining {
	return Remaining{
		Requests:     uint64(r.requests),
		Tokens:       uint64(r.tokens),
		InputTokens:  uint64(r.input_tokens),
		OutputTokens: uint64(r.output_tokens),
		Cost:         uint64(r.cost),
	}
}

func micros(t time.Time) C.int64_t {
	if t.IsZero() {
		return 0
	}
	return C.int64_t(t.UnixMicro())
}

// Verify checks a secret and a request; when everything passes it consumes one request and
// places the hold. req may be nil.
func (v *Vault) Verify(secret string, req *Request) (Verdict, error) {
	var c C.nanu_verify_request
	if req != nil {
		// The request struct may hold only C pointers when it is passed to C.
		c.ip, c.ip_len = cBytes(req.IP)
		c.scope, c.scope_len = cBytes(req.Scope)
		c.model, c.model_len = cBytes(req.Model)
		c.env, c.env_len = cBytes(req.Env)
		defer C.free(unsafe.Pointer(c.ip))
		defer C.free(unsafe.Pointer(c.scope))
		defer C.free(unsafe.Pointer(c.model))
		defer C.free(unsafe.Pointer(c.env))
		c.hold_input_tokens = C.uint64_t(req.HoldInputTokens)
		c.hold_output_tokens = C.uint64_t(req.HoldOutputTokens)
		c.hold_cost = C.uint64_t(req.HoldCost)
		c.at_us = micros(req.At)
	}
	var out Verdict
	err := v.call(func(vault *C.nanu_vault) error {
		ptr, n := text([]byte(secret))
		var verdict C.nanu_verdict
		if err := check(C.nanu_vault_verify(vault, ptr, n, &c, &verdict)); err != nil {
			return err
		}
		out = Verdict{
			Allowed:   bool(verdict.allowed),
			Code:      C.GoString(C.nanu_code_name(C.uint32_t(verdict.code))),
			KeyID:     C.GoString(&verdict.key_id[0]),
			Owner:     C.GoString(&verdict.owner[0]),
			Env:       C.GoString(&verdict.env[0]),
			Model:     C.GoString(&verdict.model[0]),
			Grace:     bool(verdict.grace),
			HoldID:    uint64(verdict.hold_id),
			ResetsAt:  epochMillis(verdict.has_resets_at, verdict.resets_at_ms),
			Remaining: remainingOf(&verdict.remaining),
			DeniedBy:  limitState(&verdict.denied_by),
		}
		if verdict.has_retry_after {
			out.RetryAfter = time.Duration(verdict.retry_after_ms) * time.Millisecond
		}
		return nil
	})
	return out, err
}

// Usage is what a request really used.
type Usage struct {
	Model, Endpoint, RequestID string
	InputTokens, OutputTokens  uint64
	// Cost in micro-units; nil prices the tokens from the model's price.
	Cost *uint64
	// HoldID is the verdict's hold, settled by the charge; 0 for none.
	HoldID uint64
	// At is when the usage happened; the zero time is now.
	At time.Time
}

// ChargeOutcome is what a charge did.
type ChargeOutcome struct {
	Cost             uint64
	Priced, Replayed bool
	// Exceeded counts the limits now at or past their amount.
	Exceeded int
}

// Charge records what a request used against keyID, settling its hold. Idempotent by
// RequestID.
func (v *Vault) Charge(keyID string, u Usage) (ChargeOutcome, error) {
	var c C.nanu_usage
	c.model, c.model_len = cBytes(u.Model)
	c.endpoint, c.endpoint_len = cBytes(u.Endpoint)
	c.request_id, c.request_id_len = cBytes(u.RequestID)
	defer C.free(unsafe.Pointer(c.model))
	defer C.free(unsafe.Pointer(c.endpoint))
	defer C.free(unsafe.Pointer(c.request_id))
	c.input_tokens = C.uint64_t(u.InputTokens)
	c.output_tokens = C.uint64_t(u.OutputTokens)
	if u.Cost != nil {
		c.has_cost = true
		c.cost = C.uint64_t(*u.Cost)
	}
	c.hold_id = C.uint64_t(u.HoldID)
	c.at_us = micros(u.At)
	var out ChargeOutcome
	err := v.call(func(vault *C.nanu_vault) error {
		ptr, n := text([]byte(keyID))
		var outcome C.nanu_charge_outcome
		if err := check(C.nanu_vault_charge(vault, ptr, n, &c, &outcome)); err != nil {
			return err
		}
		out = ChargeOutcome{
			Cost:     uint64(outcome.cost),
			Priced:   bool(outcome.priced),
			Replayed: bool(outcome.replayed),
			Exceeded: int(outcome.exceeded_len),
		}
		return nil
	})
	return out, err
}

// Release gives a hold back; it reports whether the hold was still outstanding.
func (v *Vault) Release(holdID uint64) (bool, error) {
	var released C.bool
	err := v.call(func(vault *C.nanu_vault) error {
		return check(C.nanu_vault_release(vault, C.uint64_t(holdID), 0, &released))
	})
	return bool(released), err
}

// Revoke revokes a key at once.
func (v *Vault) Revoke(keyID string) error {
	return v.call(func(vault *C.nanu_vault) error {
		ptr, n := text([]byte(keyID))
		return check(C.nanu_vault_revoke(vault, ptr, n, nil))
	})
}

// Price is a model's price in micro-units per million tokens and per request.
type Price struct {
	InputPerMtok  uint64 `json:"input_per_mtok"`
	OutputPerMtok uint64 `json:"output_per_mtok"`
	PerRequest    uint64 `json:"per_request"`
}

// SetPrice sets a model's price.
func (v *Vault) SetPrice(model string, price Price) error {
	doc, err := json.Marshal(price)
	if err != nil {
		return err
	}
	return v.call(func(vault *C.nanu_vault) error {
		m, mn := text([]byte(model))
		p, pn := text(doc)
		return check(C.nanu_vault_set_price(vault, m, mn, p, pn, nil))
	})
}

// Remaining returns the least remaining per unit over a key's and its owner's limits.
func (v *Vault) Remaining(keyID string) (Remaining, error) {
	var out Remaining
	err := v.call(func(vault *C.nanu_vault) error {
		ptr, n := text([]byte(keyID))
		var units C.nanu_remaining
		if err := check(C.nanu_vault_remaining(vault, ptr, n, 0, &units, nil)); err != nil {
			return err
		}
		out = remainingOf(&units)
		return nil
	})
	return out, err
}

// UsageRow is one row of a usage report.
type UsageRow struct {
	Bucket       *time.Time        `json:"bucket"`
	Group        map[string]string `json:"group"`
	Requests     uint64            `json:"requests"`
	Denied       uint64            `json:"denied"`
	InputTokens  uint64            `json:"input_tokens"`
	OutputTokens uint64            `json:"output_tokens"`
	Tokens       uint64            `json:"tokens"`
	Cost         uint64            `json:"cost"`
}

// Usage returns a usage report for a query (JSON text or a value encoding/json turns into
// it; nil for everything in one row), e.g. map[string]any{"group_by": []string{"model"}}.
func (v *Vault) Usage(query any) ([]UsageRow, error) {
	var doc []byte
	if query != nil {
		var err error
		if doc, err = jsonOf(query); err != nil {
			return nil, err
		}
	}
	var rows []UsageRow
	err := v.call(func(vault *C.nanu_vault) error {
		var out *C.nanu_string
		var ptr *C.char
		var n C.size_t
		if doc != nil {
			ptr, n = text(doc)
		}
		if err := check(C.nanu_vault_usage(vault, ptr, n, &out)); err != nil {
			return err
		}
		defer C.nanu_string_free(out)
		data := C.GoBytes(unsafe.Pointer(C.nanu_string_ptr(out)), C.int(C.nanu_string_len(out)))
		if err := json.Unmarshal(data, &rows); err != nil {
			return fmt.Errorf("nanu returned an unreadable usage report: %w", err)
		}
		return nil
	})
	return rows, err
}

// Stats are counts a vault keeps.
type Stats struct {
	Keys, Owners, Malformed, NotFound, Holds, CorruptKeys uint64
}

// Stats returns the vault's counts.
func (v *Vault) Stats() (Stats, error) {
	var out Stats
	err := v.call(func(vault *C.nanu_vault) error {
		var s C.nanu_stats
		if err := check(C.nanu_vault_stats(vault, &s)); err != nil {
			return err
		}
		out = Stats{uint64(s.keys), uint64(s.owners), uint64(s.malformed), uint64(s.not_found),
			uint64(s.holds), uint64(s.corrupt_keys)}
		return nil
	})
	return out, err
}
