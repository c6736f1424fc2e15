"""Compute the legal deadlines of tickets: pure functions, no database and no clock reading.

Callers pass the receipt time, the policy and, for ``time_left``, the current time.
Every datetime that goes in must be timezone-aware, and every datetime that comes out is
aware and expressed in ``SlaPolicy.timezone``.

Rule sources:

- GDPR (Regulation (EU) 2016/679) Art. 12(3): the controller informs the data subject of the
  action taken on a request within one month of receipt, and may extend that period by two
  further months.
- GDPR Art. 33(1): a personal-data breach is notified to the supervisory authority within
  72 hours after the controller became aware of it.
- Regulation (EEC, Euratom) No 1182/71 on periods, dates and time limits: a period in months
  ends on the same date of the last month, or on the last day of that month when that date
  does not exist (Art. 3(2)(c)), and a period that would end on a public holiday, Saturday or
  Sunday ends at the end of the following working day (Art. 3(4)). The EDPB month rule for
  Art. 12(3) follows this regulation.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.relativedelta import relativedelta

from inbox.enums import RequestType
from inbox.errors import SlaError

logger = logging.getLogger(__name__)

ACCEPTED_TIME_FORM = "ISO 8601 with a UTC offset, e.g. 2025-01-31T10:00:00+01:00"
"""Accepted form of a receipt time, quoted in error messages."""

MAX_BREACH_HOURS = 72
"""Upper bound of ``SlaPolicy.breach_hours``, because GDPR Art. 33(1) allows 72 hours."""

MAX_EXTENSION_MONTHS = 2
"""Upper bound of ``SlaPolicy.extension_months``, because GDPR Art. 12(3) allows two months."""

MAX_REQUEST_DAYS = 31
"""Upper bound of ``SlaPolicy.request_days``, because no month is longer than 31 days."""

_SATURDAY = 5
"""``date.weekday()`` value of Saturday. Sunday is 6."""


@dataclass(frozen=True)
class SlaPolicy:
    """Settings of the legal clocks, validated when the policy is created."""

    timezone: str = "Europe/Amsterdam"
    holiday_country: str = "NL"
    month_rule: bool = True
    request_days: int = 30
    breach_hours: int = 72
    extension_months: int = 2

    def __post_init__(self) -> None:
        """Validate every field and raise SlaError naming the first invalid one."""
        _validate_timezone(self.timezone)
        _validate_holiday_country(self.holiday_country)
        if not isinstance(self.month_rule, bool):
            raise SlaError(
                f"Invalid SLA setting month_rule={self.month_rule!r}: expected True or False."
            )
        _validate_int_range("request_days", self.request_days, 1, MAX_REQUEST_DAYS)
        _validate_int_range("breach_hours", self.breach_hours, 1, MAX_BREACH_HOURS)
        _validate_int_range("extension_months", self.extension_months, 0, MAX_EXTENSION_MONTHS)


def _validate_timezone(name: object) -> None:
    if not isinstance(name, str):
        raise SlaError(f"Invalid SLA setting timezone={name!r}: expected an IANA time zone name.")
    try:
        ZoneInfo(name)
    # ZoneInfo raises ValueError, not ZoneInfoNotFoundError, for keys that are not plain
    # relative paths, such as "" or "../x".
    except (ZoneInfoNotFoundError, ValueError):
        raise SlaError(
            f"Unknown time zone in SLA setting timezone={name!r}: expected an IANA time zone "
            "name such as Europe/Amsterdam or UTC."
        ) from None


def _validate_holiday_country(code: object) -> None:
    if code == "":
        return
    if isinstance(code, str) and code in holidays.list_supported_countries():
        return
    raise SlaError(
        f"Unknown holiday country in SLA setting holiday_country={code!r}: expected an "
        "upper-case ISO 3166-1 alpha-2 code that the holidays package supports, such as NL, "
        "BE or DE, or an empty string to count only weekends."
    )


def _validate_int_range(field: str, value: object, minimum: int, maximum: int) -> None:
    # bool is a subclass of int, but True as a number of days is a configuration mistake.
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return
    raise SlaError(
        f"Invalid SLA setting {field}={value!r}: expected a whole number from {minimum} "
        f"to {maximum}."
    )


@functools.lru_cache(maxsize=64)
def _holiday_dates(country: str, year: int) -> frozenset[date]:
    """Build the public holidays of one country and year, cached because building is slow."""
    # A frozenset keeps the cached value immutable. A holidays calendar object would add
    # years to itself when asked about a date outside the years it was built for.
    return frozenset(holidays.country_holidays(country, years=year))


def is_working_day(day: date, policy: SlaPolicy) -> bool:
    """Return whether ``day`` is neither a weekend day nor a public holiday of the policy."""
    if day.weekday() >= _SATURDAY:
        return False
    if not policy.holiday_country:
        return True
    return day not in _holiday_dates(policy.holiday_country, day.year)


def next_working_day(day: date, policy: SlaPolicy) -> date:
    """Return ``day`` itself when it is a working day, else the first working day after it."""
    # NOTE: the holiday list is the holidays package's, which may differ from national law
    # on periods. For NL it counts Liberation Day (5 May) only every fifth year.
    moved = day
    while not is_working_day(moved, policy):
        moved += timedelta(days=1)
    if moved != day:
        logger.debug(
            "Moved due date from %s to %s: weekend or public holiday in %r",
            day,
            moved,
            policy.holiday_country,
        )
    return moved


def _require_aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise SlaError(
            f"Invalid {name} {value!r}: expected a timezone-aware datetime, such as "
            f"{ACCEPTED_TIME_FORM}."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise SlaError(
            f"Invalid {name} {value.isoformat()}: the datetime has no time zone. Expected a "
            f"timezone-aware datetime, written as {ACCEPTED_TIME_FORM}."
        )
    return value


def _to_request_type(request_type: RequestType | str) -> RequestType:
    if isinstance(request_type, RequestType):
        return request_type
    try:
        return RequestType(request_type)
    except ValueError:
        accepted = ", ".join(member.value for member in RequestType)
        raise SlaError(
            f"Unknown request type {request_type!r}: expected one of {accepted}."
        ) from None


def _end_of_due_day(received_at: datetime, months: int, days: int, policy: SlaPolicy) -> datetime:
    """Compute the end of the working day that closes a period of months and days."""
    zone = ZoneInfo(policy.timezone)
    try:
        # The period starts on the local date of receipt, so a mail received at 00:30 local
        # time counts for that date even when the UTC date is the day before.
        received_on = received_at.astimezone(zone).date()

        # relativedelta clamps to the last day of the month when the same day does not
        # exist, as Regulation 1182/71 Art. 3(2)(c) requires (31 January -> 28 February).
        due_on = next_working_day(received_on + relativedelta(months=months, days=days), policy)

        # The due moment is one second before the next local day starts. Counting back from
        # midnight in UTC stays right in a zone where a clock change makes 23:59:59 occur
        # twice (it picks the later one) or where midnight itself is skipped.
        next_day_start = datetime.combine(due_on + timedelta(days=1), time(0), tzinfo=zone)
        return (next_day_start.astimezone(UTC) - timedelta(seconds=1)).astimezone(zone)
    except (OverflowError, ValueError):
        raise _out_of_range_error(received_at) from None


def _out_of_range_error(received_at: datetime) -> SlaError:
    return SlaError(
        f"Invalid receipt time {received_at.isoformat()}: the deadline falls outside the "
        "calendar range that Python supports (years 1 to 9999)."
    )


def compute_due_at(
    request_type: RequestType | str, received_at: datetime, policy: SlaPolicy
) -> datetime | None:
    """Compute when a ticket of ``request_type`` received at ``received_at`` is due.

    Data-subject requests are due at the end of the working day one month after receipt
    (GDPR Art. 12(3)), or ``policy.request_days`` calendar days after receipt when
    ``policy.month_rule`` is False. Breaches are due ``policy.breach_hours`` elapsed hours
    after receipt (Art. 33(1)). Type ``other`` has no legal clock and returns None.

    :raises SlaError: if the type is unknown or ``received_at`` is not timezone-aware.
    """
    kind = _to_request_type(request_type)
    received_at = _require_aware(received_at, "receipt time")

    if kind is RequestType.BREACH:
        return _add_elapsed_hours(received_at, policy.breach_hours, policy)
    if not kind.is_data_subject_request:
        return None
    if policy.month_rule:
        return _end_of_due_day(received_at, 1, 0, policy)
    return _end_of_due_day(received_at, 0, policy.request_days, policy)


def _add_elapsed_hours(received_at: datetime, hours: int, policy: SlaPolicy) -> datetime:
    # Adding hours in UTC counts real elapsed time. Across a daylight-saving change the local
    # wall clock then reads one hour more or less than the period.
    try:
        due_utc = received_at.astimezone(UTC) + timedelta(hours=hours)
    except OverflowError:
        raise _out_of_range_error(received_at) from None
    return due_utc.astimezone(ZoneInfo(policy.timezone))


def compute_extended_due_at(received_at: datetime, policy: SlaPolicy) -> datetime:
    """Compute the due moment of a data-subject request after the Art. 12(3) extension.

    The period is 1 + ``policy.extension_months`` months from receipt, ending at the end of
    a working day like the one-month period.

    :raises SlaError: if ``received_at`` is not timezone-aware.
    """
    # NOTE: the month rule applies even when policy.month_rule is False, because Art. 12(3)
    # counts the extension in months.
    received_at = _require_aware(received_at, "receipt time")
    return _end_of_due_day(received_at, 1 + policy.extension_months, 0, policy)


def parse_received(value: str) -> datetime:
    """Parse a receipt time given on the command line into an aware datetime.

    :raises SlaError: if ``value`` is not ISO 8601 or has no UTC offset.
    """
    if not isinstance(value, str):
        raise SlaError(f"Invalid receipt time {value!r}: expected {ACCEPTED_TIME_FORM}.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SlaError(f"Invalid receipt time {value!r}: expected {ACCEPTED_TIME_FORM}.") from None
    if parsed.utcoffset() is None:
        raise SlaError(
            f"Invalid receipt time {value!r}: the UTC offset is missing. Expected "
            f"{ACCEPTED_TIME_FORM}."
        )
    return parsed


def time_left(due_at: datetime | None, now: datetime) -> timedelta | None:
    """Return the time from ``now`` until ``due_at``, negative when overdue, None without a clock.

    :raises SlaError: if ``due_at`` or ``now`` is not timezone-aware.
    """
    now = _require_aware(now, "current time")
    if due_at is None:
        return None
    due_at = _require_aware(due_at, "due time")

    # Python subtracts two datetimes that share a tzinfo by wall clock, which is an hour off
    # across a daylight-saving change, so both are converted to UTC first.
    return due_at.astimezone(UTC) - now.astimezone(UTC)
