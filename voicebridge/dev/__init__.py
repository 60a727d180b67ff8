"""The offline development stack (local Realtime server, simulated caller, demo, verify).

The bridge never imports this package; it ships so users can run a whole call with no account."""
