"""``opskit data check FILE``: missing values and mixed types of a dataset before training.

What missingno draws (a matrix of present/missing cells, a bar of how complete each column
is), written here without it (missingno is unmaintained and breaks on matplotlib >= 3.7).

* CSV (UTF-8, a header row): a cell is missing when it is empty or one of pandas' default
  ``na_values`` (``NA``, ``NaN``, ``null``, ``None``, ``#N/A``...). A column whose present cells
  are partly numbers and partly text is "mixed": named, with rows that show it.
* ``.npz`` (numpy.savez): each array is a column (a 2-D array one column per feature); a
  sample is missing where it holds NaN. Object arrays (pickles) are refused, never loaded.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from opskit.errors import UsageError
from opskit.reports.figures import Fig, Trace

# pandas.read_csv's default na_values (pandas/_libs/parsers.pyx STR_NA_VALUES)
NA_VALUES = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                       "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                       "nan", "null"})
MATRIX_ROWS = 400  # more rows than this are drawn in bins (the share present per bin)


@dataclass
class Column:
    name: str
    kind: str  # "number" | "text" | "mixed" | "empty" | numpy dtype
    missing: int = 0
    note: str = ""


@dataclass
class DataCheck:
    file: str
    rows: int
    columns: list[Column] = field(default_factory=list)
    present: dict[str, bytearray] = field(default_factory=dict)  # column -> 1 present, 0 missing

    @property
    def missing_total(self) -> int:
        return sum(c.missing for c in self.columns)

    @property
    def mixed(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "mixed"]

    def to_dict(self) -> dict:
        return {"file": self.file, "rows": self.rows, "missing": self.missing_total,
                "columns": [c.__dict__ for c in self.columns],
                "mixed": [c.name for c in self.mixed]}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column(name: str, cells: list[str], lines: list[int]) -> tuple[Column, bytearray]:
    """``lines[i]``: the line of the file where data row i (0-based) starts."""
    present = bytearray(0 if c.strip() in NA_VALUES else 1 for c in cells)
    numbers, texts = [], []
    for i, c in enumerate(cells):
        if present[i]:
            (numbers if _is_number(c.strip()) else texts).append(i)
    col = Column(name, "empty", missing=len(cells) - sum(present))
    if numbers and texts:
        minority, other = (texts, "text") if len(texts) <= len(numbers) else (numbers, "number")
        examples = ", ".join(f"line {lines[i]} (data row {i + 1}): {cells[i][:20]!r}" for i in minority[:3])
        col.kind = "mixed"
        col.note = (f"{len(numbers)} numbers and {len(texts)} text cells; the {other} cells are "
                    f"e.g. {examples}")
    elif numbers or texts:
        col.kind = "number" if numbers else "text"
    return col, present


def _records(text: str) -> tuple[list[list[str]], list[int]]:
    """The CSV's records and the line each starts on (1-based: the header is line 1; a quoted
    cell may span lines, so a record's line is not its index + 1)."""
    reader = csv.reader(io.StringIO(text))
    rows, lines, end = [], [], 0
    for row in reader:
        rows.append(row)
        lines.append(end + 1)
        end = reader.line_num
    return rows, lines


def check_csv(path: Path) -> DataCheck:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})",
                         "save the file as UTF-8 CSV") from None
    rows, lines = _records(text)
    if not rows:
        raise UsageError(f"{path}: empty file, no header row")
    header, body, lines = rows[0], rows[1:], lines[1:]
    for i, row in enumerate(body):
        if len(row) > len(header):
            raise UsageError(f"{path}: line {lines[i]} (data row {i + 1}) has {len(row)} fields, "
                             f"the header has {len(header)}",
                             "quote cells that contain commas, or fix that line")
    res = DataCheck(str(path), len(body))
    for j, name in enumerate(header):
        name = name or f"column {j + 1}"
        name = f"{name} (column {j + 1})" if name in res.present else name
        col, present = _column(name, [r[j] if j < len(r) else "" for r in body], lines)
        res.columns.append(col)
        res.present[col.name] = present
    return res


def check_npz(path: Path) -> DataCheck:
    try:
        import numpy as np
    except ImportError:
        raise UsageError("numpy is needed to read .npz files", "pip install numpy") from None
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UsageError(f"{path}: holds an object array (mixed Python objects, a pickle)",
                             "save numbers only: arrays of one numeric dtype (never loaded as pickle)") from None
        raise UsageError(f"{path}: not a readable .npz ({exc})") from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npz ({exc})") from None
    n = max((a.shape[0] for a in arrays.values() if a.ndim), default=0)
    res = DataCheck(str(path), n)
    for key, a in arrays.items():
        if a.ndim == 0 or a.shape[0] != n:
            res.columns.append(Column(key, str(a.dtype), 0, f"shape {a.shape}: not one row per sample"))
            continue
        cols = [(f"{key}[{j}]", a[:, j]) for j in range(a.shape[1])] if a.ndim == 2 and a.shape[1] <= 64 else [(key, a)]
        for name, arr in cols:
            if arr.dtype.kind == "f":
                nan = np.isnan(arr.reshape(n, -1)).any(axis=1)
            else:
                nan = np.zeros(n, dtype=bool)
            present = bytearray((~nan).astype(np.uint8).tobytes())
            res.columns.append(Column(name, str(arr.dtype), int(nan.sum())))
            res.present[name] = present
    return res


def check_file(file: str | Path) -> DataCheck:
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"no data file {path}", "give a .csv or .npz file")
    if path.suffix.lower() == ".npz":
        return check_npz(path)
    return check_csv(path)


def missing_matrix(res: DataCheck, limit: int = MATRIX_ROWS) -> tuple[list[list[float]], int]:
    """Rows of the matrix (1 present, 0 missing; bins hold the share present) and the bin size."""
    cols = list(res.present.values())
    n = res.rows
    size = max(1, -(-n // limit))
    z = []
    for start in range(0, n, size):
        stop = min(n, start + size)
        z.append([sum(p[start:stop]) / (stop - start) for p in cols])
    return z, size


def figures(res: DataCheck) -> list[Fig]:
    names = list(res.present)
    z, size = missing_matrix(res)
    ylabel = "row" if size == 1 else f"rows (bins of {size}: share present)"
    matrix = Fig("missing_matrix", "Missing values (dark: present, light: missing)",
                 [Trace("columns", names, [])], "", ylabel, kind="heatmap", z=[[1 - v for v in r] for r in z])
    share = [sum(p) / max(1, res.rows) for p in res.present.values()]
    bar = Fig("missing_bar", "Share of rows present per column", [Trace("present", names, share, kind="bar")],
              "column", "present (0..1)")
    return [matrix, bar]


def write_html(res: DataCheck, out: str | Path) -> Path:
    from opskit.reports.html import Page

    page = Page(f"opskit data check: {Path(res.file).name}")
    page.para(f"{res.rows} rows, {len(res.columns)} columns, {res.missing_total} missing values.")
    for c in res.mixed:
        page.note(f"column {c.name!r} mixes types: {c.note}")
    page.figure_grid(figures(res), "data")
    page.table(["column", "type", "missing", "note"], [(c.name, c.kind, c.missing, c.note) for c in res.columns])
    return page.write(out)
