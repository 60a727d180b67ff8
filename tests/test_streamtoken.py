"""Single-use stream tokens, sans-IO: the clock is an argument."""
from voicebridge.carrier.streamtoken import StreamTokens, TokenCheck

CALL = "CA" + "1" * 32
OTHER = "CA" + "2" * 32


def test_a_token_is_valid_once_for_its_own_call_until_it_expires():
    tokens = StreamTokens("auth-token", lifetime_s=30)
    token = tokens.issue(CALL, now=1000.0)
    assert tokens.redeem(token, OTHER, now=1001.0) is TokenCheck.WRONG_SIGNATURE
    assert tokens.redeem(token, CALL, now=1001.0) is TokenCheck.VALID
    assert tokens.redeem(token, CALL, now=1002.0) is TokenCheck.REUSED
    late = tokens.issue(CALL, now=1000.0)
    assert tokens.redeem(late, CALL, now=1032.0) is TokenCheck.EXPIRED


def test_forged_and_missing_tokens_are_refused():
    tokens = StreamTokens("auth-token")
    token = tokens.issue(CALL, now=0.0)
    expires, nonce, signature = token.split(".")
    assert tokens.redeem(f"{int(expires) + 3600}.{nonce}.{signature}", CALL, now=1.0) is TokenCheck.WRONG_SIGNATURE
    assert StreamTokens("another-token").redeem(token, CALL, now=1.0) is TokenCheck.WRONG_SIGNATURE
    assert tokens.redeem(None, CALL, now=1.0) is TokenCheck.MISSING
    assert tokens.redeem("x" * 500, CALL, now=1.0) is TokenCheck.MALFORMED
    assert tokens.redeem("a.b.c", CALL, now=1.0) is TokenCheck.MALFORMED


def test_an_expired_token_stays_refused_after_its_nonce_is_forgotten():
    tokens = StreamTokens("auth-token", lifetime_s=10)
    first = tokens.issue(CALL, now=0.0)
    assert tokens.redeem(first, CALL, now=1.0) is TokenCheck.VALID
    second = tokens.issue(CALL, now=100.0)
    assert tokens.redeem(second, CALL, now=101.0) is TokenCheck.VALID
    assert tokens.redeem(first, CALL, now=101.0) is TokenCheck.EXPIRED  # not kept as "used" forever


def test_non_ascii_and_odd_tokens_are_malformed_not_errors():
    tokens = StreamTokens("auth-token")
    good = tokens.issue(CALL, now=0.0)
    expires, nonce, signature = good.split(".")
    for bad in (f"\u00b2.{nonce}.{signature}", f"{expires}.n\u00e9.{signature}", f"{expires}.{nonce}.\u00e9\u00e9",
                f"{expires}..{signature}", f"{expires}.../{signature}", f"{expires}.{'n' * 40}.{signature}"):
        assert tokens.redeem(bad, CALL, now=1.0) is TokenCheck.MALFORMED, bad
    assert tokens.redeem(good, CALL, now=1.0) is TokenCheck.VALID


def test_bridges_sharing_a_store_redeem_each_token_once(tmp_path):
    from voicebridge.serving.filestate import SingleUse

    one = StreamTokens("auth-token", store=SingleUse(str(tmp_path / "state")))
    two = StreamTokens("auth-token", store=SingleUse(str(tmp_path / "state")))
    token = one.issue(CALL, now=1000.0)
    assert two.redeem(token, CALL, now=1001.0) is TokenCheck.VALID
    assert one.redeem(token, CALL, now=1002.0) is TokenCheck.REUSED
    assert StreamTokens("auth-token").redeem(token, CALL, now=1002.0) is TokenCheck.VALID  # not sharing: its own
