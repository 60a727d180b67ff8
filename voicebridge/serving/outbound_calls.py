"""A bridge's outbound calls: placing them through Twilio's REST API, their plans on the shared
state, and the answering-machine verdicts Twilio posts back (docs/calls.md)."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from flask import Response, request

from ..call.opening import AnsweredBy
from ..carrier.seam import safe_id
from ..carrier.twilio import dialing
from ..config import BridgeConfig
from ..throttle import LogThrottle
from .filestate import StateDirError
from .sharedstate import SharedState, board_key

log = logging.getLogger(__name__)


class OutboundCalls:
    """One bridge's outbound calls. Owns the Twilio REST client (built on the first call) and
    reads and writes two shared boards: ``plan`` (plan id -> the call's plan, redeemed once by
    its stream) and ``amd`` (call SID -> the verdict, for whichever worker has the stream)."""

    def __init__(self, state: SharedState, config: BridgeConfig, refusals: LogThrottle, *,
                 account_sid: str | None, auth_token: str | None, twilio_api_url: str | None,
                 rest_client: Any) -> None:
        self.plans = state.board("plan")
        self.answers = state.board("amd")
        self._config = config
        self._refusals = refusals
        self._account_sid, self._auth_token, self._api_url = account_sid, auth_token, twilio_api_url
        self.rest_client = rest_client

    def call(self, to: str, from_: str, plan: dialing.CallPlan, base_url: str | None, status_callback: str | None,
             timeout_s: int | None) -> str:
        """Keep ``plan`` on the board and ask Twilio to place the call, answered at ``base_url``'s
        ``/voice``; the call's SID."""
        if not base_url:
            raise ValueError("VoiceBridge(public_url=...) is needed to place calls: Twilio must reach /voice")
        plan.check(self._config)
        client = self._rest()
        plan_id, now = dialing.new_plan_id(), time.time()
        self.plans.put(plan_id, plan.to_json(), now + dialing.PLAN_KEEP_S, now)
        sid = dialing.create_call(client, to, from_, f"{base_url}/voice?{dialing.PLAN_PARAMETER}={plan_id}",
                                  f"{base_url}/voice/amd" if plan.amd else None, status_callback, timeout_s=timeout_s)
        log.info("outbound call %s placed (%s, %s first)", safe_id(sid), "AMD" if plan.amd else "no AMD",
                 plan.first_speaker)
        return sid

    def _rest(self) -> Any:
        if self.rest_client is None:
            if not (self._account_sid and self._auth_token):
                raise ValueError("VoiceBridge(account_sid=..., auth_token=...) (or rest_client=) is needed to "
                                 "place calls")
            self.rest_client = dialing.rest_client(self._account_sid, self._auth_token, self._api_url)
        return self.rest_client

    def amd_result(self) -> Response:
        """Twilio's async AMD callback (the view): the verdict goes on the board for the stream's session."""
        call_sid, verdict = request.form.get("CallSid", ""), AnsweredBy.parse(request.form.get("AnsweredBy"))
        if verdict is None:
            self._refusals.warning("amd bad", "AMD callback for call %s without a known AnsweredBy: ignored",
                                   safe_id(call_sid))
            return Response("unknown AnsweredBy\n", status=400, mimetype="text/plain")
        now = time.time()
        try:
            self.answers.put(board_key(call_sid), verdict.value, now + dialing.AMD_KEEP_S, now)
        except (ValueError, OSError, StateDirError) as exc:  # no call SID, or the state failing
            self._refusals.warning("amd store", "AMD verdict for call %s not stored: %s", safe_id(call_sid), exc)
            return Response("not stored\n", status=400 if isinstance(exc, ValueError) else 503,
                            mimetype="text/plain")
        log.info("call %s answered by %s", safe_id(call_sid), verdict.value)
        return Response(status=204)

    def answer_source(self, call_sid: str) -> Callable[[float], AnsweredBy | None]:
        """What the call's opening gate polls for the verdict (taken once, from any worker)."""
        key = board_key(call_sid)

        def take(_now: float) -> AnsweredBy | None:
            value = self.answers.take(key, time.time())
            return AnsweredBy.parse(value) if value is not None else None
        return take

    def plan(self, plan_id: str, call_log: Any) -> "dialing.CallPlan | None":
        """The outbound call's plan, taken once; None (logged) for an unknown, used or expired id."""
        try:
            text = self.plans.take(plan_id, time.time())
            return dialing.CallPlan.from_json(text) if text is not None else None
        except (ValueError, OSError, StateDirError) as exc:
            call_log.error("outbound call plan unreadable: %s", exc)
            return None
