"""The APIs the ingress speaks, one folder each: `openai/` (`/v1/*`, vLLM's `/tokenize`)
and `dbgpt/` (DB-GPT's worker, controller and management APIs, `/api/v1/beta/relevance`).
Each has its request models (protocol), its answers (serving), its routes (an
`APIRouter` whose route class renders errors in the dialect's shape) and what only it
needs."""
