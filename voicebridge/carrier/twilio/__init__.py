"""Twilio: Media Streams codec, TwiML, the REST API for outbound calls, behind the carrier seam."""
