"""Unpack Outlook's TNEF container (winmail.dat) into its body text and files.

Outlook sends rich-text mail as an ``application/ms-tnef`` part that other mail programs cannot
open; the request letter a data subject attached may sit inside it. The original part is kept
as it is, and what tnefparse can read is added beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tnefparse import TNEF

logger = logging.getLogger(__name__)

TNEF_CONTENT_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
"""Content types of a TNEF part; the file name winmail.dat marks one too."""


@dataclass
class TnefContent:
    """Contents of a TNEF part: the message body and the files, as (name, bytes) pairs."""

    body: str = ""
    files: list[tuple[str, bytes]] = field(default_factory=list)


def is_tnef(content_type: str, filename: str) -> bool:
    """Tell whether an attachment is a TNEF container."""
    return content_type.lower() in TNEF_CONTENT_TYPES or filename.lower() == "winmail.dat"


def unpack_tnef(data: bytes, defects: list[str]) -> TnefContent:
    """Read a TNEF container; a container that cannot be read adds a defect and yields nothing."""
    try:
        container = TNEF(data)
        files = [
            (item.long_filename() or item.name or "", item.data) for item in container.attachments
        ]
        body = container.body or b""
    except Exception as exc:  # noqa: BLE001 - tnefparse raises many kinds on malformed input
        defects.append(f"winmail.dat could not be decoded ({type(exc).__name__}); kept as it is")
        return TnefContent()

    if isinstance(body, bytes):
        body = body.rstrip(b"\x00").decode("cp1252", errors="replace")
    return TnefContent(body=body.strip(), files=[(name, bytes(raw)) for name, raw in files])
