"""A cancellation must reach the caller of a Redis command even when the command swallows it.

redis-py can swallow a cancellation that lands while a command is in flight; a chat action loop stopped
that way ran on, and the answer that waited for the loop to end hung with its request (seen in the
distributed load bench: requests left running forever). `uncancellable` runs the command behind a shield.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.shared.base import uncancellable


class SwallowingCommand:
    """Behaves as redis-py did: a cancellation during the command is caught, and the command returns."""

    def __init__(self) -> None:
        self.finished = asyncio.Event()

    async def run(self) -> str:
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
        self.finished.set()
        return "OK"


async def test_a_swallowed_cancellation_is_lost_without_the_shield() -> None:
    command = SwallowingCommand()

    async def caller() -> str:
        return await command.run()

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task == "OK"  # the caller ran on as if it had never been cancelled: the failure mode


async def test_the_caller_is_cancelled_and_the_command_still_ends() -> None:
    command = SwallowingCommand()

    async def caller() -> str:
        return await uncancellable(command.run())

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(command.finished.wait(), 2)


async def test_a_result_and_an_error_pass_through() -> None:
    async def ok() -> int:
        return 7

    async def broken() -> int:
        raise ConnectionError("redis gone")

    assert await uncancellable(ok()) == 7
    with pytest.raises(ConnectionError):
        await uncancellable(broken())
