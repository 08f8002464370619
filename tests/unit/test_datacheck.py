"""`opskit data check`: missing values as pandas counts them, mixed-type columns named with
rows, .npz NaNs and refused pickles, and the numbers behind the matrix and bar."""

from __future__ import annotations

import json

import pytest

from opskit.cli.main import main
from opskit.errors import UsageError
from opskit.reports.datacheck import check_file, figures, missing_matrix

CSV = "id,size,label,note\n1,3.5,cat,\n2,NA,dog,x\n3,4.0,,y\n4,n/a,cat,\n5,oops,dog,z\n"


def run_cli(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


def test_csv_missing_cells_and_mixed_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text(CSV)
    res = check_file(f)
    cols = {c.name: c for c in res.columns}
    assert res.rows == 5 and [c.missing for c in res.columns] == [0, 2, 1, 2]
    assert cols["id"].kind == "number" and cols["label"].kind == "text"
    assert cols["size"].kind == "mixed" and "line 6 (data row 5): 'oops'" in cols["size"].note
    assert [c.name for c in res.mixed] == ["size"]
    assert list(res.present["size"]) == [1, 0, 1, 0, 1]


def test_matrix_and_bar_numbers(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text(CSV)
    res = check_file(f)
    matrix, bar = figures(res)
    assert matrix.z[1] == [0, 1, 0, 0]  # row 2: size missing (1 = missing in the drawing)
    assert bar.traces[0].x == ["id", "size", "label", "note"]
    assert bar.traces[0].y == [1.0, 0.6, 0.8, 0.6]


def test_many_rows_are_binned_with_the_share_present(tmp_path):
    f = tmp_path / "big.csv"
    f.write_text("a,b\n" + "".join(f"{i},{'' if i % 4 == 0 else i}\n" for i in range(1000)))
    z, size = missing_matrix(check_file(f), limit=100)
    assert size == 10 and len(z) == 100
    assert z[0] == [1.0, pytest.approx(0.7)]  # rows 0..9: 0, 4, 8 missing in b


def test_npz_nan_and_object_arrays(tmp_path):
    np = pytest.importorskip("numpy")
    x = np.ones((6, 2), dtype="float32")
    x[2, 1] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6))
    res = check_file(tmp_path / "d.npz")
    assert [(c.name, c.missing) for c in res.columns] == [("x[0]", 0), ("x[1]", 1), ("y", 0)]
    np.savez(tmp_path / "o.npz", x=np.array([1, "a", None], dtype=object))
    with pytest.raises(UsageError, match="object array"):
        check_file(tmp_path / "o.npz")


def test_bad_files_are_named(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        check_file(tmp_path / "bin.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(UsageError, match=r"line 2 \(data row 1\) has 3 fields"):
        check_file(tmp_path / "ragged.csv")


def test_cli_exit_codes_and_html(tmp_path, capsys):
    f = tmp_path / "d.csv"
    f.write_text(CSV)
    assert run_cli(["data", "check", str(f), "--html", str(tmp_path / "d.html")]) == 1
    captured = capsys.readouterr()
    assert "column 'size' mixes types" in captured.err and "5 rows, 4 columns" in captured.out
    assert (tmp_path / "d.html").read_text().count('class="opskit-fig"') == 2
    (tmp_path / "ok.csv").write_text("a,b\n1,\n2,3\n")
    assert run_cli(["data", "check", str(tmp_path / "ok.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing"] == 1


def test_places_are_file_lines_and_data_rows_even_with_a_cell_over_two_lines(tmp_path):
    """The header is line 1 and not a data row; a quoted cell that spans lines moves the lines
    of the records after it, not their data-row numbers."""
    f = tmp_path / "d.csv"
    f.write_text('id,size,note\n1,3.5,"two\nlines"\n2,4.0,x\n3,oops,y\n')
    col = {c.name: c for c in check_file(f).columns}["size"]
    assert "line 5 (data row 3): 'oops'" in col.note
    f.write_text('a,b\n1,2\n"x\ny",2,3\n')
    with pytest.raises(UsageError, match=r"line 3 \(data row 2\) has 3 fields, the header has 2"):
        check_file(f)
