"""napari_deepreg.qa.tables: metric rows, the summary formatting and the metric files."""

from __future__ import annotations

import csv
import json

from napari_deepreg import qa


def test_metrics_table_order_units_and_runtime(make_result):
    rows = qa.metrics_table(make_result())
    names = [r["name"] for r in rows]
    assert names[:2] == ["dice_before", "dice_after"]
    assert names[-3:] == ["runtime_s", "method", "model"]
    assert names.count("runtime_s") == 1
    units = {r["name"]: r["unit"] for r in rows}
    assert units["fold_percent"] == "%" and units["hd95_after"] == "mm"
    assert units["runtime_s"] == "s" and units["dice_after"] == ""
    values = {r["name"]: r["value"] for r in rows}
    assert values["hd95_after"] is None  # NaN -> empty
    assert values["method"] == "instance_opt" and values["runtime_s"] == 1.25


def test_label_table_fills_missing_columns(make_result):
    rows = qa.label_table(make_result())
    assert list(rows[0]) == ["label", "dice_before", "dice_after", "hd95_after"]
    assert rows[0]["hd95_after"] is None and rows[1]["hd95_after"] == 1.0
    assert type(rows[0]["dice_after"]) is float


def test_write_csv_and_json(tmp_path, make_result):
    result = make_result()
    qa.write_metrics_csv(result, tmp_path / "metrics.csv")
    qa.write_label_csv(result, tmp_path / "labels.csv")
    qa.write_metrics_json(result, tmp_path / "metrics.json")
    with (tmp_path / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    by_name = {r["name"]: r for r in rows}
    assert float(by_name["dice_after"]["value"]) == 0.8
    assert by_name["hd95_after"]["value"] == ""
    with (tmp_path / "labels.csv").open() as handle:
        label_rows = list(csv.DictReader(handle))
    assert [int(r["label"]) for r in label_rows] == [1, 2]
    document = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: no NaN
    assert document["metrics"]["dice_after"] == 0.8
    assert document["metrics"]["hd95_after"] is None
    assert document["parameters"]["levels"] == [4, 2]
    assert document["runtime_s"] == 1.25 and document["method"] == "instance_opt"
    assert document["labels"][1]["hd95_after"] == 1.0
    assert document["notes"] == ["moving image resampled onto the fixed grid"]


# ----------------------------------------------------------------------------- the summary


def test_summary_rows_pair_figures_and_format_them_once(make_result):
    rows = {row.key: row for row in qa.summary_rows(make_result().metrics)}
    assert list(rows)[:2] == ["dice", "hd95"]  # paired stems, in the table's order
    dice = rows["dice"]
    assert (dice.label, dice.unit, dice.before, dice.after) == ("Dice", "", "0.500", "0.800")
    hd95 = rows["hd95"]  # only an after value, and it is NaN
    assert (hd95.label, hd95.unit, hd95.before, hd95.after) == ("HD95", "mm", "", "n/a")
    assert (rows["fold_percent"].after, rows["fold_percent"].unit) == ("0.0100", "%")
    assert rows["sdlogj"].label == "SDlogJ" and rows["sdlogj"].after == "0.0500"
    assert rows["n_labels"].after == "2"  # integers stay whole
    assert "runtime_s" not in rows  # reported on its own


def test_summary_line_and_report_lines_are_views_of_the_rows(make_result):
    result = make_result()
    line = qa.summary_line(result.metrics)
    assert line == "Dice 0.500 -> 0.800, HD95 n/a mm, fold percent 0.0100 %, SDlogJ 0.0500"
    lines = qa.summary_lines(result)
    assert lines[0] == "method: instance_opt"
    assert lines[1:-1] == line.split(", ")
    assert lines[-1] == "runtime 1.2 s" or lines[-1] == "runtime 1.3 s"  # 1.25 rounded
    assert qa.summary_line({}) == ""
    both = {"tre_before": 3.14159, "tre_after": 0.5}
    assert qa.summary_line(both) == "TRE 3.14 -> 0.50 mm"


def test_metrics_rows_for_the_widget_table(make_result):
    rows = {row[0]: row for row in qa.metrics_rows(make_result())}
    assert rows["Dice"] == ("Dice", "0.500", "0.800")
    assert rows["HD95 (mm)"] == ("HD95 (mm)", "", "n/a")
    assert rows["fold percent (%)"] == ("fold percent (%)", "", "0.0100")
    assert rows["method"] == ("method", "", "instance_opt")
    assert "runtime (s)" in rows and not any(name.startswith("affine") for name in rows)


def test_format_value():
    assert qa.format_value("dice_after", 0.81234) == "0.812"
    assert qa.format_value("hd95", 2.0) == "2.00"
    assert qa.format_value("jacobian_min", 0.123456) == "0.1235"
    assert qa.format_value("dice_after", float("nan")) == "n/a"
    assert qa.format_value("anything", None) == "n/a"
    assert qa.format_value("method", "avsm") == "avsm"
