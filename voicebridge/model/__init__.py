"""The model side: the OpenAI Realtime protocol, its WebSocket client, and one call's link to it."""
