"""Vectorised people: birth dates, names, ethnicity, GB 11643 ID numbers and mobile numbers.

ID numbers are handled as ``(n, 18)`` arrays of ASCII codes while they are built or damaged, and turned
into strings at the end. All functions draw from the generator they are given and nothing else.
"""

from __future__ import annotations

import numpy as np

from campus_sim import codes

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK_CHARS = np.frombuffer(b"10X98765432", dtype=np.uint8)
FULLWIDTH_SPACE = "\u3000"


def ascii_to_str(codes_2d: np.ndarray) -> np.ndarray:
    """Turn an ``(n, k)`` uint8 array of ASCII codes into an array of k-character strings."""
    width = codes_2d.shape[1]
    return np.ascontiguousarray(codes_2d, dtype=np.uint8).view(f"S{width}").ravel().astype(f"U{width}")


def str_to_ascii(values: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`ascii_to_str` for ASCII strings of exactly ``width`` characters."""
    return np.asarray(values).astype(f"S{width}").view(np.uint8).reshape(-1, width).copy()


def date_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day (int arrays) of a ``datetime64[D]`` array."""
    months = days.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def add_years(days: np.ndarray, years: int) -> np.ndarray:
    """Same calendar date ``years`` later (29 February becomes 1 March)."""
    months = days.astype("datetime64[M]")
    offset = days - months.astype("datetime64[D]")
    return (months + 12 * years).astype("datetime64[D]") + offset


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """``months`` later, the day clamped to the end of the month (as DuckDB's date + INTERVAL does)."""
    start = days.astype("datetime64[M]") + months
    last = (start + 1).astype("datetime64[D]") - 1
    return np.minimum(start.astype("datetime64[D]") + (days - days.astype("datetime64[M]").astype("datetime64[D]")), last)


def random_dates(rng: np.random.Generator, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Uniform dates in ``[start, end]`` (element-wise; end >= start)."""
    start = np.asarray(start, dtype="datetime64[D]")
    span = (np.asarray(end, dtype="datetime64[D]") - start).astype(np.int64)
    return start + np.floor(rng.random(span.shape) * (span + 1)).astype(np.int64)


def ethnicities(rng: np.random.Generator, n: int) -> np.ndarray:
    """GB 3304 codes with the college's ethnic mix."""
    table = codes.ETHNICITIES
    weights = np.array([w for _, _, w in table])
    picks = rng.choice(len(table), size=n, p=weights / weights.sum())
    return np.array([code for code, _, _ in table])[picks]


def names(rng: np.random.Generator, male: np.ndarray, single_share: float, dotted: np.ndarray) -> np.ndarray:
    """Chinese names: weighted surname plus a one- or two-character given name.

    ``dotted`` marks people who get a name of the form ``given·father`` instead.
    """
    n = male.size
    surnames = np.array([s for s, _ in codes.SURNAMES])
    weights = np.array([w for _, w in codes.SURNAMES])
    surname = surnames[rng.choice(surnames.size, size=n, p=weights / weights.sum())]
    male_chars = np.array(list(codes.GIVEN_MALE))
    female_chars = np.array(list(codes.GIVEN_FEMALE))
    pool = np.where(male, 0, 1)
    first = np.where(
        pool == 0,
        male_chars[rng.integers(0, male_chars.size, n)],
        female_chars[rng.integers(0, female_chars.size, n)],
    )
    # The second character comes from either pool now and then, as real names do.
    mixed = rng.random(n) < 0.15
    second_male = male ^ mixed
    second = np.where(
        second_male,
        male_chars[rng.integers(0, male_chars.size, n)],
        female_chars[rng.integers(0, female_chars.size, n)],
    )
    single = rng.random(n) < single_share
    given = np.where(single | (first == second), first, np.strings.add(first, second))
    full = np.strings.add(surname, given)
    if dotted.any():
        k = int(dotted.sum())
        dm = male[dotted]
        g_male = np.array(codes.DOTTED_GIVEN_MALE)[rng.integers(0, len(codes.DOTTED_GIVEN_MALE), k)]
        g_female = np.array(codes.DOTTED_GIVEN_FEMALE)[rng.integers(0, len(codes.DOTTED_GIVEN_FEMALE), k)]
        fathers = np.array(codes.DOTTED_FATHER)
        pick = rng.integers(0, fathers.size, k)
        own = np.where(dm, g_male, g_female)
        pick = np.where(fathers[pick] == own, (pick + 1) % fathers.size, pick)  # not 买买提·买买提
        full = full.astype(object)
        full[dotted] = np.strings.add(np.strings.add(own, "·"), fathers[pick])
        full = full.astype(str)
    return full


def _area_codes(rng: np.random.Generator, birth_years: np.ndarray) -> np.ndarray:
    """Area codes valid in each person's birth year, favouring urban districts."""
    table = codes.GX_AREAS
    area = np.empty(birth_years.size, dtype="U6")
    for year in np.unique(birth_years):
        rows = [(c, 3.0 if c in codes.FAVOURED_AREAS else 1.0) for c, lo, hi, _ in table if lo <= year <= hi]
        weights = np.array([w for _, w in rows])
        mask = birth_years == year
        area[mask] = np.array([c for c, _ in rows])[
            rng.choice(len(rows), size=int(mask.sum()), p=weights / weights.sum())
        ]
    return area


def check_chars(body: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters (ASCII codes) for ``(n, 17)`` ASCII digit arrays."""
    total = (body.astype(np.int64) - 48) @ ID_WEIGHTS
    return CHECK_CHARS[total % 11]


def id_numbers(rng: np.random.Generator, birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Unique valid 18-character ID numbers (upper-case X) as ``(n, 18)`` ASCII arrays."""
    n = birth.size
    year, month, day = date_parts(birth)
    area = _area_codes(rng, year)
    stem = np.strings.add(area, (year * 10000 + month * 100 + day).astype(str))
    body = np.empty((n, 17), dtype=np.uint8)
    body[:, :14] = str_to_ascii(stem, 14)
    prefix = area.astype(np.int64) * 10**8 + year * 10000 + month * 100 + day
    todo = np.ones(n, dtype=bool)
    seq = np.zeros(n, dtype=np.int64)
    while todo.any():
        # Sequence 001-999, odd for men and even for women; redraw where two people collide.
        half = rng.integers(0, 499, int(todo.sum()))
        seq[todo] = np.where(male[todo], 2 * half + 1, 2 * half + 2)
        _, first = np.unique(prefix * 1000 + seq, return_index=True)
        todo = np.ones(n, dtype=bool)
        todo[first] = False
    body[:, 14] = 48 + seq // 100
    body[:, 15] = 48 + seq // 10 % 10
    body[:, 16] = 48 + seq % 10
    ids = np.empty((n, 18), dtype=np.uint8)
    ids[:, :17] = body
    ids[:, 17] = check_chars(body)
    return ids


def to_15_digit(ids: np.ndarray) -> np.ndarray:
    """Legacy 15-digit form: area, YYMMDD, sequence (people born 1900-1999)."""
    return np.concatenate([ids[:, :6], ids[:, 8:17]], axis=1)


def wrong_check(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Replace the check character by a different digit."""
    out = ids.copy()
    shift = rng.integers(1, 10, ids.shape[0])
    current = np.where(ids[:, 17] == ord("X"), 10, ids[:, 17].astype(np.int64) - 48)
    out[:, 17] = 48 + (current + shift) % 10
    same = out[:, 17] == ids[:, 17]
    out[same, 17] = 48 + (out[same, 17] - 48 + 1) % 10
    return out


def impossible_date(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Write an impossible month/day into the birth date and recompute the check character.

    The sequence number is stepped (keeping its parity) until the check character is a digit, so
    that the damage is only the date and never looks like an X/x variant as well.
    """
    out = ids.copy()
    choices = np.array([b"1301", b"0230", b"0431", b"0931", b"0000"])
    picks = choices[rng.integers(0, choices.size, ids.shape[0])]
    out[:, 10:14] = np.frombuffer(b"".join(picks), dtype=np.uint8).reshape(-1, 4)
    out[:, 17] = check_chars(out[:, :17])
    while (is_x := out[:, 17] == ord("X")).any():
        out[is_x, 16] = 48 + (out[is_x, 16] - 48 + 2) % 10
        out[is_x, 17] = check_chars(out[is_x, :17])
    return out


def mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unique mobile numbers 1[3-9]x xxxx xxxx."""
    prefixes = np.array([int(p) for p in codes.MOBILE_PREFIXES], dtype=np.int64)
    numbers = prefixes[rng.integers(0, prefixes.size, n)] * 10**8 + rng.integers(0, 10**8, n)
    while True:
        _, first = np.unique(numbers, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            return numbers.astype(str)
        k = int(dup.sum())
        numbers[dup] = prefixes[rng.integers(0, prefixes.size, k)] * 10**8 + rng.integers(0, 10**8, k)
