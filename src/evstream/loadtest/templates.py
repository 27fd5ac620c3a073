"""Request bodies for each container format and Bedrock model family, and the stream format of each
answer (see :mod:`evstream.formats`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BEDROCK_FAMILIES", "SAGEMAKER_FORMATS", "STREAM_FORMATS", "TEMPLATES"]


def _tgi(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"inputs": prompt, "parameters": {"max_new_tokens": max_tokens, "details": False}, "stream": True}


def _lmi(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"inputs": prompt, "parameters": {"max_new_tokens": max_tokens}, "stream": True}


def _openai_chat(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
    }


def _openai_completions(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"prompt": prompt, "max_tokens": max_tokens, "stream": True}


def _llamacpp(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"prompt": prompt, "n_predict": max_tokens, "stream": True}


def _anthropic(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }


def _nova(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": max_tokens},
    }


def _titan(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"inputText": prompt, "textGenerationConfig": {"maxTokenCount": max_tokens}}


def _meta_llama(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"prompt": prompt, "max_gen_len": max_tokens}


def _cohere(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"message": prompt, "max_tokens": max_tokens}


def _mistral(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {"prompt": f"<s>[INST] {prompt} [/INST]", "max_tokens": max_tokens}


# The SageMaker container formats (what the body asks for, what the stream carries) ...
SAGEMAKER_FORMATS: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "tgi": _tgi,
    "lmi": _lmi,
    "vllm-openai": _openai_chat,
    "openai-completions": _openai_completions,
    "llamacpp": _llamacpp,
}
# ... and the Bedrock model families (InvokeModelWithResponseStream bodies).
BEDROCK_FAMILIES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "anthropic": _anthropic,
    "nova": _nova,
    "titan": _titan,
    "llama": _meta_llama,
    "cohere": _cohere,
    "mistral": _mistral,
}
TEMPLATES = {**SAGEMAKER_FORMATS, **BEDROCK_FAMILIES}


# The stream format (see :mod:`evstream.formats`) each template's answer comes in.
STREAM_FORMATS = {
    "tgi": "tgi",
    "lmi": "lmi",
    "vllm-openai": "openai",
    "openai-completions": "openai",
    "llamacpp": "llamacpp",
    **{family: family for family in BEDROCK_FAMILIES},
}
