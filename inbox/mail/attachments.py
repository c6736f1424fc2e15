"""Read the bytes of a stored attachment.

A file that arrived by mail is kept once, inside its raw mail: the blob row contains its hash and
size, and the bytes are decoded from the raw mail again when someone opens the file. Keeping a
second copy made the database write every attachment twice. A file with no raw mail, such as
one uploaded with a reply, keeps its bytes in the blob row, and so does a part the mail shows
inline (a cid: image), which every view of the ticket page loads.
"""

from __future__ import annotations

import logging

from inbox.errors import ParseError
from inbox.mail.parse import parse_message
from inbox.models.message import Attachment

logger = logging.getLogger(__name__)


def attachment_bytes(attachment: Attachment) -> bytes | None:
    """Return an attachment's bytes, or None when no stored copy contains them.

    None means the file was over the size limit or deleted (identity evidence), or that its
    raw mail no longer yields a file with the stored hash. The raw mail's download still
    contains every byte the mail had.
    """
    blob = attachment.blob
    if blob is None:
        return None
    if blob.data is not None:
        return blob.data
    raw_message = attachment.message.raw_message
    if raw_message is None:
        return None
    try:
        # No size limit here: the file was under the limit in force when it arrived.
        parts = parse_message(raw_message.raw).attachments
    except (LookupError, ParseError):
        parts = ()
    for part in parts:
        if part.sha256 == blob.sha256 and part.size == blob.size:
            return part.data
    logger.warning(
        "attachment %s: file with SHA-256 %s not found in raw message %s; download the raw mail",
        attachment.id,
        blob.sha256,
        raw_message.id,
    )
    return None
