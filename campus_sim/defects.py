"""Injected data defects and the log of them that becomes ``truth/defects.csv``.

Format defects (names, ID numbers, duplicate rows, orphan references) are applied to a system's rows
as they are written; each is logged with the record key as it appears in that system. Defects on one
row never overlap, and duplicated rows are clean copies, so every defect is visible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from campus_sim import people
from campus_sim.people import FULLWIDTH_SPACE
from campus_sim.writers import write_csv

COLUMNS = ("system", "entity", "record_key", "person_id", "kind", "detail")

NAME_FULLWIDTH_RATE = 0.01
NAME_SPACES_RATE = 0.02
ID_INVALID_RATE = 0.005
ID_15_RATE = 0.03
ID_LOWER_X_SHARE = 0.30
DUPLICATE_RATE = 0.005
DUES_DUPLICATE_RATE = 0.01
ORPHAN_RATE = 0.002


def how_many(rate: float, n: int) -> int:
    """Defects for ``n`` rows at ``rate``: at least one whenever there is a row to damage."""
    return min(n, max(1, round(rate * n))) if n else 0


class DefectLog:
    """Collects defect rows; written sorted by system, entity, kind and key."""

    def __init__(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []

    def add(
        self,
        system: str,
        entity: str,
        kind: str,
        keys: np.ndarray,
        person_ids: np.ndarray | str,
        detail: np.ndarray | str,
    ) -> None:
        keys = np.asarray(keys, dtype=str)
        n = keys.size
        if not n:
            return
        self._parts.append(
            {
                "system": np.full(n, system),
                "entity": np.full(n, entity),
                "record_key": keys,
                "person_id": np.broadcast_to(np.asarray(person_ids, dtype=str), n).copy(),
                "kind": np.full(n, kind),
                "detail": np.broadcast_to(np.asarray(detail, dtype=str), n).copy(),
            }
        )

    def table(self) -> dict[str, np.ndarray]:
        if not self._parts:
            return {c: np.array([], dtype=str) for c in COLUMNS}
        rows = {c: np.concatenate([p[c] for p in self._parts]) for c in COLUMNS}
        order = np.lexsort((rows["record_key"], rows["kind"], rows["entity"], rows["system"]))
        return {c: v[order] for c, v in rows.items()}

    def write(self, path: Path) -> int:
        table = self.table()
        write_csv(path, table, encoding="utf-8")
        return table["record_key"].size


@dataclass
class PersonRows:
    """A system's person rows after damage: names and ID numbers as written."""

    names: np.ndarray
    ids: np.ndarray
    touched: np.ndarray


def person_defects(
    rng: np.random.Generator,
    log: DefectLog,
    system: str,
    entity: str,
    keys: np.ndarray,
    person_ids: np.ndarray,
    names: np.ndarray,
    ids: np.ndarray,
    *,
    lower_all_x: bool,
    legacy_birth_years: np.ndarray | None = None,
) -> PersonRows:
    """Damage names and ID numbers (``(n, 18)`` ASCII) of one system's person rows and log it.

    ``lower_all_x``: every ID ending in X is written with a lower-case x (else 30% of them).
    ``legacy_birth_years``: given for the HR system, where 3% of people born before 2000 keep
    their legacy 15-digit number.
    """
    n = keys.size
    names = names.astype(object)
    id_text = people.ascii_to_str(ids).astype(object)
    touched = np.zeros(n, dtype=bool)
    ends_x = ids[:, 17] == ord("X")

    x_rows = np.flatnonzero(ends_x)
    lower = x_rows if lower_all_x else rng.permutation(x_rows)[: how_many(ID_LOWER_X_SHARE, x_rows.size)]
    lower = np.sort(lower)
    id_text[lower] = [s[:17] + "x" for s in id_text[lower]]
    touched[lower] = True
    log.add(system, entity, "id_lower_x", keys[lower], person_ids[lower], "身份证号校验码为小写x")

    order = rng.permutation(n)

    def take_free(count: int, eligible: np.ndarray | None = None) -> np.ndarray:
        ok = ~ends_x & ~touched
        if eligible is not None:
            ok &= eligible
        chosen = np.sort(order[ok[order]][:count])
        touched[chosen] = True
        return chosen

    bad = take_free(how_many(ID_INVALID_RATE, n))
    date_kind = rng.random(bad.size) < 0.3
    damaged = np.where(
        date_kind[:, None], people.impossible_date(rng, ids[bad]), people.wrong_check(rng, ids[bad])
    )
    id_text[bad] = people.ascii_to_str(damaged)
    details = np.where(date_kind, "身份证号出生日期不存在", "身份证号校验码错误")
    log.add(system, entity, "id_invalid", keys[bad], person_ids[bad], details)

    if legacy_birth_years is not None:
        legacy = take_free(how_many(ID_15_RATE, n), legacy_birth_years < 2000)
        id_text[legacy] = people.ascii_to_str(people.to_15_digit(ids[legacy]))
        log.add(system, entity, "id_15_digit", keys[legacy], person_ids[legacy], "身份证号为15位旧号码")

    wide = take_free(how_many(NAME_FULLWIDTH_RATE, n))
    at_end = rng.random(wide.size) < 0.3
    names[wide] = [
        nm + FULLWIDTH_SPACE if e else nm[:1] + FULLWIDTH_SPACE + nm[1:]
        for nm, e in zip(names[wide], at_end, strict=True)
    ]
    log.add(
        system,
        entity,
        "name_fullwidth",
        keys[wide],
        person_ids[wide],
        np.where(at_end, "姓名末尾有全角空格", "姓名中间有全角空格"),
    )

    spaced = take_free(how_many(NAME_SPACES_RATE, n))
    where = rng.integers(0, 3, spaced.size)
    names[spaced] = [
        (" " + nm, nm + " ", nm[:1] + " " + nm[1:])[w] for nm, w in zip(names[spaced], where, strict=True)
    ]
    log.add(
        system,
        entity,
        "name_spaces",
        keys[spaced],
        person_ids[spaced],
        np.array(["姓名前有空格", "姓名后有空格", "姓名中间有空格"])[where],
    )
    return PersonRows(names.astype(str), id_text.astype(str), touched)


def duplicates(rng: np.random.Generator, touched: np.ndarray, rate: float) -> np.ndarray:
    """Rows (among untouched ones) to write twice."""
    pool = np.flatnonzero(~touched)
    return np.sort(rng.permutation(pool)[: how_many(rate, touched.size)])


def with_duplicates(n: int, repeat: np.ndarray) -> np.ndarray:
    """Row order with each repeated row written again right after itself."""
    return np.sort(np.r_[np.arange(n), repeat], kind="stable")
