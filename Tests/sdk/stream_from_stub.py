"""Streams from Drover's scripted model server with the official anthropic SDK, unchanged.

Usage: stream_from_stub.py BASE_URL. The server's script must answer a text turn first, then a
tool_use turn of `echo` with input {"text": "hello"}. Exits non-zero with a message on mismatch.
"""
import sys

import anthropic

base_url = sys.argv[1]
client = anthropic.Anthropic(base_url=base_url, api_key="scripted", max_retries=0)

with client.messages.stream(
    model="claude-test",
    max_tokens=256,
    messages=[{"role": "user", "content": "Grade this"}],
) as stream:
    streamed = "".join(stream.text_stream)
    first = stream.get_final_message()

assert streamed.startswith("[scripted]"), f"text not labelled as scripted: {streamed!r}"
assert first.content[0].type == "text" and first.content[0].text == streamed, first
assert first.stop_reason == "end_turn", first.stop_reason
assert first.model.startswith("scripted/"), first.model
assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0, first.usage

tools = [{"name": "echo", "description": "echo", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}]
with client.messages.stream(
    model="claude-test",
    max_tokens=256,
    tools=tools,
    messages=[
        {"role": "user", "content": "Grade this"},
        {"role": "assistant", "content": streamed},
        {"role": "user", "content": "Now call the tool"},
    ],
) as stream:
    second = stream.get_final_message()

assert second.stop_reason == "tool_use", second.stop_reason
use = [block for block in second.content if block.type == "tool_use"]
assert len(use) == 1 and use[0].name == "echo" and use[0].input == {"text": "hello"}, second.content

plain = client.messages.create(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "again"}])
assert plain.content[0].text.startswith("[scripted]"), plain

try:
    client.messages.create(model="claude-test", max_tokens=64, messages=[])
    raise AssertionError("an empty messages list was accepted")
except anthropic.BadRequestError as error:
    assert "messages" in str(error), error

print("sdk stream ok:", streamed)
