"""Telnyx: media streaming codec, TeXML answers and the Ed25519 webhook check, behind the carrier seam."""
