"""One call: the ``MediaSession`` shell and the parts it joins (uplink, downlink, barge-in, turns, tools)."""
