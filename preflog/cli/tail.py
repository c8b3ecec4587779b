"""``preflog tail``: records of a preflog topic, decoded, as JSON lines.

Sealed personal fields (privacy on) are opened with the keys of the privacy settings when they are given
(a value whose key was erased shows as ``[erased]``); without them, or when a value does not open, it
shows as ``[sealed]``, never as its ciphertext.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..errors import PreflogError
from ..schemas.tables import TOPIC_RECORDS
from .console import out, settings_of

__all__ = ["Opener", "shown", "tail"]

SEALED = "[sealed]"
ERASED = "[erased]"


class Opener:
    """Opens sealed values for display: with ``keyring``, or the keyring of ``settings`` when they give privacy keys.

    The settings' keyring is loaded at the first sealed value; without one every sealed value shows as ``[sealed]``.
    """

    def __init__(self, settings: Any = None, warn: Callable[[str], None] | None = None, keyring: Any = None) -> None:
        p = getattr(settings, "privacy", None)
        self.settings = (
            settings if p is not None and (p.master_key is not None or p.master_key_file is not None) else None
        )
        self.keyring: Any = keyring
        self.usable = keyring is not None or self.settings is not None
        self.warn = warn or (lambda _: None)
        self.warned = False

    def __call__(self, value: str) -> str:
        """``value`` (sealed) opened, ``[erased]``, or ``[sealed]`` when it cannot be opened."""
        from ..privacy.keyring import Keyring

        if not self.usable:
            return SEALED
        try:
            if self.keyring is None:
                self.keyring = Keyring.load(self.settings)
            opened = self.keyring.open(value)
        except (PreflogError, ValueError) as exc:  # a lost key, a master key not loaded, an altered value
            self.usable = self.keyring is not None  # no keyring: not tried again for every value
            if not self.warned:
                self.warned = True
                self.warn(f"sealed values are shown as {SEALED}: {exc}")
            return SEALED
        return ERASED if opened is None else str(opened)


def shown(value: Any, opener: Callable[[str], str]) -> Any:
    """``value`` (a decoded record) with every sealed text replaced by ``opener``'s text (maps' keys are not sealed)."""
    from ..privacy.envelope import sealed

    if isinstance(value, str):
        return opener(value) if sealed(value) else value
    if isinstance(value, dict):
        return {k: shown(v, opener) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shown(v, opener) for v in value]
    return value


def tail(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="Which topic: " + ", ".join(TOPIC_RECORDS))],
    limit: Annotated[int, typer.Option("--max", help="Stop after this many records (0 = follow).")] = 10,
    timeout: Annotated[float, typer.Option(help="Stop after this many idle seconds.")] = 5.0,
) -> None:
    """Print records of a preflog topic from the beginning, decoded, as JSON lines."""
    from ..kafka.reader import OFFSET_BEGINNING, RangeReader, Span
    from ..kafka.topics import partition_count
    from ..producers.files import json_default
    from .console import console

    if role not in TOPIC_RECORDS:
        raise typer.BadParameter(f"{role!r}; choose one of {', '.join(TOPIC_RECORDS)}", param_hint="ROLE")
    s = settings_of(ctx)
    topic = s.topics.all()[role]
    config = s.kafka.client_config()
    spans = [Span(topic, p, OFFSET_BEGINNING) for p in range(partition_count(config, topic))]
    codec = s.make_codec()
    opener = Opener(s, warn=lambda text: console.print(text, style="yellow", markup=False, highlight=False))
    count = 0
    # follow: no end; the reader stops after `timeout` idle seconds, this loop after `limit` records
    reader = RangeReader(
        config, "preflog-tail", spans, timeout=None, idle=timeout, on_idle="stop", strict=False, follow=True
    )
    with reader:
        for msg in reader.records():
            try:
                record: Any = codec.decode(msg.value() or b"", TOPIC_RECORDS[role], topic)
            except PreflogError as exc:
                record = {"undecodable": str(exc), "value_hex": (msg.value() or b"").hex()}
            line = json.dumps(shown(record, opener), default=json_default)
            out.print_json(line) if out.is_terminal else print(line)
            count += 1
            if limit and count >= limit:
                return
