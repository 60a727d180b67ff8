"""Serving many calls: the Flask extension, the state hosts share, metrics, the example app's factory."""
