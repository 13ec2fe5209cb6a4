"""Minting, reading, listing, changing, rotating and revoking keys."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

import nanu
from conftest import T0


def test_mint_with_every_field(vault: nanu.Vault) -> None:
    expires = datetime(2100, 1, 1, tzinfo=timezone.utc)
    minted = vault.mint(
        "acme",
        name="ci bot",
        env="test",
        scopes=["chat", "embed"],
        models=["openai/*", "gpt-4o"],
        aliases={"fast": "openai/gpt-4o-mini"},
        ips=["10.0.0.0/8", "2001:db8::/32"],
        expires_at=expires,
        limits=["requests=100/min", nanu.Limit("tokens", 1_000_000, "day", tz="Europe/Berlin"),
                {"unit": "cost", "amount": 10_000_000, "window": "month", "anchor": 15}],
        rotate_every="90 days",
        metadata={"team": "ml", "seats": 3, "nested": {"ok": [1, 2.5, None, True]}},
        at=T0,
        actor="admin@example.com",
    )
    assert re.fullmatch(nanu.SECRET_REGEX, minted.secret)
    assert minted.secret.startswith("nanu_test_")
    info = vault.get(minted.key_id)
    assert info.key_id == minted.key_id and info.owner == "acme" and info.name == "ci bot"
    assert info.env == "test" and info.status == "active"
    assert info.created_at == T0 and info.updated_at == T0 and info.rotated_at == T0
    assert info.created_at.tzinfo is not None and info.created_at.utcoffset() == timedelta(0)
    assert info.expires_at == expires and info.grace_until is None
    assert info.scopes == ("chat", "embed")
    assert info.models == ("openai/*", "gpt-4o")
    assert info.aliases == {"fast": "openai/gpt-4o-mini"}
    assert info.ips == ("10.0.0.0/8", "2001:db8::/32")
    assert info.limits[0] == nanu.Limit("requests", 100, "rolling", every="1m")
    assert info.limits[1] == nanu.Limit("tokens", 1_000_000, "day", tz="Europe/Berlin")
    assert info.limits[2] == nanu.Limit("cost", 10_000_000, "month", tz="UTC", anchor=15)
    assert info.rotate_every == "90 days"
    assert info.metadata == {"team": "ml", "seats": 3, "nested": {"ok": [1, 2.5, None, True]}}
    record = vault.audit(after=0, limit=100)[-1]
    assert (record.action, record.target, record.actor) == ("mint", minted.key_id,
                                                           "admin@example.com")


def test_minted_repr_never_shows_the_secret(vault: nanu.Vault) -> None:
    minted = vault.mint("acme")
    body = minted.secret.split("_", 2)[2]
    assert body not in repr(minted) and body not in str(minted)
    assert repr(minted) == f"Minted(key_id={minted.key_id!r}, secret='nanu_live_…')"
    assert minted.secret not in repr(vault.get(minted.key_id))
    assert minted.secret not in repr(vault.verify(minted.secret))


def test_ttl_counts_from_the_mint_time(vault: nanu.Vault) -> None:
    a = vault.mint("acme", ttl="12h", at=T0)
    b = vault.mint("acme", ttl=timedelta(days=2, microseconds=5), at=T0)
    assert vault.get(a.key_id).expires_at == T0 + timedelta(hours=12)
    assert vault.get(b.key_id).expires_at == T0 + timedelta(days=2, microseconds=5)
    with pytest.raises(nanu.InvalidArgument, match="not both"):
        vault.mint("acme", ttl="1h", expires_at=T0)


def test_epoch_milliseconds_and_aware_datetimes_are_the_same_time(vault: nanu.Vault) -> None:
    ms = int(T0.timestamp() * 1000) + 1500
    berlin = timezone(timedelta(hours=1))
    a = vault.mint("acme", expires_at=ms)
    b = vault.mint("acme", expires_at=(T0 + timedelta(milliseconds=1500)).astimezone(berlin))
    assert vault.get(a.key_id).expires_at == vault.get(b.key_id).expires_at
    assert vault.get(a.key_id).expires_at == T0 + timedelta(milliseconds=1500)


def test_mint_many_is_all_or_nothing(vault: nanu.Vault) -> None:
    minted = vault.mint_many([{"owner": "a"}, {"owner": "b", "limits": ["requests=5"]}])
    assert [vault.get(m.key_id).owner for m in minted] == ["a", "b"]
    before = vault.stats().keys
    with pytest.raises(nanu.InvalidArgument, match="key spec 1"):
        vault.mint_many([{"owner": "c"}, {"owner": "d", "limtis": []}])
    with pytest.raises(nanu.InvalidArgument):
        vault.mint_many([{"owner": "c"}, {"owner": "d", "env": "Not An Env"}])
    with pytest.raises(nanu.InvalidArgument, match="must be a dict"):
        vault.mint_many(["owner"])  # type: ignore[list-item]
    assert vault.stats().keys == before
    assert vault.mint_many([]) == []


def test_list_filters_and_pages(vault: nanu.Vault) -> None:
    ids = {vault.mint("acme", env="live").key_id for _ in range(5)}
    ids |= {vault.mint("beta", env="test").key_id for _ in range(3)}
    revoked = vault.mint("acme").key_id
    vault.revoke(revoked)
    seen: list[str] = []
    page = vault.list(limit=3)
    while True:
        seen += [k.key_id for k in page.keys]
        if page.next is None:
            break
        page = vault.list(limit=3, after=page.next)
    assert seen == sorted(ids | {revoked})
    assert {k.key_id for k in vault.list(owner="beta").keys} <= ids
    assert len(vault.list(owner="beta").keys) == 3
    assert len(vault.list(env="live", status="active").keys) == 5
    assert [k.key_id for k in vault.list(status="revoked").keys] == [revoked]
    with pytest.raises(nanu.InvalidArgument, match="limit"):
        vault.list(limit=0)
    with pytest.raises(nanu.InvalidArgument):
        vault.list(status="sleeping")


def test_update_changes_and_clears_fields(vault: nanu.Vault) -> None:
    key = vault.mint("acme", models=["gpt-4o"], ips=["10.0.0.1"], expires_at=T0 + timedelta(1),
                     rotate_every="30 days", limits=["requests=2"], at=T0)
    info = vault.update(key.key_id, name="renamed", scopes=["a"], metadata={"k": "v"},
                        aliases={"x": "gpt-4o"}, at=T0 + timedelta(hours=1), actor="ops")
    assert (info.name, info.scopes, info.metadata) == ("renamed", ("a",), {"k": "v"})
    assert info.updated_at == T0 + timedelta(hours=1)
    assert info.models == ("gpt-4o",) and info.ips == ("10.0.0.1",)
    info = vault.update(key.key_id, models=None, ips=None, expires_at=None, rotate_every=None)
    assert info.models is None and info.ips is None
    assert info.expires_at is None and info.rotate_every is None
    info = vault.update(key.key_id, models=[], limits=["requests=5"])
    assert info.models == () and info.limits == (nanu.Limit("requests", 5),)
    assert not vault.verify(key.secret, model="gpt-4o").allowed
    assert vault.verify(key.secret, model="gpt-4o").code == "model_denied"
    info = vault.update(key.key_id, disabled=True)
    assert info.status == "disabled"
    assert vault.verify(key.secret).code == "disabled"
    vault.update(key.key_id, disabled=False)
    assert vault.verify(key.secret).allowed
    with pytest.raises(nanu.InvalidArgument, match="disabled must be a bool"):
        vault.update(key.key_id, disabled=1)  # type: ignore[arg-type]
    with pytest.raises(nanu.NotFound):
        vault.update("key_missing", name="x")
    assert repr(nanu.UNSET) == "UNSET"


def test_revoke_and_revoke_owner(vault: nanu.Vault) -> None:
    a, b, c = (vault.mint("acme") for _ in range(3))
    other = vault.mint("beta")
    vault.revoke(a.key_id)
    vault.revoke(a.key_id)  # again: nothing more
    assert vault.verify(a.secret).code == "revoked"
    assert vault.revoke_owner("acme") == 2
    assert vault.revoke_owner("acme") == 0
    assert vault.verify(b.secret).code == "revoked"
    assert vault.verify(c.secret).code == "revoked"
    assert vault.verify(other.secret).allowed
    assert vault.get(b.key_id).status == "revoked"
    with pytest.raises(nanu.InvalidArgument, match="cannot be enabled"):
        vault.update(a.key_id, disabled=False)
    with pytest.raises(nanu.NotFound):
        vault.revoke("key_missing")
    kinds = [e.kind for e in vault.events()]
    assert kinds.count("revoked") == 3


def test_rotate_with_grace(vault: nanu.Vault) -> None:
    old = vault.mint("acme", limits=["requests=10"], at=T0)
    new = vault.rotate(old.key_id, grace=timedelta(minutes=1), at=T0 + timedelta(hours=1))
    assert new.key_id == old.key_id and new.secret != old.secret
    in_grace = vault.verify(old.secret, at=T0 + timedelta(hours=1, seconds=59))
    assert in_grace.allowed and in_grace.grace
    assert vault.verify(old.secret, at=T0 + timedelta(hours=1, minutes=1)).code == "not_found"
    fresh = vault.verify(new.secret, at=T0 + timedelta(hours=1, minutes=1))
    assert fresh.allowed and not fresh.grace
    assert fresh.remaining is not None and fresh.remaining.requests == 8
    newer = vault.rotate(old.key_id, 0, at=T0 + timedelta(hours=2))
    assert vault.verify(new.secret, at=T0 + timedelta(hours=2)).code == "not_found"
    assert vault.verify(newer.secret, at=T0 + timedelta(hours=2)).allowed
    with pytest.raises(nanu.InvalidArgument, match="grace must not be negative"):
        vault.rotate(old.key_id, timedelta(seconds=-1))
    with pytest.raises(nanu.InvalidArgument, match="grace"):
        vault.rotate(old.key_id, -1)


def test_rotate_due(vault: nanu.Vault) -> None:
    due = vault.mint("acme", rotate_every="30 days", at=T0)
    vault.mint("acme", rotate_every="90 days", at=T0)
    vault.mint("acme", at=T0)
    assert vault.rotate_due(at=T0 + timedelta(days=29)) == []
    rotated = vault.rotate_due(grace=timedelta(hours=1), at=T0 + timedelta(days=31))
    assert [m.key_id for m in rotated] == [due.key_id]
    assert vault.verify(rotated[0].secret, at=T0 + timedelta(days=31)).allowed
    assert vault.verify(due.secret, at=T0 + timedelta(days=31)).grace


def test_expiry(vault: nanu.Vault) -> None:
    key = vault.mint("acme", expires_at=T0 + timedelta(days=1), at=T0)
    assert vault.verify(key.secret, at=T0 + timedelta(hours=23)).allowed
    assert vault.verify(key.secret, at=T0 + timedelta(days=1)).code == "expired"
    assert vault.list(status="expired").keys[0].key_id == key.key_id
    kinds = {e.kind for e in vault.events()}
    assert {"expiring", "expired"} <= kinds


def test_owner_policies(vault: nanu.Vault) -> None:
    vault.set_default_owner_policy(["requests=3"], actor="ops")
    assert vault.default_owner_policy() == (nanu.Limit("requests", 3),)
    a = vault.mint("acme")
    b = vault.mint("acme")
    assert vault.owner("acme").limits == (nanu.Limit("requests", 3),)
    assert [vault.verify(k.secret).allowed for k in (a, b, a, b)] == [True, True, True, False]
    denied = vault.verify(a.secret)
    assert denied.code == "usage_exceeded"
    assert denied.denied_by is not None and denied.denied_by.level == "owner"
    vault.set_owner_policy("acme", [nanu.Limit("requests", 10)])
    info = vault.owner("acme")
    assert info.keys == 2 and info.remaining.requests == 7
    assert vault.verify(a.secret).allowed
    vault.set_owner_policy("fresh", ["tokens=5"])
    assert vault.owners() == ["acme", "fresh"]
    with pytest.raises(nanu.NotFound):
        vault.owner("nobody")
    with pytest.raises(nanu.InvalidArgument):
        vault.set_owner_policy("", [])


def test_remaining_at_a_time(vault: nanu.Vault) -> None:
    key = vault.mint("acme", limits=["requests=10/hour"], at=T0)
    for _ in range(4):
        vault.verify(key.secret, at=T0)
    assert vault.remaining(key.key_id, at=T0).requests == 6
    (status,) = vault.remaining(key.key_id, at=T0 + timedelta(minutes=30)).limits
    assert status.level == "key" and status.index == 0 and status.limit.window == "hour"
    assert (status.used, status.held, status.remaining) == (4, 0, 6)
    assert status.resets_at == T0 + timedelta(hours=1)
    assert vault.remaining(key.key_id, at=T0 + timedelta(hours=1)).requests == 10
    with pytest.raises(nanu.NotFound):
        vault.remaining("key_nope")


def test_naive_datetimes_are_refused_everywhere(vault: nanu.Vault) -> None:
    naive = datetime(2025, 1, 1)
    key = vault.mint("acme")
    for call in (
        lambda: vault.mint("acme", at=naive),
        lambda: vault.mint("acme", expires_at=naive),
        lambda: vault.verify(key.secret, at=naive),
        lambda: vault.charge(key.key_id, at=naive),
        lambda: vault.update(key.key_id, expires_at=naive),
        lambda: vault.usage(from_=naive),
        lambda: vault.remaining(key.key_id, at=naive),
        lambda: vault.tick(naive),
        lambda: vault.release(1, at=naive),
    ):
        with pytest.raises(nanu.InvalidArgument, match="naive datetime"):
            call()
