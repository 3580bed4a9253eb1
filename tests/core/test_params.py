"""Strict job parameters (`core.params.StrictParams`) for every registered job kind.

Through the real REST routes (`create_api` under a FastAPI test client): an unknown field is
a 422 naming it, a 5 MiB string is refused, 1e308 / NaN / Infinity are refused. And a walk
over every params model checks that each number and list declares its own bounds, so a field
added later without limits fails here.
"""
from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from core.params import MAX_NUMBER, MAX_STR, StrictParams

FIVE_MIB = "x" * (5 * 2**20)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from core.api import create_api
    from core.context import build_context

    ctx = build_context(tmp_path_factory.mktemp("studio"))
    yield ctx, TestClient(create_api(ctx))
    ctx.close()


def _models(model: type[BaseModel], seen=None):
    """The model and every params model nested in its fields."""
    seen = seen if seen is not None else set()
    if model in seen:
        return
    seen.add(model)
    yield model
    for f in model.model_fields.values():
        for sub in _leaf_types(f.annotation):
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                yield from _models(sub, seen)


def _leaf_types(tp):
    origin = get_origin(tp)
    if origin is Annotated:
        yield from _leaf_types(get_args(tp)[0])
    elif origin in (Union, types.UnionType, list, tuple, set, dict):
        for a in get_args(tp):
            yield from _leaf_types(a)
    else:
        yield tp


