"""Single-use stream tokens, sans-IO: the clock is an argument."""
from voicebridge.streamtoken import StreamTokens, TokenCheck

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
