"""Drives a running Workjet with the official OpenAI Python SDK and prints one JSON object
with what happened. Called by tests/integration/sdk.rs; arguments come as environment
variables so that no key appears on a command line."""

import json
import os

import openai

base_url = os.environ["WJ_SDK_BASE_URL"]
results = {}


def client(key):
    # No automatic retries: each call shows exactly what the server answered.
    return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=30)


def outcome(fn):
    try:
        return {"ok": fn()}
    except openai.APIStatusError as e:
        return {"error": type(e).__name__, "status": e.status_code, "code": e.code, "type": getattr(e, "type", None)}


good = client(os.environ["WJ_SDK_KEY"])
results["models"] = outcome(lambda: [m.id for m in good.models.list()])
results["chat"] = outcome(lambda: good.chat.completions.create(model=os.environ["WJ_SDK_MODEL"], messages=[{"role": "user", "content": "Hello, world!"}]).choices[0].message.content)


def stream():
    chunks = good.chat.completions.create(model=os.environ["WJ_SDK_MODEL"], messages=[{"role": "user", "content": "Hello"}], stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage.total_tokens
    return {"text": text, "usage": usage}


results["stream"] = outcome(stream)
results["anthropic_stream"] = outcome(lambda: "".join(c.choices[0].delta.content or "" for c in good.chat.completions.create(model=os.environ["WJ_SDK_ANTHROPIC_MODEL"], messages=[{"role": "user", "content": "Hi"}], stream=True) if c.choices))
results["missing_model"] = outcome(lambda: good.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}]).id)
results["revoked"] = outcome(lambda: [m.id for m in client(os.environ["WJ_SDK_REVOKED_KEY"]).models.list()])
results["restricted"] = outcome(lambda: [m.id for m in client(os.environ["WJ_SDK_RESTRICTED_KEY"]).models.list()])
limited = client(os.environ["WJ_SDK_LIMITED_KEY"])
results["limited_first"] = outcome(lambda: [m.id for m in limited.models.list()])
results["limited_second"] = outcome(lambda: [m.id for m in limited.models.list()])
print(json.dumps(results))
