"""OpenAI's Responses API (`/v1/responses`): protocol.py (the request, and its input as chat
turns), serving.py (the response object and its stream of semantic events), store.py
(stored responses for `previous_response_id`), routes.py. Errors are OpenAI's shape."""
