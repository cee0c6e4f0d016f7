"""Drives a running Workjet with the official Anthropic Python SDK (its Messages API at
/v1/messages) and prints one JSON object with what happened. Called by
tests/integration/sdk.rs; arguments come as environment variables so that no key appears on a
command line."""

import json
import os

import anthropic

base_url = os.environ["WJ_SDK_BASE_URL"]
model = os.environ["WJ_SDK_ANTHROPIC_MODEL"]
results = {}


def client(key):
    # No automatic retries: each call shows exactly what the server answered. The SDK sends
    # the key as x-api-key, as it does to Anthropic's own API.
    return anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0, timeout=30)


def outcome(fn):
    try:
        return {"ok": fn()}
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"error": type(e).__name__, "status": e.status_code, "type": (body.get("error") or {}).get("type")}


def hello(c, **extra):
    return c.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello, world!"}], **extra)


good = client(os.environ["WJ_SDK_KEY"])


def message():
    m = hello(good)
    return {"text": m.content[0].text, "input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens}


def stream():
    with good.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    return {"text": text, "output_tokens": final.usage.output_tokens}


results["message"] = outcome(message)
results["stream"] = outcome(stream)
results["bad_key"] = outcome(lambda: hello(client("wj_live_" + "0" * 36)).id)
results["revoked"] = outcome(lambda: hello(client(os.environ["WJ_SDK_REVOKED_KEY"])).id)
results["restricted"] = outcome(lambda: hello(client(os.environ["WJ_SDK_RESTRICTED_KEY"])).id)
limited = client(os.environ["WJ_SDK_LIMITED_KEY"])
results["limited_first"] = outcome(lambda: hello(limited).id)
results["limited_second"] = outcome(lambda: hello(limited).id)
results["openai_only_model"] = outcome(lambda: good.messages.create(model=os.environ["WJ_SDK_OPENAI_MODEL"], max_tokens=8, messages=[{"role": "user", "content": "Hi"}]).id)
print(json.dumps(results))
