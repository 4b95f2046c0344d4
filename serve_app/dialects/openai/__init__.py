"""The OpenAI dialect: protocol.py (request models), responses.py (response models),
routes.py, serving.py (answers and SSE streams), and what only it needs: tools and
tool calls, structured output, logprobs, refused fields, tokenize."""
