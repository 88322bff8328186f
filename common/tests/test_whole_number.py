"""A JSON integer may be written 3.0 (JSON Schema's integer too); strict otherwise."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, Field, StrictInt, ValidationError

from common.validation import WholeNumber


class Body(BaseModel):
    count: Annotated[StrictInt, Field(ge=1, le=10), WholeNumber]


def test_a_whole_float_is_the_integer():
    assert Body.model_validate({"count": 3.0}).count == 3
    assert isinstance(Body.model_validate({"count": 3.0}).count, int)
    assert Body.model_json_schema()["properties"]["count"] == {
        "maximum": 10,
        "minimum": 1,
        "title": "Count",
        "type": "integer",
    }


@pytest.mark.parametrize("value", ["3", True, 3.5, 0.0, 11.0, float("inf"), float("nan")])
def test_anything_else_stays_refused(value):
    with pytest.raises(ValidationError):
        Body.model_validate({"count": value})
