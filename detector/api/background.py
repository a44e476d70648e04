"""One background task per object: the API's periodic jobs (credential watch, audit anchor)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class Background:
    """Runs ``_run()`` as one named task on the running loop; ``stop`` cancels and awaits it.
    Subclasses set ``task_name`` and define ``_run``."""

    task_name = "background"
    _task: asyncio.Task | None = None
    _run: Callable[[], Coroutine[Any, Any, None]]     # the subclass's loop

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
