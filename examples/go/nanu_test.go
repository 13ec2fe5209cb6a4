package nanu

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func create(t *testing.T) (*Vault, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.vault")
	v, err := Create(path, Options{Passphrase: "correct horse", KDF: TestKDF})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return v, path
}

func TestMintVerifyChargeAndReport(t *testing.T) {
	v, _ := create(t)
	price := Price{InputPerMtok: 2_500_000, OutputPerMtok: 10_000_000}
	if err := v.SetPrice("gpt-4o", price); err != nil {
		t.Fatal(err)
	}
	minted, err := v.Mint(map[string]any{
		"owner":  "acme",
		"scopes": []string{"chat"},
		"limits": []string{"requests=100/min", "tokens=1M/day", "cost=$10/month"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(minted.KeyID, "key_") || !strings.HasPrefix(minted.Secret, "nanu_live_") {
		t.Fatalf("minted %q / %q", minted.KeyID, minted.Secret)
	}

	request := &Request{Scope: "chat", Model: "gpt-4o", IP: "10.0.0.1", HoldCost: 50_000}
	verdict, err := v.Verify(minted.Secret, request)
	if err != nil {
		t.Fatal(err)
	}
	if !verdict.Allowed || verdict.Code != "valid" || verdict.KeyID != minted.KeyID ||
		verdict.Owner != "acme" || verdict.Env != "live" || verdict.Model != "gpt-4o" {
		t.Fatalf("verdict %+v", verdict)
	}
	want := Remaining{
		Requests: 99, Tokens: 1_000_000, InputTokens: Unlimited, OutputTokens: Unlimited,
		Cost: 9_950_000,
	}
	if verdict.Remaining != want || verdict.HoldID == 0 || verdict.DeniedBy != nil {
		t.Fatalf("verdict %+v", verdict)
	}

	usage := Usage{
		Model: "gpt-4o", InputTokens: 1200, OutputTokens: 300, RequestID: "r1",
		HoldID: verdict.HoldID,
	}
	outcome, err := v.Charge(minted.KeyID, usage)
	if err != nil {
		t.Fatal(err)
	}
	if outcome != (ChargeOutcome{Cost: 6000, Priced: true}) {
		t.Fatalf("outcome %+v", outcome)
	}
	again, err := v.Charge(minted.KeyID, usage)
	if err != nil || !again.Replayed || again.Cost != 6000 {
		t.Fatalf("replay %+v %v", again, err)
	}

	denied, err := v.Verify(minted.Secret, &Request{Scope: "admin"})
	if err != nil || denied.Allowed || denied.Code != "scope_denied" {
		t.Fatalf("denied %+v %v", denied, err)
	}

	rows, err := v.Usage(`{"group_by": ["model"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	// Rows are ordered by group values: the denied verify named no model.
	if rows[0].Group["model"] != "" || rows[0].Denied != 1 {
		t.Fatalf("rows[0] %+v", rows[0])
	}
	if r := rows[1]; r.Group["model"] != "gpt-4o" || r.Requests != 1 || r.Tokens != 1500 ||
		r.Cost != 6000 {
		t.Fatalf("rows[1] %+v", r)
	}

	left, err := v.Remaining(minted.KeyID)
	if err != nil || left.Cost != 10_000_000-6000 || left.Tokens != 1_000_000-1500 {
		t.Fatalf("remaining %+v %v", left, err)
	}
}

func TestWrongPassphraseIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.vault")
	v, err := Create(path, Options{Passphrase: "correct horse", KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{Passphrase: "battery staple"})
	var nerr *Error
	if !errors.As(err, &nerr) {
		t.Fatalf("expected a nanu error, got %v", err)
	}
	if nerr.Code != "wrong_passphrase" || nerr.Status != 300 {
		t.Fatalf("error %+v", nerr)
	}
	if strings.Contains(nerr.Message, "battery") {
		t.Fatalf("the message shows the passphrase: %q", nerr.Message)
	}
	v, err = Open(path, Options{Passphrase: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputIsNamed(t *testing.T) {
	v, _ := create(t)
	_, err := v.Mint(`{"owner": "acme", "colour": "blue"}`)
	var nerr *Error
	if !errors.As(err, &nerr) || nerr.Code != "invalid_argument" ||
		!strings.Contains(nerr.Message, "colour") {
		t.Fatalf("error %v", err)
	}
	_, err = v.Charge("key_missing", Usage{InputTokens: 1})
	if !errors.As(err, &nerr) || nerr.Code != "not_found" ||
		!strings.Contains(nerr.Message, "key_missing") {
		t.Fatalf("error %v", err)
	}
	_, err = v.Verify("x", &Request{IP: "not an address"})
	if !errors.As(err, &nerr) || nerr.Code != "invalid_argument" {
		t.Fatalf("error %v", err)
	}
	verdict, err := v.Verify("\xff\xfe garbage", nil)
	if err != nil || verdict.Code != "malformed" {
		t.Fatalf("verdict %+v %v", verdict, err)
	}
}

func TestGoroutinesShareALimitExactly(t *testing.T) {
	v, _ := create(t)
	minted, err := v.Mint(`{"owner": "acme", "limits": ["requests=500"]}`)
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				verdict, err := v.Verify(minted.Secret, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if verdict.Allowed {
					allowed.Add(1)
				} else if verdict.Code == "usage_exceeded" {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 500 || denied.Load() != 300 {
		t.Fatalf("allowed %d, denied %d", allowed.Load(), denied.Load())
	}
}

func TestAClosedVaultRefusesCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.vault")
	v, err := Create(path, Options{Passphrase: "pw", KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal("closing twice must be harmless")
	}
	_, err = v.Verify("anything", nil)
	var nerr *Error
	if !errors.As(err, &nerr) || nerr.Code != "closed" {
		t.Fatalf("error %v", err)
	}
}
