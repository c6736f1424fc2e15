"""Table tests for the deadline arithmetic in inbox.sla.

Every expected date below was worked out by hand and its weekday checked with Python's
datetime module. The Dutch holidays were looked up in the holidays package (version 0.109).
In 2025 they include Easter Monday 21 April, Ascension Day 29 May, Whit Monday 9 June and
Christmas on 25 and 26 December. In 2026 they include Easter Monday 6 April, King's Day
27 April, Ascension Day 14 May and Whit Monday 25 May. In 2026, daylight-saving time in
Europe/Amsterdam starts on Sunday 29 March and ends on Sunday 25 October.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from inbox import sla
from inbox.enums import RequestType
from inbox.errors import SlaError
from inbox.sla import (
    SlaPolicy,
    compute_due_at,
    compute_extended_due_at,
    parse_received,
    time_left,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NL_POLICY = SlaPolicy()

DATA_SUBJECT_TYPES = [
    RequestType.ACCESS,
    RequestType.ERASURE,
    RequestType.RECTIFICATION,
    RequestType.OBJECTION,
    RequestType.RESTRICTION,
    RequestType.PORTABILITY,
    RequestType.AUTOMATED_DECISION,
    RequestType.CONSENT_WITHDRAWAL,
]


def at_ten(day: str) -> datetime:
    """Build 10:00 Amsterdam time on an ISO date, the receipt time of most cases."""
    return datetime.fromisoformat(f"{day}T10:00:00").replace(tzinfo=AMSTERDAM)


def end_of(day: str, zone: ZoneInfo = AMSTERDAM) -> datetime:
    """Build 23:59:59 local time on an ISO date, the due moment of a month-rule deadline."""
    return datetime.fromisoformat(f"{day}T23:59:59").replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # 31 January has no counterpart in February, so the period ends on the last day.
        ("2025-01-31", "2025-02-28"),  # Friday
        ("2024-01-31", "2024-02-29"),  # leap year, Thursday
        ("2026-01-31", "2026-03-02"),  # 28 February 2026 is a Saturday
        # Plain same-day-next-month cases.
        ("2025-03-03", "2025-04-03"),  # Thursday
        ("2025-08-14", "2025-09-15"),  # 14 September 2025 is a Sunday
        ("2025-10-31", "2025-12-01"),  # 30 November 2025 is a Sunday
        # Dutch public holidays on the due day.
        ("2026-03-27", "2026-04-28"),  # King's Day, Monday 27 April 2026
        ("2025-11-25", "2025-12-29"),  # Christmas Thu 25, Boxing Day Fri 26, then a weekend
        ("2025-03-21", "2025-04-22"),  # Easter Monday 2025
        ("2026-03-06", "2026-04-07"),  # Easter Monday 2026
        ("2025-04-29", "2025-05-30"),  # Ascension Day 2025
        ("2026-04-14", "2026-05-15"),  # Ascension Day 2026
        ("2025-05-09", "2025-06-10"),  # Whit Monday 2025
        ("2026-04-25", "2026-05-26"),  # Whit Monday 2026
        # The period crosses a year end.
        ("2025-12-01", "2026-01-02"),  # New Year's Day, Thursday 1 January 2026
    ],
)
def test_compute_due_at_month_rule_table(received: str, due: str) -> None:
    assert compute_due_at(RequestType.ACCESS, at_ten(received), NL_POLICY) == end_of(due)


@pytest.mark.parametrize("request_type", DATA_SUBJECT_TYPES)
def test_compute_due_at_every_data_subject_type(request_type: RequestType) -> None:
    assert compute_due_at(request_type, at_ten("2025-01-31"), NL_POLICY) == end_of("2025-02-28")


@pytest.mark.parametrize("request_type", [member.value for member in DATA_SUBJECT_TYPES])
def test_compute_due_at_accepts_type_string(request_type: str) -> None:
    assert compute_due_at(request_type, at_ten("2026-03-27"), NL_POLICY) == end_of("2026-04-28")


def test_compute_due_at_end_of_day_fields() -> None:
    due = compute_due_at(RequestType.ERASURE, at_ten("2025-01-31"), NL_POLICY)

    assert due is not None
    assert due.tzinfo is AMSTERDAM
    assert (due.hour, due.minute, due.second, due.microsecond) == (23, 59, 59, 0)
    assert due.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("received_utc", "due"),
    [
        # 00:30 CET on 1 March is 23:30 UTC on 28 February: the local date counts.
        ("2025-02-28T23:30:00+00:00", "2025-04-01"),
        # 00:30 CEST on 1 July is 22:30 UTC on 30 June.
        ("2025-06-30T22:30:00+00:00", "2025-08-01"),
        # 23:30 CET on 31 January is 22:30 UTC on the same day.
        ("2025-01-31T22:30:00+00:00", "2025-02-28"),
    ],
)
def test_compute_due_at_uses_local_receipt_date(received_utc: str, due: str) -> None:
    received = datetime.fromisoformat(received_utc)

    assert compute_due_at(RequestType.ACCESS, received, NL_POLICY) == end_of(due)


def test_compute_due_at_weekends_only_policy() -> None:
    # Without a holiday country, King's Day 2026 (a Monday) is an ordinary working day.
    policy = SlaPolicy(holiday_country="")

    assert compute_due_at(RequestType.ACCESS, at_ten("2026-03-27"), policy) == end_of("2026-04-27")


def test_compute_due_at_other_country_and_zone() -> None:
    # Independence Day, Friday 4 July 2025, moves the deadline to Monday 7 July.
    new_york = ZoneInfo("America/New_York")
    policy = SlaPolicy(timezone="America/New_York", holiday_country="US")
    received = datetime(2025, 6, 4, 9, 0, tzinfo=new_york)

    due = compute_due_at(RequestType.ACCESS, received, policy)

    assert due == end_of("2025-07-07", new_york)
    assert due is not None
    assert due.utcoffset() == timedelta(hours=-4)


@pytest.mark.parametrize(
    ("received", "request_days", "due"),
    [
        ("2025-01-31", 30, "2025-03-03"),  # day 30 is Sunday 2 March 2025
        ("2025-03-01", 30, "2025-03-31"),  # Monday
        ("2026-03-28", 30, "2026-04-28"),  # day 30 is King's Day 2026
        ("2025-11-25", 30, "2025-12-29"),  # day 30 is Christmas Day 2025
        ("2025-03-03", 28, "2025-03-31"),  # a shorter internal target
    ],
)
def test_compute_due_at_day_count_setting(received: str, request_days: int, due: str) -> None:
    policy = SlaPolicy(month_rule=False, request_days=request_days)

    assert compute_due_at(RequestType.ACCESS, at_ten(received), policy) == end_of(due)


@pytest.mark.parametrize(
    ("received", "due", "wall_clock_hours"),
    [
        # No clock change in the period.
        (
            datetime(2026, 6, 1, 10, 0, tzinfo=AMSTERDAM),
            datetime(2026, 6, 4, 10, 0, tzinfo=AMSTERDAM),
            72,
        ),
        # Summer time starts on Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST.
        (
            datetime(2026, 3, 27, 10, 0, tzinfo=AMSTERDAM),
            datetime(2026, 3, 30, 11, 0, tzinfo=AMSTERDAM),
            73,
        ),
        # Summer time ends on Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET.
        (
            datetime(2026, 10, 23, 10, 0, tzinfo=AMSTERDAM),
            datetime(2026, 10, 26, 9, 0, tzinfo=AMSTERDAM),
            71,
        ),
    ],
)
def test_compute_due_at_breach_elapsed_hours(
    received: datetime, due: datetime, wall_clock_hours: int
) -> None:
    result = compute_due_at(RequestType.BREACH, received, NL_POLICY)

    assert result == due
    assert result is not None
    # Python subtracts two datetimes that share a tzinfo by wall clock, so compare in UTC.
    assert result.astimezone(UTC) - received.astimezone(UTC) == timedelta(hours=72)
    assert result.replace(tzinfo=None) - received.replace(tzinfo=None) == timedelta(
        hours=wall_clock_hours
    )
    assert result.tzinfo is AMSTERDAM


def test_compute_due_at_breach_from_utc_input() -> None:
    # 08:00 UTC on 23 October 2026 is 10:00 CEST, and 72 hours later it is 09:00 CET.
    received = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)

    due = compute_due_at("breach", received, NL_POLICY)

    assert due == datetime(2026, 10, 26, 9, 0, tzinfo=AMSTERDAM)
    assert due is not None
    assert due.tzinfo is AMSTERDAM


def test_compute_due_at_breach_hours_setting() -> None:
    # A breach on a Saturday is due in elapsed hours: weekends and holidays do not count.
    policy = SlaPolicy(breach_hours=48)
    received = datetime(2025, 12, 20, 15, 0, tzinfo=AMSTERDAM)

    assert compute_due_at(RequestType.BREACH, received, policy) == datetime(
        2025, 12, 22, 15, 0, tzinfo=AMSTERDAM
    )


@pytest.mark.parametrize("request_type", [RequestType.OTHER, "other"])
def test_compute_due_at_other_is_none(request_type: RequestType | str) -> None:
    assert compute_due_at(request_type, at_ten("2025-01-31"), NL_POLICY) is None


def test_compute_due_at_naive_datetime_raises() -> None:
    with pytest.raises(SlaError) as excinfo:
        compute_due_at(RequestType.ACCESS, datetime(2025, 1, 31, 10, 0), NL_POLICY)

    assert "no time zone" in str(excinfo.value)
    assert "2025-01-31T10:00:00+01:00" in str(excinfo.value)


def test_compute_due_at_plain_date_raises() -> None:
    with pytest.raises(SlaError, match="timezone-aware datetime"):
        compute_due_at(RequestType.ACCESS, date(2025, 1, 31), NL_POLICY)  # type: ignore[arg-type]


def test_compute_due_at_unknown_type_raises() -> None:
    with pytest.raises(SlaError) as excinfo:
        compute_due_at("complaint", at_ten("2025-01-31"), NL_POLICY)

    assert "'complaint'" in str(excinfo.value)
    assert "access" in str(excinfo.value)
    assert "consent_withdrawal" in str(excinfo.value)


def test_compute_due_at_out_of_range_raises() -> None:
    received = datetime(9999, 12, 15, 10, 0, tzinfo=UTC)

    with pytest.raises(SlaError, match="years 1 to 9999"):
        compute_due_at(RequestType.ACCESS, received, NL_POLICY)


@pytest.mark.parametrize(
    ("received", "extension_months", "due"),
    [
        ("2025-01-31", 2, "2025-04-30"),  # Wednesday
        ("2025-11-30", 2, "2026-03-02"),  # 28 February 2026 is a Saturday
        ("2026-01-27", 2, "2026-04-28"),  # King's Day 2026
        ("2026-03-27", 2, "2026-06-29"),  # 27 June 2026 is a Saturday
        ("2025-01-31", 1, "2025-03-31"),  # Monday
        ("2026-03-27", 0, "2026-04-28"),  # no extension: the one-month deadline
    ],
)
def test_compute_extended_due_at_table(received: str, extension_months: int, due: str) -> None:
    policy = SlaPolicy(extension_months=extension_months)

    assert compute_extended_due_at(at_ten(received), policy) == end_of(due)


def test_compute_extended_due_at_ignores_day_count() -> None:
    # Art. 12(3) counts the extension in months, so the month rule applies here too.
    policy = SlaPolicy(month_rule=False, request_days=30)

    assert compute_extended_due_at(at_ten("2025-01-31"), policy) == end_of("2025-04-30")


def test_compute_extended_due_at_naive_raises() -> None:
    with pytest.raises(SlaError, match="no time zone"):
        compute_extended_due_at(datetime(2025, 1, 31, 10, 0), NL_POLICY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Europe/Amsterdamm"),
        ("timezone", ""),
        ("timezone", "../etc/passwd"),
        ("holiday_country", "XX"),
        ("holiday_country", "nl"),
        ("month_rule", "yes"),
        ("request_days", 0),
        ("request_days", 32),
        ("request_days", True),
        ("breach_hours", 73),
        ("breach_hours", "72"),
        ("extension_months", 3),
        ("extension_months", -1),
    ],
)
def test_sla_policy_invalid_field_raises(field: str, value: object) -> None:
    with pytest.raises(SlaError) as excinfo:
        SlaPolicy(**{field: value})  # type: ignore[arg-type]

    assert field in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


def test_sla_policy_unknown_timezone_message() -> None:
    with pytest.raises(SlaError) as excinfo:
        SlaPolicy(timezone="Mars/Olympus_Mons")

    assert "Unknown time zone" in str(excinfo.value)
    assert "'Mars/Olympus_Mons'" in str(excinfo.value)
    assert "Europe/Amsterdam" in str(excinfo.value)


def test_sla_policy_defaults() -> None:
    policy = SlaPolicy()

    assert policy.timezone == "Europe/Amsterdam"
    assert policy.holiday_country == "NL"
    assert policy.month_rule is True
    assert policy.request_days == 30
    assert policy.breach_hours == 72
    assert policy.extension_months == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-31T10:00:00+01:00", datetime(2025, 1, 31, 9, 0, tzinfo=UTC)),
        ("2025-01-31T09:00:00Z", datetime(2025, 1, 31, 9, 0, tzinfo=UTC)),
        ("2025-01-31 10:00+01:00", datetime(2025, 1, 31, 9, 0, tzinfo=UTC)),
        (" 2025-06-30T22:30:00-04:00\n", datetime(2025, 7, 1, 2, 30, tzinfo=UTC)),
    ],
)
def test_parse_received_valid(value: str, expected: datetime) -> None:
    parsed = parse_received(value)

    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2025-01-31T10:00:00", "UTC offset is missing"),
        ("2025-01-31", "UTC offset is missing"),
        ("31-01-2025 10:00", "expected ISO 8601"),
        ("2025-02-30T10:00:00+01:00", "expected ISO 8601"),
        ("", "expected ISO 8601"),
        ("yesterday", "expected ISO 8601"),
    ],
)
def test_parse_received_invalid_raises(value: str, reason: str) -> None:
    with pytest.raises(SlaError) as excinfo:
        parse_received(value)

    assert repr(value) in str(excinfo.value)
    assert reason in str(excinfo.value)
    assert "2025-01-31T10:00:00+01:00" in str(excinfo.value)


@pytest.mark.parametrize(
    ("due", "now", "expected"),
    [
        (
            datetime(2025, 2, 28, 23, 59, 59, tzinfo=AMSTERDAM),
            datetime(2025, 2, 27, 23, 59, 59, tzinfo=AMSTERDAM),
            timedelta(days=1),
        ),
        # Overdue by one hour, with "now" given in UTC.
        (
            datetime(2025, 2, 28, 23, 59, 59, tzinfo=AMSTERDAM),
            datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC),
            timedelta(hours=-1),
        ),
        # Summer time ends on 25 October 2026, so that calendar day lasts 25 hours.
        (
            datetime(2026, 10, 25, 12, 0, tzinfo=AMSTERDAM),
            datetime(2026, 10, 24, 12, 0, tzinfo=AMSTERDAM),
            timedelta(hours=25),
        ),
    ],
)
def test_time_left_table(due: datetime, now: datetime, expected: timedelta) -> None:
    assert time_left(due, now) == expected


def test_time_left_without_clock_is_none() -> None:
    assert time_left(None, datetime(2025, 1, 31, 10, 0, tzinfo=UTC)) is None


def test_time_left_naive_now_raises() -> None:
    due = datetime(2025, 2, 28, 23, 59, 59, tzinfo=AMSTERDAM)

    with pytest.raises(SlaError, match="current time"):
        time_left(due, datetime(2025, 2, 1, 10, 0))


def test_holiday_dates_cached_per_country_year() -> None:
    sla._holiday_dates.cache_clear()

    compute_due_at(RequestType.ACCESS, at_ten("2026-03-27"), NL_POLICY)
    compute_due_at(RequestType.ACCESS, at_ten("2026-03-26"), NL_POLICY)
    info = sla._holiday_dates.cache_info()

    assert info.currsize == 1
    assert info.hits >= 1
