"""The part of a quality scan the database does (下推): for each rule, a SQL condition
that holds only for values the rule's Python checks would surely accept, so the scan
counts those values in the database and reads back only the rest.

Every condition is a *sufficient* test, never the definition: a value it accepts is
one :mod:`govshare.rules.validators` accepts too (non-blank, of the declared type and
length, of the format), while a value it does not accept is merely unsure and goes to
the Python checks, which decide and word the problem. So the scan's results are those
of the Python checks alone, only faster where the values are ordinary: plain ASCII
codes, dates written ``YYYY-MM-DD``, text with letters, digits or Chinese characters.

Conditions exist for SQLite and PostgreSQL (the shared stores' databases) and for text
columns; any other case has none (``None``) and its values all go to Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    String,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
)
from sqlalchemy.engine import Dialect

from govshare.quality.models import ItemFormat
from govshare.quality.service import RuleSpec
from govshare.rules import validators as v

DIALECTS = frozenset({"sqlite", "postgresql"})

Problem = Callable[[Any], tuple[str, str] | None]
"""The rule's Python checks of one non-blank value (the scan's ``_Check.problem``)."""

_DIGIT = "[0-9]"
_MONTHS = [f"{m:02d}" for m in range(1, 13)]
_DAYS_ANY_MONTH = [f"{d:02d}" for d in range(1, 29)]
_LONG_MONTHS = ["01", "03", "05", "07", "08", "10", "12"]
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


class Conditions:
    """Builds the conditions for one database dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect.name
        self.preparer = dialect.identifier_preparer

    @property
    def supported(self) -> bool:
        return self.dialect in DIALECTS

    # -- building blocks --------------------------------------------------------------

    def _text(self, col: ColumnElement[Any]) -> list[ColumnElement[bool]]:
        """The value is text (SQLite stores whatever it is given in any column)."""
        found: list[ColumnElement[bool]] = [col.is_not(None)]
        if self.dialect == "sqlite":
            found.append(func.typeof(col) == "text")
        return found

    def _fixed(self, col: ColumnElement[Any], classes: Iterable[str]) -> ColumnElement[bool]:
        """The whole value is one character per class, in order; a class is a bracket
        expression or a literal character, read alike by SQLite's GLOB and
        PostgreSQL's regular expressions (whose ranges go by code point)."""
        classes = list(classes)
        pattern = "".join(classes)
        if self.dialect == "sqlite":
            # SQLite's GLOB (and length) stop at a NUL character, its bytes do not.
            return and_(
                col.op("GLOB", is_comparison=True)(pattern), self._bytes(col) == len(classes)
            )
        return col.op("~", is_comparison=True)(f"^{pattern}$")

    @staticmethod
    def _bytes(col: ColumnElement[Any]) -> ColumnElement[Any]:
        """SQLite: the value's length in UTF-8 bytes, all of them."""
        return func.length(cast(col, LargeBinary))

    def _contains(self, col: ColumnElement[Any], bracket: str) -> ColumnElement[bool]:
        if self.dialect == "sqlite":
            return col.op("GLOB", is_comparison=True)(f"*{bracket}*")
        return col.op("~", is_comparison=True)(bracket)

    def _only(self, col: ColumnElement[Any], bracket: str) -> ColumnElement[bool]:
        """Every character is of ``bracket`` (the empty value too)."""
        if self.dialect == "sqlite":
            negated = "[^" + bracket[1:]
            return not_(col.op("GLOB", is_comparison=True)(f"*{negated}*"))
        return col.op("~", is_comparison=True)(f"^{bracket}*$")

    def present(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        """Surely not blank (:func:`validators.is_blank`): it has an ASCII letter or
        digit or a CJK ideograph, none of which normalises to a blank."""
        return and_(*self._text(col), self._contains(col, "[0-9A-Za-z一-鿿]"))

    def _fits(self, col: ColumnElement[Any], length: int | None) -> ColumnElement[bool] | None:
        """Surely within ``length`` bytes of GB 18030: no character takes more than four,
        printable ASCII takes one (and stripping blanks only shortens)."""
        if length is None:
            return None
        if self.dialect == "sqlite":
            # Counted in bytes, which see past a NUL: GB 18030 takes at most twice the
            # bytes of UTF-8, and as many for ASCII (all bytes are characters).
            return or_(
                self._bytes(col) * 2 <= length,
                and_(self._bytes(col) == func.length(col), func.length(col) <= length),
            )
        return or_(
            func.length(col) * 4 <= length,
            and_(self._only(col, "[ -~]"), func.length(col) <= length),
        )

    @staticmethod
    def _in(expr: ColumnElement[Any], values: list[str]) -> ColumnElement[bool]:
        if not values:
            return false()
        # Rendered inline: a code table or the division codes may hold thousands of
        # values, more than a statement may bind; each was checked to be a code.
        return expr.in_(bindparam(None, values, expanding=True, literal_execute=True))

    def _calendar(
        self, year: ColumnElement[Any], month: ColumnElement[Any], day: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        """Two-digit month and day (and four-digit year) that surely make a real date;
        29 February is left to Python."""
        return and_(
            year != "0000",
            month.in_(_MONTHS),
            or_(
                day.in_(_DAYS_ANY_MONTH),
                and_(day.in_(["29", "30"]), month != "02"),
                and_(day == "31", month.in_(_LONG_MONTHS)),
            ),
        )

    # -- per format ---------------------------------------------------------------------

    def _position(self, alphabet: str, char: ColumnElement[Any]) -> ColumnElement[Any]:
        """The character's place in ``alphabet`` from 0 (-1 when absent). Not a CAST:
        PostgreSQL may evaluate it before the pattern that rules out non-digits."""
        position = func.instr if self.dialect == "sqlite" else func.strpos
        return position(literal(alphabet), char) - 1

    def _quote(self, col: ColumnElement[Any]) -> str:
        """The column's name as SQL (unqualified: a scan reads one table)."""
        return self.preparer.quote(str(getattr(col, "name", "")))

    def _binary(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """Compared code point by code point, whatever the column's collation."""
        return col.collate("BINARY" if self.dialect == "sqlite" else "C")

    def _id_checksum(self, col: ColumnElement[Any]) -> ColumnElement[Any]:
        """The weighted sum of the first 17 digits modulo 11 (GB 11643)."""
        if self.dialect == "sqlite":
            # The 17 digits read once as an integer and taken apart by arithmetic: in
            # SQLite a function call per digit costs twice as much as the whole.
            name = self._quote(col)
            terms = "+".join(f"(n/{10 ** (16 - i)}%10)*{w}" for i, w in enumerate(_ID_WEIGHTS))
            return literal_column(
                f"(SELECT ({terms}) % 11 FROM (SELECT CAST(substr({name}, 1, 17) AS INTEGER) AS n))"
            )
        digit = [self._position("0123456789", func.substr(col, i + 1, 1)) for i in range(17)]
        return sum((d * w for d, w in zip(digit, _ID_WEIGHTS, strict=True)), literal(0)) % 11

    def _citizen_id(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        return and_(
            self._fixed(col, [_DIGIT] * 17 + ["[0-9X]"]),
            func.substr(literal("10X98765432"), self._id_checksum(col) + 1, 1)
            == func.substr(col, 18, 1),
            self._calendar(
                func.substr(col, 7, 4), func.substr(col, 11, 2), func.substr(col, 13, 2)
            ),
            self._in(func.substr(col, 1, 6), known_divisions()),
        )

    def _credit_code(self, col: ColumnElement[Any]) -> ColumnElement[bool]:
        values = [self._position(_CREDIT_ALPHABET, func.substr(col, i + 1, 1)) for i in range(17)]
        total = sum((x * w for x, w in zip(values, _CREDIT_WEIGHTS, strict=True)), literal(0))
        pairs = sorted(a + t for a, types in v.CREDIT_CODE_AUTHORITIES.items() for t in types)
        return and_(
            self._fixed(col, ["[0-9A-Z]", _DIGIT] + [_DIGIT] * 6 + ["[0-9A-HJ-NP-RTUW-Y]"] * 10),
            func.substr(col, 1, 2).in_(pairs),
            func.substr(literal(_CREDIT_ALPHABET), (31 - total % 31) % 31 + 1, 1)
            == func.substr(col, 18, 1),
        )

    def _date(self, col: ColumnElement[Any], spec: RuleSpec) -> ColumnElement[bool]:
        if self.dialect == "sqlite":
            # date() gives back YYYY-MM-DD unchanged when it is that, month 01–12 and
            # day 01–31 (cheaper than the pattern); it does not know February's length.
            shape = func.date(col) == col
        else:
            shape = self._fixed(col, [_DIGIT] * 4 + ["-", _DIGIT, _DIGIT, "-", _DIGIT, _DIGIT])
        parts = [
            shape,
            self._calendar(func.substr(col, 1, 4), func.substr(col, 6, 2), func.substr(col, 9, 2)),
        ]
        # ISO dates of one width order as their text does.
        if spec.date_min is not None:
            parts.append(self._binary(col) >= spec.date_min.isoformat())
        if spec.date_max is not None:
            parts.append(self._binary(col) <= spec.date_max.isoformat())
        return and_(*parts)

    def accepted(
        self,
        spec: RuleSpec,
        codes: Mapping[str, str],
        col: ColumnElement[Any],
        problem: Problem,
    ) -> ColumnElement[bool] | None:
        """A condition under which the value is non-blank and passes the rule's checks,
        or None when there is none for this rule here."""
        if not self.supported or not isinstance(getattr(col, "type", None), String):
            return None
        fmt, data_type, length = spec.format, spec.data_type, spec.max_length
        if fmt in (ItemFormat.SEX, ItemFormat.CODE_TABLE, ItemFormat.DIVISION):
            # A value equal to a code the Python checks (type and length included)
            # accept is accepted: they are pure functions of the value.
            if fmt is ItemFormat.SEX:
                candidates: Iterable[str] = codes or v.SEX_CODES
            elif fmt is ItemFormat.CODE_TABLE:
                candidates = codes
            else:
                candidates = known_divisions()
            good = [c for c in candidates if not v.is_blank(c) and problem(c) is None]
            return and_(*self._text(col), self._in(self._binary(col), good))
        textual = data_type in ("", "C", "M")
        # The fixed-width formats below are printable ASCII of a known length.
        width = {
            ItemFormat.CITIZEN_ID: 18,
            ItemFormat.CREDIT_CODE: 18,
            ItemFormat.PHONE: 11,
            ItemFormat.DATE: 10,
        }.get(fmt)
        if width is not None and length is not None and width > length:
            return None
        if fmt is ItemFormat.CITIZEN_ID and textual:
            return and_(*self._text(col), self._citizen_id(col))
        if fmt is ItemFormat.CREDIT_CODE and textual:
            return and_(*self._text(col), self._credit_code(col))
        if fmt is ItemFormat.PHONE and textual:
            # Mobile numbers only; landlines (rarer, with their forms) go to Python.
            return and_(*self._text(col), self._fixed(col, ["1", "[3-9]"] + [_DIGIT] * 9))
        if fmt is ItemFormat.DATE and (textual or data_type == "D"):
            return and_(*self._text(col), self._date(col, spec))
        if fmt is ItemFormat.NONE and textual:
            fits = self._fits(col, length) if data_type else None
            present = self.present(col)
            return present if fits is None else and_(present, fits)
        return None


@cache
def known_divisions() -> list[str]:
    """Every 行政区划代码 :func:`validators.division_name` knows, read from stdnum's
    table. The table is two levels of single codes (province, then the other four
    digits), where a code is known when the entry of its last four digits has a name;
    should it ever take another shape, each code is confirmed by the lookup itself
    (slower: about a second), so the list can never hold an unknown code."""
    from stdnum import numdb

    provinces = numdb.get("cn/loc").prefixes
    found: set[str] = set()
    simple = True
    for length, low, high, _props, children in provinces:
        simple = simple and length == 2 and low == high
        for length2, low2, high2, props2, children2 in children:
            simple = simple and length2 == 4 and low2 == high2 and not children2
            if props2:
                found.add(low + low2)
    if not simple:
        return sorted(c for c in found if v.division_name(c) is not None)
    return sorted(c for c in found if len(c) == 6 and c.isdigit())
