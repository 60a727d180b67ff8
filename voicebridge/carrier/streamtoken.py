"""Single-use stream tokens: a signed ``/media`` upgrade cannot be replayed (sans-IO).

Twilio signs the WebSocket upgrade, but the signature covers only the URL, so the same signed
upgrade would be accepted again on a second connection. The webhook therefore gives each call a
token (``<Parameter name="vb_token">``, which Twilio returns in ``start.customParameters``):
an HMAC-SHA256, keyed with the Twilio auth token, over the call SID, an expiry and a nonce. The
stream is admitted only if ``start`` carries a valid token, for that call, not expired and not
used before. The clock is passed in (wall-clock seconds, so a token issued by one process can be
checked by another); used nonces are remembered until they expire, in this process or, with a
shared :class:`~voicebridge.serving.filestate.SingleUse` store, across the worker processes of one host:
any worker can check a token's signature, only "used" needs sharing.
"""
from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets

from ..serving.filestate import SingleUse
from ..serving.sharedstate import UsedMarks

PARAMETER = "vb_token"
DEFAULT_LIFETIME_S = 30.0
MAX_TOKEN_CHARS = 120
NONCE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # token_urlsafe(12) gives 16 of these


class TokenCheck(enum.Enum):
    """The outcome of presenting a token."""

    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    WRONG_SIGNATURE = "wrong signature or another call's token"
    REUSED = "already used"


class StreamTokens:
    """Issues and redeems the tokens of one bridge (thread-safe).

    ``store`` remembers used nonces: by default in this process; a ``SingleUse`` on a shared
    directory makes a token single-use across every process using that directory, the Redis
    backend's across every host (:mod:`voicebridge.serving.sharedstate`).
    """

    def __init__(self, secret: str, lifetime_s: float = DEFAULT_LIFETIME_S, store: UsedMarks | None = None) -> None:
        if not secret:
            raise ValueError("a stream token secret is required")
        self._key = secret.encode("utf-8")
        self.lifetime_s = lifetime_s
        self.store = store if store is not None else SingleUse()

    def issue(self, call_sid: str, now: float) -> str:
        expires = int(now + self.lifetime_s) + 1
        nonce = secrets.token_urlsafe(12)
        return f"{expires}.{nonce}.{self._sign(call_sid, expires, nonce)}"

    def redeem(self, token: "str | None", call_sid: str, now: float) -> TokenCheck:
        """Check ``token`` for ``call_sid`` and, if valid, use it up."""
        if not token:
            return TokenCheck.MISSING
        parts = token.split(".") if len(token) <= MAX_TOKEN_CHARS and token.isascii() else []
        # ASCII only: int() of a non-ASCII digit and compare_digest of non-ASCII text would raise
        if len(parts) != 3 or not parts[0].isdigit() or NONCE.fullmatch(parts[1]) is None:
            return TokenCheck.MALFORMED
        expires, nonce, signature = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(signature, self._sign(call_sid, expires, nonce)):
            return TokenCheck.WRONG_SIGNATURE
        if now > expires:
            return TokenCheck.EXPIRED
        if not self.store.claim(nonce, expires, now):
            return TokenCheck.REUSED
        return TokenCheck.VALID

    def _sign(self, call_sid: str, expires: int, nonce: str) -> str:
        mac = hmac.new(self._key, f"{call_sid}|{expires}|{nonce}".encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii")
