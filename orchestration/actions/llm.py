"""`llm.complete`: a chat completion against an OpenAI-compatible endpoint."""
import requests
from django.conf import settings

from .registry import ActionError, action


@action("llm.complete")
def llm_complete(ctx, *, prompt=None, messages=None, model=None, system=None, temperature=None, max_tokens=None):
    """Returns {text, model, usage}; records tokens and cost from the price table."""
    if messages is None:
        if prompt is None:
            raise ActionError("give 'prompt' or 'messages'")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    model = model or settings.DAC_LLM_DEFAULT_MODEL
    body = {"model": model, "messages": messages}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"Authorization": f"Bearer {settings.DAC_LLM_API_KEY}"} if settings.DAC_LLM_API_KEY else {}
    url = settings.DAC_LLM_BASE_URL.rstrip("/") + "/chat/completions"
    response = requests.post(url, json=body, headers=headers, timeout=settings.DAC_LLM_TIMEOUT_SECONDS)
    if response.status_code >= 400:
        raise ActionError(f"LLM endpoint answered {response.status_code}: {response.text[:500]}")
    data = response.json()
    usage = data.get("usage") or {}
    ctx.report_usage(tokens_in=usage.get("prompt_tokens", 0), tokens_out=usage.get("completion_tokens", 0),
                     model=data.get("model") or model)
    try:
        text = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ActionError(f"LLM endpoint returned no choices: {str(data)[:500]}") from exc
    return {"text": text, "model": data.get("model") or model, "usage": usage}
