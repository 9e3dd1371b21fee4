"""Label names: the three lookup-table formats, finding a table beside a label file, and the
names in the tables and CSV files (issue 17, defect 2)."""

from __future__ import annotations

import csv

from napari_deepreg import qa
from napari_deepreg.qa.label_names import find_label_names, parse_label_names, read_label_names
from napari_deepreg.sample import sample_dir

ITKSNAP = '''################################################
# ITK-SNAP Label Description File
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "Left hippocampus"
    2     0  255    0        1  1  1    "Right hippocampus"
'''

FREESURFER = '''#$Id: FreeSurferColorLUT.txt $
#No. Label Name:                            R   G   B   A
0   Unknown                                 0   0   0   0
2   Left-Cerebral-White-Matter              245 245 245 0
17  Left-Hippocampus                        220 216 20  0
'''


def test_itksnap_label_description():
    assert parse_label_names(ITKSNAP) == {
        0: "Clear Label", 1: "Left hippocampus", 2: "Right hippocampus"}


def test_freesurfer_lut():
    assert parse_label_names(FREESURFER) == {
        0: "Unknown", 2: "Left-Cerebral-White-Matter", 17: "Left-Hippocampus"}


def test_csv_and_tsv_with_and_without_header(tmp_path):
    (tmp_path / "a.csv").write_text("id,structure,volume\n1,thalamus,3.2\n4,putamen,1.0\n")
    (tmp_path / "b.tsv").write_text("index\tname\n7\tcaudate nucleus\n")
    (tmp_path / "c.csv").write_text("3,amygdala\n5,insula\n")
    assert read_label_names(tmp_path / "a.csv") == {1: "thalamus", 4: "putamen"}
    assert read_label_names(tmp_path / "b.tsv") == {7: "caudate nucleus"}
    assert read_label_names(tmp_path / "c.csv") == {3: "amygdala", 5: "insula"}


def test_a_table_beside_the_label_file_is_found(tmp_path):
    seg = tmp_path / "subject_seg.nii.gz"
    seg.write_bytes(b"")
    assert find_label_names(seg) == ({}, None)
    (tmp_path / "subject_seg.txt").write_text(ITKSNAP)
    names, source = find_label_names(seg)
    assert names[1] == "Left hippocampus" and source == tmp_path / "subject_seg.txt"


def test_the_sample_data_has_a_labels_csv_with_the_six_tissue_names():
    names, source = find_label_names(sample_dir() / "brain3d_fixed_labels.nii.gz")
    assert source == sample_dir() / "labels.csv"
    assert {k: names[k] for k in range(1, 7)} == {
        1: "Left-GM", 2: "Right-GM", 3: "Left-WM", 4: "Right-WM", 5: "Left-CSF", 6: "Right-CSF"}


def test_names_in_the_label_table_rows_and_csv(make_result, tmp_path):
    result = make_result()
    header, rows = qa.label_rows(result)
    assert rows[0][0] == "label 1"  # no names: the number alone
    result.label_names = {1: "Left-GM", 2: "Right-GM"}
    header, rows = qa.label_rows(result)
    assert header == ["label", "Dice before", "Dice after", "HD95 after (mm)"]
    assert rows == [("1 Left-GM", "0.400", "0.900", "n/a"), ("2 Right-GM", "0.600", "0.700",
                                                             "1.00")]
    path = qa.write_label_csv(result, tmp_path / "labels.csv")
    with path.open() as handle:
        read = list(csv.DictReader(handle))
    assert [r["name"] for r in read] == ["Left-GM", "Right-GM"]
    assert list(read[0])[:2] == ["label", "name"]
    assert qa.result_summary(result)["labels"][1]["name"] == "Right-GM"
