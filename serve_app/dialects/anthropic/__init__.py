"""Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`): protocol.py (the
request models), serving.py (a message, or its stream of events), routes.py. Keys come
as `x-api-key` too, as Anthropic's clients send them; errors are Anthropic's shape."""
