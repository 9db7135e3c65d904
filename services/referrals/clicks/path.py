"""One process's click path: the link cache, the journal and the drain's wake-up, per service runtime."""

from __future__ import annotations

import asyncio
from weakref import WeakKeyDictionary

from services.referrals.clicks.cache import LinkCache
from services.referrals.clicks.journal import FOLDER, ClickJournal
from services.referrals.settings import ReferralsSettings
from shared.identity import IdentityHasher, identity_key
from shared.runtime import ServiceRuntime


class ClickPath:
    def __init__(self, runtime: ServiceRuntime) -> None:
        settings = (
            runtime.settings if isinstance(runtime.settings, ReferralsSettings) else ReferralsSettings()
        )
        self.database = runtime.database
        self.cache = LinkCache(ttl_s=settings.click_link_cache_seconds)
        self.journal = ClickJournal(runtime.platform.data_dir / FOLDER, fsync=settings.click_journal_fsync)
        self.hasher = IdentityHasher(identity_key(runtime.platform))
        # Set by the redirect after each click: the drain applies what came in since it last ran.
        self.wake = asyncio.Event()
        # Clicks journaled by this process: the drain sees from it whether redirects are coming in.
        self.journaled = 0
        # One drain at a time per process (the background task, a test, shutdown).
        self.drain_lock = asyncio.Lock()


_PATHS: WeakKeyDictionary[ServiceRuntime, ClickPath] = WeakKeyDictionary()


def click_path(runtime: ServiceRuntime) -> ClickPath:
    path = _PATHS.get(runtime)
    if path is None:
        path = _PATHS[runtime] = ClickPath(runtime)
    return path
