"""Tool calling, whatever the dialect: what a function and a call are and how a forced call is
decoded (definitions.py), and how calls are read out of what a model wrote (parsing.py).
How tools reach the prompt is the engines' (engines/tool_prompts.py)."""
