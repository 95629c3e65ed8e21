"""vitiseg.io.tables: the CSV every output table is written with opens safely in a spreadsheet."""

import csv
import io

from vitiseg.io.tables import csv_text, spreadsheet_safe


def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote():
    for formula in ("=HYPERLINK(1)", "+1", "-2+3", "@SUM(A1)", "\tx"):
        assert spreadsheet_safe(formula) == "'" + formula
    assert spreadsheet_safe("p-01") == "p-01"  # only a leading sign counts


def test_csv_text_quotes_text_leaves_numbers_and_blanks_missing_values():
    rows = [{"patient_id": "=cmd()", "change": -0.25, "count": 3, "note": None, "extra": 1}]
    parsed = list(
        csv.DictReader(io.StringIO(csv_text(rows, ["patient_id", "change", "count", "note"])))
    )
    assert parsed == [{"patient_id": "'=cmd()", "change": "-0.25", "count": "3", "note": ""}]
