"""The bundle contract: the defaults, a bundle's metadata.json entry, and an unknown key named."""

from __future__ import annotations

import json

import pytest

from monai_explain.apps.study import BUNDLE_CONTRACT, bundle_contract


def test_bundle_contract_from_metadata(tmp_path):
    (tmp_path / "configs").mkdir()
    meta = tmp_path / "configs" / "metadata.json"
    meta.write_text(json.dumps({"monai_explain_study": {"splits": ["internal"], "ids": {"lambda": "expl_weight"}}}))
    c = bundle_contract(tmp_path)
    assert c["splits"] == ["internal"] and c["ids"]["lambda"] == "expl_weight"
    assert c["ids"]["seed"] == BUNDLE_CONTRACT["ids"]["seed"] and BUNDLE_CONTRACT["ids"]["lambda"] == "lambda"
    meta.write_text(json.dumps({"monai_explain_study": {"split": ["x"]}}))
    with pytest.raises(ValueError, match="unknown 'monai_explain_study' key\\(s\\) \\['split'\\]"):
        bundle_contract(tmp_path)