def _unbounded(tp, metadata: list, where: str) -> list[str]:
    """Fields (by path) whose numbers lack a lower or upper bound or whose lists lack a length."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        # Annotated[float, Field(ge=...)] carries a FieldInfo whose metadata holds the bounds
        meta = [x for m in meta for x in (m.metadata if isinstance(m, FieldInfo) else [m])]
        return _unbounded(base, [*metadata, *meta], where)
    if origin in (Union, types.UnionType):
        return [w for a in get_args(tp) if a is not type(None) for w in _unbounded(a, metadata, where)]
    if origin is Literal or tp is bool or tp is str:  # strings: bounded by StrictParams' default
        return []
    if tp in (int, float):
        low = any(isinstance(m, (at.Ge, at.Gt)) for m in metadata)
        high = any(isinstance(m, (at.Le, at.Lt)) for m in metadata)
        return [] if low and high else [where]
    if origin in (list, tuple, set):
        own = [] if any(isinstance(m, at.MaxLen) for m in metadata) else [where]
        return own + [w for a in get_args(tp) if a is not Ellipsis for w in _unbounded(a, [], where + "[]")]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return []  # walked as its own model
    return [f"{where} ({tp!r}: unknown type, give it bounds)"]


def test_every_kind_uses_strict_params_with_bounded_fields(studio):
    ctx, _ = studio
    kinds = ctx.jobs.kinds
    assert len(kinds) >= 12  # every module registered (sr, rife x2, style x4, lora x4, clf x2)
    problems = []
    for name, kind in sorted(kinds.items()):
        for model in _models(kind.params):
            if not issubclass(model, StrictParams):
                problems.append(f"{name}: {model.__name__} does not inherit StrictParams")
            for fname, f in model.model_fields.items():
                problems += [f"{name}: {model.__name__}.{w}" for w in _unbounded(f.annotation, list(f.metadata), fname)]
    assert problems == []


def _str_fields(model: type[BaseModel]) -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        if str in set(_leaf_types(f.annotation)) and get_origin(f.annotation) not in (list,) \
                and not any(get_origin(a) is list for a in get_args(f.annotation)):
            out.append(name)
    return out


def _float_fields(model: type[BaseModel]) -> list[str]:
    return [n for n, f in model.model_fields.items()
            if float in set(_leaf_types(f.annotation)) and get_origin(f.annotation) is not list
            and not any(get_origin(a) is list for a in get_args(f.annotation))]


def _errors(resp) -> list[dict]:
    assert resp.status_code == 422, resp.text[:300]
    return resp.json()["detail"]


def test_unknown_field_is_a_422_naming_it_for_every_kind(studio):
    ctx, client = studio
    for name, kind in sorted(ctx.jobs.kinds.items()):
        r = client.post("/jobs", json={"kind": name, "params": {"learning_rate_typo": 1}})
        bad = [e for e in _errors(r) if e["type"] == "extra_forbidden"]
        assert [e["loc"] for e in bad] == [["body", "params", "learning_rate_typo"]], name
        for model in _models(kind.params):
            if model is not kind.params:  # a nested model (lora.prepare_and_train's "train")
                field = next(n for n, f in kind.params.model_fields.items() if model in set(_leaf_types(f.annotation)))
                r = client.post("/jobs", json={"kind": name, "params": {field: {"nope": True}}})
                assert ["body", "params", field, "nope"] in [e["loc"] for e in _errors(r)], name
    assert ctx.store.list_jobs(None, None, 1000, 0) == []  # nothing was created


def test_5_mib_strings_are_refused_in_every_string_field(studio):
    ctx, client = studio
    checked = 0
    for name, kind in sorted(ctx.jobs.kinds.items()):
        for field in _str_fields(kind.params):
            r = client.post("/jobs", json={"kind": name, "params": {field: FIVE_MIB}})
            errs = [e for e in _errors(r) if e["loc"] == ["body", "params", field]]
            assert errs and errs[0]["type"] in ("string_too_long", "string_pattern_mismatch", "literal_error",
                                                "value_error"), (name, field, errs)
            assert FIVE_MIB not in r.text  # never echoed back
            checked += 1
    assert checked >= 40
    # the case of the issue: lora.train's trigger word, at the bound and one over
    tp = ctx.jobs.kinds["lora.train"].params
    limit = tp.model_fields["trigger_word"].metadata[0].max_length
    assert tp(trigger_word="t" * limit).trigger_word == "t" * limit
    with pytest.raises(ValidationError):
        tp(trigger_word="t" * (limit + 1))
    with pytest.raises(ValidationError, match="sample_prompts"):
        tp(sample_prompts=["p" * 2001])
    assert ctx.store.list_jobs(None, None, 1000, 0) == []


@pytest.mark.parametrize("literal", ["1e308", "-1e308", "NaN", "Infinity", "-Infinity", "1e999"])
def test_huge_and_non_finite_numbers_are_refused_in_every_float_field(studio, literal):
    ctx, client = studio
    checked = 0
    for name, kind in sorted(ctx.jobs.kinds.items()):
        for field in _float_fields(kind.params):
            # sent byte for byte: NaN / Infinity are not JSON but Python's parser takes them
            body = '{"kind": "%s", "params": {"%s": %s}}' % (name, field, literal)
            r = client.post("/jobs", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (name, field, r.text[:200])
            assert any(e["loc"][:3] == ["body", "params", field] for e in r.json()["detail"]), (name, field)
            checked += 1
    assert checked >= 15
    assert ctx.store.list_jobs(None, None, 1000, 0) == []


def test_engine_level_models_refuse_the_same(studio):
    ctx, _ = studio
    gatys = ctx.jobs.kinds["style.gatys"].params
    for value in (1e308, math.nan, math.inf, -math.inf):
        with pytest.raises(ValidationError, match="style_weight"):
            gatys(content="a.png", styles=["b.png"], style_weight=value)
    with pytest.raises(ValidationError, match="style_weights"):
        gatys(content="a.png", styles=["b.png"], style_weights=[math.nan])
    ok = gatys(content="a.png", styles=["b.png"], style_weight=1e9)
    assert ok.style_weight == 1e9
    with pytest.raises(ValidationError, match="extra"):
        gatys(content="a.png", styles=["b.png"], bogus=1)
    with pytest.raises(ValidationError):
        gatys(content="a" * (MAX_STR + 1), styles=["b.png"])


def test_safety_net_catches_a_field_without_its_own_bounds():
    class Loose(StrictParams):
        x: float = 0.0
        n: int = 0
        items: list[float] = []
        d: dict[str, float] = {}

    assert Loose(x=MAX_NUMBER, n=10**6).x == MAX_NUMBER
    for bad in (dict(x=1e308), dict(x=math.nan), dict(n=10**30), dict(items=[1.0] * 10_001),
                dict(items=[1e300]), dict(d={"a": 1e300}), dict(zzz=1)):
        with pytest.raises(ValidationError):
            Loose(**bad)
    # strict JSON (the REST path) too
    with pytest.raises(ValidationError):
        Loose.model_validate_json('{"x": 1e308}', strict=True)
    assert typing.get_type_hints(Loose)["x"] is float
