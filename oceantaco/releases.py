"""Releases of a built dataset: staged under ``releases/<id>/``, made live by one write of ``CURRENT``.

A build writes everything new next to what readers use without replacing any of it: parts get new names
(their inputs digest is in the name), a FOLDER build's new days get new keys, and the release's catalog and
manifest go to ``releases/<id>/``. Only after the staged release is verified does one small ``CURRENT``
object name it (a single PUT or rename, so atomic on every backend). Old releases and the payloads they
reference are kept for ``keep`` releases, so a bad release can be rolled back by rewriting ``CURRENT``.

``releases/<id>/manifest.json`` describes a release completely: its layout, its catalog digest, and per part
(or, for FOLDER, per day) the sha256 of every tile, so an incremental build and ``oceantaco verify`` need
nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from oceantaco.storage import Storage

logger = logging.getLogger(__name__)

CURRENT_KEY = "CURRENT"
RELEASES_PREFIX = "releases"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Current:
    """The live release and the published ones still kept, newest first (``history[0] == release``)."""

    release: str
    history: tuple[str, ...]


def new_release_id() -> str:
    """Sortable UTC time with microseconds: later builds sort after earlier ones."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S_%fZ")


def release_key(release: str, key: str = "") -> str:
    return f"{RELEASES_PREFIX}/{release}/{key}".rstrip("/")


def read_current(output: Storage) -> Current | None:
    """The live release, or None for an output that has never been published."""
    if not output.exists(CURRENT_KEY):
        return None
    value = json.loads(output.read_bytes(CURRENT_KEY))
    return Current(release=value["release"], history=tuple(value["history"]))


def read_manifest(output: Storage, release: str) -> dict[str, Any]:
    return json.loads(output.read_bytes(release_key(release, MANIFEST_NAME)))


def write_manifest(output: Storage, release: str, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True)
    output.write_bytes(release_key(release, MANIFEST_NAME), text.encode())


def publish(output: Storage, release: str, previous: Current | None, keep: int) -> Current:
    """Make ``release`` live with one write of ``CURRENT``; it keeps the ``keep`` newest published ones."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 release, got {keep}")
    older = [r for r in (previous.history if previous else ()) if r != release]
    current = Current(release=release, history=(release, *older[: keep - 1]))
    value = {
        "release": current.release,
        "history": list(current.history),
        "manifest": release_key(release, MANIFEST_NAME),
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    output.write_bytes(CURRENT_KEY, json.dumps(value, indent=1).encode())
    logger.info("published release %s at %s", release, output.url)
    return current


def collect_garbage(output: Storage, current: Current, payload_keys: list[str]) -> list[str]:
    """Delete releases no longer kept and payload objects that no kept release references.

    ``payload_keys`` lists the layout's payload objects now in storage. Releases newer than the live one
    are left alone (a build in progress may be staging one); older unpublished ones (failed verifies) go.
    Returns the deleted payload keys.
    """
    kept = set(current.history)
    referenced: set[str] = set()
    for release in current.history:
        referenced |= set(read_manifest(output, release)["objects"])
    for release in output.list_dirs(RELEASES_PREFIX):
        if release not in kept and release < current.release:
            output.delete_tree(release_key(release))
            logger.info("deleted release %s", release)
    deleted = [key for key in payload_keys if key not in referenced]
    for key in deleted:
        output.delete(key)
    if deleted:
        logger.info("deleted %d object(s) no kept release references", len(deleted))
    return deleted
