from __future__ import annotations

import pytest

from ember.errors import BadRequest
from ember.options import parse_options, sampling_from


def test_unknown_legacy_and_null_options_are_dropped() -> None:
    opts = parse_options({"mirostat": 0, "tfs_z": 1.0, "use_mlock": True, "new_topic_penalty": 3,
                          "temperature": None, "top_k": 20})
    assert opts == {"top_k": 20}


def test_floats_accepted_for_integers_and_ints_for_floats() -> None:
    assert parse_options({"num_ctx": 2048.0, "temperature": 1}) == {"num_ctx": 2048, "temperature": 1.0}


def test_wrong_types_name_the_option() -> None:
    with pytest.raises(BadRequest, match='option "temperature"'):
        parse_options({"temperature": "hot"})
    with pytest.raises(BadRequest, match='option "stop"'):
        parse_options({"stop": [1, 2]})


def test_stop_string_becomes_list() -> None:
    assert parse_options({"stop": "###"}) == {"stop": ["###"]}


def test_num_predict_is_capped_by_the_server() -> None:
    assert sampling_from({}, max_predict=100).num_predict == 100
    assert sampling_from({"num_predict": -1}, max_predict=100).num_predict == 100
    assert sampling_from({"num_predict": 5000}, max_predict=100).num_predict == 100
    assert sampling_from({"num_predict": 7}, max_predict=100).num_predict == 7
