"""Turn raw message bytes into a ParsedMail value: headers, bodies and attachments.

mail-parser does the MIME walk and the body decoding. When it raises, the standard library
`email` package (compat32 policy) takes over and the fallback is noted in `defects`.
Nothing here touches the database, the clock or Flask.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.policy
import email.utils
import hashlib
import logging
import mimetypes
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from types import MappingProxyType

import mailparser
from dateutil import parser as dateutil_parser

from inbox.errors import ParseError
from inbox.mail.sanitize import html_to_text
from inbox.mail.tnef import is_tnef, unpack_tnef

logger = logging.getLogger(__name__)

MAX_FILENAME_CHARS = 200
"""Maximum length of an attachment filename, extension included."""

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FILENAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_UTF8_BOM = b"\xef\xbb\xbf"
_MAILPARSER_LOGGERS = (
    "mailparser",
    "mailparser.core",
    "mailparser.utils",
    "mailparser.dates",
    "mailparser.addresses",
    "mailparser.received",
)


@dataclass(frozen=True)
class ParsedAttachment:
    """One attachment or inline part. `sha256` hashes `data`, which is empty when dropped.

    `size` is the number of bytes in `data` as decoded, so it stays right when a copy of the
    parse leaves the bytes out (the parse worker sends none back).
    """

    filename: str
    content_type: str
    data: bytes
    content_id: str | None
    sha256: str
    is_inline: bool
    size: int


def shown_inline(part: ParsedAttachment) -> bool:
    """Tell whether a part is an image or file the mail's HTML shows through a cid: link.

    The ticket page loads each such part as it renders, so its bytes are kept in the database
    rather than decoded from the raw mail on every view.
    """
    return part.is_inline and part.content_id is not None


@dataclass(frozen=True)
class ParsedMail:
    """The parts of a mail that the inbox uses, decoded and safe to store."""

    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_addr: str
    reply_to: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    text: str
    html: str | None
    attachments: tuple[ParsedAttachment, ...]
    headers: Mapping[str, str]
    defects: tuple[str, ...]


class _ThreadCapture(logging.Filter):
    """Logging filter that swallows mail-parser records in threads that asked for it."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop and count the record while this thread is inside mail-parser."""
        if not getattr(self.local, "active", False):
            return True
        self.local.dropped += 1
        return False


_MAILPARSER_LOG_FILTER = _ThreadCapture()


@contextmanager
def _silenced_mailparser() -> Iterator[_ThreadCapture]:
    """Silence mail-parser's loggers in this thread only.

    mail-parser 4.8 logs a warning for every text/rfc822-headers part of a bounce, and some
    of its messages quote header values, which must not reach our logs.
    """
    # addFilter ignores a filter that is already attached, so this is safe to repeat.
    for name in _MAILPARSER_LOGGERS:
        logging.getLogger(name).addFilter(_MAILPARSER_LOG_FILTER)
    _MAILPARSER_LOG_FILTER.local.active = True
    _MAILPARSER_LOG_FILTER.local.dropped = 0
    try:
        yield _MAILPARSER_LOG_FILTER
    finally:
        _MAILPARSER_LOG_FILTER.local.active = False


def decode_bytes(data: bytes, charset: str | None, defects: list[str], field: str) -> str:
    """Decode bytes with the declared charset, else UTF-8, else cp1252, and note any fallback."""
    label = (charset or "").strip().strip('"').lower()
    if label and label not in ("unknown-8bit", "x-unknown", "us-ascii", "ascii"):
        try:
            return data.decode(label)
        except LookupError:
            defects.append(f"{field}: unknown charset {label!r}, decoded as UTF-8 or cp1252")
        except UnicodeError:
            defects.append(f"{field}: bytes are not valid {label!r}, decoded as UTF-8 or cp1252")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if label not in ("", "us-ascii", "ascii") or not data.isascii():
        defects.append(f"{field}: not valid UTF-8, decoded as cp1252")
    # cp1252 leaves five byte values undefined, so "replace" keeps this last step from raising.
    return data.decode("cp1252", errors="replace")


