"""Our types as vLLM's and back: sampling params in, finish reasons and logprobs out, and
which of vLLM's errors are the request's own (a 4xx).

vllm is imported inside functions only (engine.py says why)."""

from __future__ import annotations

from typing import Optional

from serve_app.engines.base import InvalidPromptError, SamplingParams, TokenAlternative, TokenLogprob

# vLLM's finish reasons that end a stream normally; "abort" and "error" end it with an error.
FINISH = {"stop": "stop", "length": "length"}


def prompt_logprobs(entries, prompt_ids: list[int], params: SamplingParams, decode) -> Optional[list[TokenLogprob]]:
    """vLLM's prompt_logprobs (one {token id: Logprob} per prompt token, the first None) as ours."""
    if params.prompt_logprobs is None:
        return None
    scored: list[TokenLogprob] = []
    for token, alternatives in zip(prompt_ids, entries or []):
        if alternatives is None:
            scored.append(TokenLogprob(token, decode(token), None, []))
            continue
        chosen = alternatives[token]
        ranked = sorted((lp.rank, t, lp) for t, lp in alternatives.items() if lp.rank is not None)
        top = [TokenAlternative(t, lp.decoded_token or "", lp.logprob) for rank, t, lp in ranked
               if rank <= params.prompt_logprobs]
        scored.append(TokenLogprob(token, chosen.decoded_token or "", chosen.logprob, top, chosen.rank))
    return scored


def logprobs(completion, k: int) -> list[TokenLogprob]:
    """From vLLM's per-token {token id: Logprob(logprob, rank, decoded_token)}: its top k, and the
    chosen token (an extra entry when it ranks below k)."""
    scored = []
    for token, alternatives in zip(completion.token_ids, completion.logprobs or []):
        ranked = sorted((lp.rank, t, lp) for t, lp in alternatives.items() if lp.rank is not None)
        chosen = alternatives[token]
        top = [TokenAlternative(t, lp.decoded_token or "", lp.logprob) for rank, t, lp in ranked if rank <= k]
        scored.append(TokenLogprob(token, chosen.decoded_token or "", chosen.logprob, top))
    return scored


def sampling_params(params: SamplingParams, max_new: int):
    """Our sampling params as vLLM's, streaming deltas."""
    from vllm import SamplingParams as VLLMSamplingParams
    from vllm.sampling_params import RequestOutputKind

    if params.thinking_budget is not None:  # nothing in vLLM's SamplingParams closes the thinking
        raise InvalidPromptError("thinking.budget_tokens: the vllm engine cannot limit a model's thinking")
    optional = {"top_p": params.top_p, "top_k": params.top_k, "seed": params.seed,
                "logit_bias": params.logit_bias or None, "logprobs": params.logprobs,
                "prompt_logprobs": params.prompt_logprobs}
    if params.json_schema is not None:  # vLLM's own structured output (vLLM >= 0.11)
        from vllm.sampling_params import StructuredOutputsParams

        optional["structured_outputs"] = StructuredOutputsParams(json=params.json_schema)
    return VLLMSamplingParams(
        temperature=params.temperature,
        max_tokens=max_new,
        stop=params.stop or None,
        stop_token_ids=params.stop_token_ids or None,
        include_stop_str_in_output=params.include_stop_str_in_output,
        ignore_eos=params.ignore_eos,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        repetition_penalty=params.repetition_penalty,
        min_p=params.min_p,
        output_kind=RequestOutputKind.DELTA,
        **{k: v for k, v in optional.items() if v is not None},
    )


def refused_request(exc: Exception) -> bool:
    """Whether vLLM refused the request itself (a 4xx), not failed serving it."""
    try:
        from vllm.exceptions import VLLMClientError  # vLLM >= 0.2x; earlier ones raised ValueError
    except ImportError:
        return isinstance(exc, ValueError)
    return isinstance(exc, (VLLMClientError, ValueError))
