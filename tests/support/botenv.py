"""The loopback world the bot is tested in, shared by tests/bot/core_harness.py (the app in-process) and
tests/e2e/harness.py (`python -m bot` as a subprocess).

Both start the same fakes: the Bot API, two OpenAI-style text providers and Replicate. Both write a
providers file that routes text to the first provider then the second, video to Replicate, and sells the
same labels; each harness gives its own two provider blocks (their dialects, and which of them serves
images and speech) as a `ProvidersFile`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.openai import Dialect, FakeOpenAI
from tests.fakes.replicate import FakeReplicate
from tests.fakes.telegram import FakeTelegram

REPLICATE_KEY = "r8_test_key"

# After the two text providers' blocks: {first}/{second} are their names, {media_routes} and
# {media_labels} what a harness adds to the routes and between the "Picture" and "Video" labels.
_SHARED_TOML = """\
[providers.replicate]
kind = "replicate"
base_url = "{replicate}"
timeout_s = 5
models = {{ video = "minimax/video-01" }}
prices = {{ video = 0.5 }}
options = {{ poll_interval_s = {replicate_poll_s}, prefer_wait_s = 0 }}

[routes]
text = ["{first}", "{second}"]
{media_routes}video = ["replicate"]

[labels."Fast chat"]
category = "text"
credits = 1

[labels."Smart chat"]
category = "text"
credits = 3
route = ["{second}"]

[labels."Picture"]
category = "image"
credits = 5
{media_labels}
[labels."Video"]
category = "video"
credits = 20

[labels."Voice"]
category = "audio"
credits = 2
"""


@dataclass
class Fakes:
    telegram: FakeTelegram
    primary: FakeOpenAI  # first for text
    secondary: FakeOpenAI  # text fallback, and the only route of "Smart chat"
    replicate: FakeReplicate  # video, as an async job

    @classmethod
    async def start(cls, primary: FakeOpenAI, secondary: FakeOpenAI) -> Fakes:
        # The job keeps running until a test finishes it (polls_until_done = 0).
        replicate = FakeReplicate(token=REPLICATE_KEY, polls_until_done=10**9, output_style="string",
                                  output_ext="mp4")
        fakes = cls(FakeTelegram(), primary, secondary, replicate)
        for server in fakes.servers():
            await server.start()
        return fakes

    def servers(self) -> list[Any]:
        return [self.telegram, self.primary, self.secondary, self.replicate]

    async def stop(self) -> None:
        for server in self.servers():
            await server.stop()

    def chat_calls(self, fake: FakeOpenAI) -> int:
        return len(fake.calls_to("/chat/completions"))


def text_fake(dialect: Dialect, key: str, reply: str) -> FakeOpenAI:
    fake = FakeOpenAI(dialect=dialect, api_key=key)
    fake.reply_text = reply
    return fake


@dataclass(frozen=True)
class ProvidersFile:
    """A harness's providers file: its two text providers' blocks, and what it adds to the shared part."""

    names: tuple[str, str]  # [providers.NAME] of the primary and the secondary; their keys are NAME_API_KEY
    blocks: str  # the two [providers.*] tables; {primary} and {secondary} stand for the fakes' URLs
    media_routes: str  # [routes] lines besides text and video, each ending in a newline
    replicate_poll_s: float
    media_labels: str = ""  # [labels.*] tables between "Picture" and "Video", each after a blank line

    def text(self, fakes: Fakes) -> str:
        first, second = self.names
        blocks = self.blocks.format(primary=fakes.primary.url, secondary=fakes.secondary.url)
        return blocks + "\n" + _SHARED_TOML.format(
            replicate=fakes.replicate.base_url, replicate_poll_s=self.replicate_poll_s, first=first,
            second=second, media_routes=self.media_routes, media_labels=self.media_labels)

    def write(self, path: Path, fakes: Fakes) -> Path:
        path.write_text(self.text(fakes), encoding="utf-8")
        return path

    def keys(self, fakes: Fakes) -> dict[str, str]:
        """The environment the file's api_key_env names read the fakes' keys from."""
        first, second = self.names
        return {f"{first.upper()}_API_KEY": fakes.primary.api_key, f"{second.upper()}_API_KEY": fakes.secondary.api_key,
                "REPLICATE_API_KEY": fakes.replicate.token}