def _raw_to_text(raw: str, defects: list[str], field: str) -> str:
    """Turn a compat32 header value, whose 8-bit bytes are surrogate escapes, into text."""
    if isinstance(raw, email.header.Header):
        raw = str(raw)
    unfolded = _FOLDING.sub("", raw)
    octets = unfolded.encode("utf-8", errors="surrogateescape")
    if octets.isascii():
        return unfolded
    return decode_bytes(octets, None, defects, field)


def _decode_encoded_word(kind: str, payload: str) -> bytes:
    """Return the bytes of one RFC 2047 encoded word, B or Q encoding."""
    if kind.upper() == "B":
        padded = payload + "=" * (-len(payload) % 4)
        return base64.b64decode(padded, validate=False)
    text = payload.replace("_", " ").encode("ascii", errors="replace")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text)


def decode_header_text(raw: str, defects: list[str], field: str) -> str:
    """Decode a header value: raw 8-bit bytes and RFC 2047 encoded words, never raising.

    Adjacent encoded words in the same charset are joined before decoding, because senders
    split a multi-byte character across two words.
    """
    text = _raw_to_text(raw, defects, field)
    chunks: list[tuple[str | None, str | bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        # RFC 2047 section 6.2: white space between two encoded words is not displayed.
        if between and not (between.isspace() and chunks and chunks[-1][0] is not None):
            chunks.append((None, between))
        charset = match.group(1).split("*", 1)[0].lower()
        try:
            octets = _decode_encoded_word(match.group(2), match.group(3))
        except (binascii.Error, ValueError):
            defects.append(f"{field}: invalid encoded word kept as text")
            chunks.append((None, match.group(0)))
        else:
            if chunks and chunks[-1][0] == charset:
                previous = chunks.pop()[1]
                assert isinstance(previous, bytes)
                octets = previous + octets
            chunks.append((charset, octets))
        position = match.end()
    chunks.append((None, text[position:]))

    parts = []
    for charset, value in chunks:
        if isinstance(value, bytes):
            parts.append(decode_bytes(value, charset, defects, field))
        else:
            parts.append(value)
    return _CONTROL_CHARS.sub(" ", "".join(parts).replace("\t", " ")).strip()


_PLAUSIBLE_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")
"""An address with a non-empty local part and domain; anything else is not a sender."""


def _first_raw(message: Message, name: str) -> str | None:
    """Return the first raw value of a header, or None when absent."""
    for key, value in message.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def _decode_headers(message: Message, defects: list[str]) -> dict[str, str]:
    """Map lowercased header names to the decoded value of their first occurrence."""
    headers: dict[str, str] = {}
    for key, value in message.raw_items():
        name = key.strip().lower()
        if name and name not in headers:
            headers[name] = decode_header_text(str(value), defects, f"header {name}")
    return headers


def _addresses(message: Message, name: str, defects: list[str]) -> list[tuple[str, str]]:
    """Return (display name, lowercased address) pairs of an address header."""
    raw = _first_raw(message, name)
    if raw is None:
        return []
    text = _raw_to_text(raw, defects, f"header {name}")
    pairs = []
    for display, address in email.utils.getaddresses([text]):
        address = _CONTROL_CHARS.sub("", address).strip().lower()
        if not _PLAUSIBLE_ADDRESS.fullmatch(address):
            if address:
                defects.append(f"header {name}: {address!r} is not an e-mail address, ignored")
            continue
        if address:
            pairs.append((decode_header_text(display, defects, f"header {name}"), address))
    return pairs


def _message_ids(value: str | None) -> tuple[str, ...]:
    """Return the message ids in a header, without angle brackets."""
    if not value:
        return ()
    found = _MESSAGE_ID.findall(value)
    if found:
        return tuple(found)
    return tuple(token.strip("<>") for token in value.split() if token.strip("<>"))


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    """Parse the Date header to an aware datetime (UTC when it has no zone), or None."""
    if not value:
        defects.append("missing Date header")
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = dateutil_parser.parse(value, fuzzy=False)
        except (ValueError, OverflowError, TypeError):
            defects.append("unparseable Date header")
            return None
        defects.append("Date header is not in RFC 5322 form")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def safe_filename(name: str | None, index: int, content_type: str) -> str:
    """Return a filename without directories or control characters, never empty."""
    cleaned = _FILENAME_UNSAFE.sub("", name or "")
    segments = [s for s in re.split(r"[/\\]", cleaned) if s.strip(" .")]
    cleaned = segments[-1].strip().lstrip(".") if segments else ""
    if not cleaned:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        return f"attachment-{index}{extension}"
    if len(cleaned) > MAX_FILENAME_CHARS:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and len(extension) < 16:
            cleaned = stem[: MAX_FILENAME_CHARS - len(extension) - 1] + "." + extension
        else:
            cleaned = cleaned[:MAX_FILENAME_CHARS]
    return cleaned


def _part_bytes(part: Message) -> bytes:
    """Return the decoded payload of a part, or a container part flattened back to bytes."""
    if part.is_multipart():
        chunks = []
        for child in part.get_payload():
            if not isinstance(child, Message):
                continue
            try:
                chunks.append(child.as_bytes())
            except (UnicodeError, LookupError):
                chunks.append(child.as_string().encode("utf-8", errors="surrogateescape"))
        return b"".join(chunks)
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _is_body(part: Message) -> bool:
    """Tell whether a leaf part is a text body rather than an attachment."""
    if part.get_content_type() not in ("text/plain", "text/html"):
        return False
    return part.get_filename() is None and part.get_content_disposition() != "attachment"


def _is_kept_whole(part: Message) -> bool:
    """Tell whether a container part is an attachment of its own, not walked into."""
    content_type = part.get_content_type()
    if content_type == "message/delivery-status":
        return True
    if not content_type.startswith("message/"):
        return False
    return part.get_content_disposition() == "attachment" or part.get_filename() is not None


def _leaf_parts(part: Message) -> Iterator[Message]:
    """Yield the leaves of the MIME tree and the containers that are kept whole."""
    if not part.is_multipart() or _is_kept_whole(part):
        yield part
        return
    for child in part.get_payload():
        if isinstance(child, Message):
            yield from _leaf_parts(child)


def _make_attachment(
    part: Message, index: int, max_bytes: int | None, defects: list[str]
) -> ParsedAttachment:
    """Decode one attachment part, dropping its data when it is over the size limit."""
    content_type = part.get_content_type()
    raw_name = part.get_filename()
    name = None
    if raw_name:
        # Control characters go before decoding, so a newline leaves no space in the name.
        raw_name = _FILENAME_UNSAFE.sub("", raw_name)
        name = decode_header_text(raw_name, defects, f"attachment {index} filename")
    filename = safe_filename(name, index, content_type)
    data = _part_bytes(part)

    if max_bytes is not None and len(data) > max_bytes:
        defects.append(
            f"attachment {index} not kept: {len(data)} bytes is over the limit of {max_bytes} bytes"
        )
        data = b""

    content_id = (part.get("Content-ID") or "").strip().strip("<>").strip() or None
    disposition = part.get_content_disposition()
    is_inline = disposition == "inline" or (content_id is not None and disposition is None)
    return ParsedAttachment(
        filename=filename,
        content_type=content_type,
        data=data,
        content_id=content_id,
        sha256=hashlib.sha256(data).hexdigest(),
        is_inline=is_inline,
        size=len(data),
    )


def _note_base64_defects(part: Message, defects: list[str]) -> None:
    """Note invalid base64 in a part. compat32 records it only once the payload is decoded."""
    for defect in part.defects:
        if "Base64" in type(defect).__name__:
            defects.append(f"{part.get_content_type()} part: {type(defect).__name__}")


def _walk(
    message: Message, max_bytes: int | None, defects: list[str], *, decode_bodies: bool
) -> tuple[list[str], list[str], list[ParsedAttachment]]:
    """Split a message into plain bodies, HTML bodies and attachments.

    Body parts are decoded only with `decode_bodies`, because mail-parser has done it already.
    """
    plain: list[str] = []
    html: list[str] = []
    attachments: list[ParsedAttachment] = []
    for part in _leaf_parts(message):
        if not part.is_multipart() and part.get_content_maintype() == "multipart":
            # A multipart whose boundary is missing or never found has no parts. Its content is the
            # sender's text with boundary lines in it, which is more useful shown than hidden.
            payload = part.get_payload(decode=True)
            payload = payload if isinstance(payload, bytes) else b""
            plain.append(decode_bytes(payload, part.get_content_charset(), defects, "body"))
            defects.append(f"{part.get_content_type()} part has no usable boundary; shown as text")
            continue
        if not part.is_multipart() and _is_body(part):
            if decode_bodies:
                payload = part.get_payload(decode=True)
                payload = payload if isinstance(payload, bytes) else b""
                text = decode_bytes(payload, part.get_content_charset(), defects, "body")
                (html if part.get_content_subtype() == "html" else plain).append(text)
            _note_base64_defects(part, defects)
            continue
        attachments.append(_make_attachment(part, len(attachments) + 1, max_bytes, defects))
        _note_base64_defects(part, defects)
    return plain, html, attachments


def _expand_tnef(
    attachments: list[ParsedAttachment], max_bytes: int | None, defects: list[str]
) -> str:
    """Add the files inside each winmail.dat after it, keeping the original; return its body."""
    bodies = []
    for attachment in list(attachments):
        if not is_tnef(attachment.content_type, attachment.filename) or not attachment.data:
            continue
        content = unpack_tnef(attachment.data, defects)
        if content.body:
            bodies.append(content.body)
        for name, data in content.files:
            index = len(attachments) + 1
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if max_bytes is not None and len(data) > max_bytes:
                defects.append(
                    f"attachment {index} not kept: {len(data)} bytes is over the limit of "
                    f"{max_bytes} bytes"
                )
                data = b""
            attachments.append(
                ParsedAttachment(
                    filename=safe_filename(_FILENAME_UNSAFE.sub("", name), index, content_type),
                    content_type=content_type,
                    data=data,
                    content_id=None,
                    sha256=hashlib.sha256(data).hexdigest(),
                    is_inline=False,
                    size=len(data),
                )
            )
    return "\n\n".join(bodies)


def _flatten_defects(report: list[dict[str, list[str]]]) -> list[str]:
    """Turn mail-parser's defect report into one line per defect."""
    lines = []
    for entry in report:
        for where, notes in entry.items():
            for note in notes:
                lines.append(f"mail-parser: {where}: {' '.join(str(note).split())}")
    return lines


def _parse_with_mailparser(raw: bytes, defects: list[str]) -> tuple[Message, list[str], list[str]]:
    """Parse with mail-parser and return the message tree with its plain and HTML bodies."""
    with _silenced_mailparser() as capture:
        parsed = mailparser.parse_from_bytes(raw)
        plain = list(parsed.text_plain)
        html = list(parsed.text_html)
        report = parsed.defects
    if capture.local.dropped:
        logger.debug("mail-parser emitted %s log records, silenced", capture.local.dropped)
    defects.extend(_flatten_defects(report))
    return parsed.message, plain, html


def _parse_with_stdlib(raw: bytes, defects: list[str]) -> tuple[Message, list[str], list[str]]:
    """Parse with the standard library alone, so the bodies come from our own MIME walk."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    for defect in message.defects:
        defects.append(f"email: {type(defect).__name__}")
    return message, [], []


def _normalise_newlines(value: str) -> str:
    """Turn CRLF and lone CR line endings into LF."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _strip_nul(value: str, defects: list[str], field: str) -> str:
    """Remove NUL characters, which PostgreSQL text columns reject."""
    if "\x00" not in value:
        return value
    defects.append(f"{field}: removed {value.count(chr(0))} NUL characters")
    return value.replace("\x00", "")


def parse_message(raw: bytes, *, max_attachment_bytes: int | None = None) -> ParsedMail:
    """Parse raw message bytes into a ParsedMail.

    :param max_attachment_bytes: attachments larger than this keep no data, and a defect
        notes the size.
    :raises ParseError: when the input is empty or neither parser can read it.
    """
    if not raw or not raw.strip():
        raise ParseError("raw message is empty: there are no headers and no body to parse")

    defects: list[str] = []
    if raw.startswith(_UTF8_BOM):
        # Some editors put one before a saved mail, where it would hide the first header.
        raw = raw[len(_UTF8_BOM) :]
        defects.append("byte-order mark before the headers ignored")
    from_stdlib = False
    try:
        message, plain, html = _parse_with_mailparser(raw, defects)
    except Exception as exc:  # noqa: BLE001 - any mail-parser fault falls back to the stdlib.
        defects.append(f"mail-parser failed ({type(exc).__name__}), parsed with the email package")
        from_stdlib = True
        try:
            message, plain, html = _parse_with_stdlib(raw, defects)
        except (RecursionError, ValueError, LookupError, UnicodeError) as stdlib_exc:
            raise ParseError(
                f"mail-parser raised {type(exc).__name__} and the email package raised "
                f"{type(stdlib_exc).__name__}; keep the raw message for manual review"
            ) from stdlib_exc

    try:
        return _build(message, plain, html, max_attachment_bytes, defects, from_stdlib)
    except RecursionError as exc:
        raise ParseError("MIME structure is nested too deeply to walk") from exc


def _build(
    message: Message,
    plain: list[str],
    html: list[str],
    max_bytes: int | None,
    defects: list[str],
    from_stdlib: bool,
) -> ParsedMail:
    """Assemble a ParsedMail from a message tree and the bodies mail-parser decoded.

    With `from_stdlib` the bodies are decoded here, because mail-parser failed.
    """
    headers = _decode_headers(message, defects)
    walked_plain, walked_html, attachments = _walk(
        message, max_bytes, defects, decode_bodies=from_stdlib
    )
    if from_stdlib or (not any(p.strip() for p in plain) and not html):
        plain, html = walked_plain, walked_html or html
    tnef_body = _expand_tnef(attachments, max_bytes, defects)
    if tnef_body and not any(p.strip() for p in plain):
        plain = [*plain, tnef_body]

    html_body = _strip_nul(_normalise_newlines("\n".join(html)), defects, "HTML body") or None
    text = _normalise_newlines("\n\n".join(plain))
    if not text.strip() and html_body:
        text = html_to_text(html_body)
    text = _strip_nul(text, defects, "text body").rstrip()

    senders = _addresses(message, "from", defects)
    if not senders:
        defects.append("missing or empty From header")
    from_name, from_addr = senders[0] if senders else ("", "")
    reply_to = _addresses(message, "reply-to", defects)
    message_id = _message_ids(headers.get("message-id"))
    if not message_id:
        defects.append("missing Message-ID header")

    return ParsedMail(
        message_id=message_id[0] if message_id else None,
        in_reply_to=_message_ids(headers.get("in-reply-to")),
        references=_message_ids(headers.get("references")),
        subject=headers.get("subject", ""),
        from_name=from_name,
        from_addr=from_addr,
        reply_to=reply_to[0][1] if reply_to else "",
        to=tuple(address for _, address in _addresses(message, "to", defects)),
        cc=tuple(address for _, address in _addresses(message, "cc", defects)),
        date=_parse_date(headers.get("date"), defects),
        text=text,
        html=html_body,
        attachments=tuple(attachments),
        headers=MappingProxyType(headers),
        defects=tuple(dict.fromkeys(defects)),
    )
