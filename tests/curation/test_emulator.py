"""The built-in API emulator, driven by the real anthropic SDK over HTTP."""

import anthropic


def test_fixture_serves_messages(emulator):
    sdk = anthropic.Anthropic(base_url=emulator.url, api_key="k", max_retries=0)
    message = sdk.messages.create(
        model="claude-haiku-4-5", max_tokens=100,
        messages=[{"role": "user", "content": "Note path: a.md\nTitle: A\n\n<note>\nHello world text.\n</note>"}],
    )
    assert message.content[0].type == "text"
    assert emulator.stats()["notes"] == {"a.md": 1}
