"""Generate models.json: pydantic 2.13.4's own schemas and validations for
signatures with pydantic models, as DSPy 3.3.1 and LiteLLM use them.

For each case's source (a signature file), with a stub dspy module (only
Signature, InputField and OutputField, which the source needs to import):

- notes: for each output field, DSPy's "must adhere to the JSON schema"
  text, json.dumps(_get_json_schema(annotation), ensure_ascii=False), with
  _get_json_schema copied from dspy/adapters/utils.py (3.3.1);
- schemas: for each output field, TypeAdapter(annotation).json_schema()
  in pydantic's key order (compact JSON);
- wire: the response_format LiteLLM sends for DSPy's DSPyProgramOutputs:
  _get_structured_outputs_response_format copied from
  dspy/adapters/json_adapter.py (3.3.1), then to_strict_json_schema copied
  from openai-python v2.53.0 src/openai/lib/_pydantic.py, written as the
  openai client writes the body (json.dumps, compact separators,
  ensure_ascii=False) in the key order type, json_schema{schema, name,
  strict};
- key_schema: that schema before to_strict_json_schema, as DSPy's cache
  key holds it (compact JSON);
- validations: TypeAdapter(annotation).validate_python(value) for decoded
  JSON values (what parse_value does for a non-str value), the result as
  model_dump(mode="json") or str(ValidationError).

Run: python3 generate.py > models.json (pydantic 2.13.4).
"""

import json
import sys
import types
from collections.abc import Mapping

import pydantic
from pydantic import TypeAdapter

assert pydantic.VERSION == "2.13.4", pydantic.VERSION

# --- stub dspy: just enough for a signature file to execute ---------------
dspy = types.ModuleType("dspy")


class _Signature:
    pass


class _FieldMarker:
    def __init__(self, kind, **kw):
        self.kind = kind


dspy.Signature = _Signature
dspy.InputField = lambda **kw: _FieldMarker("input", **kw)
dspy.OutputField = lambda **kw: _FieldMarker("output", **kw)
sys.modules["dspy"] = dspy


# --- dspy/adapters/utils.py (3.3.1) ----------------------------------------
def _get_json_schema(field_type):
    def move_type_to_front(d):
        if isinstance(d, Mapping):
            return {
                k: move_type_to_front(v) for k, v in sorted(d.items(), key=lambda item: (item[0] != "type", item[0]))
            }
        elif isinstance(d, list):
            return [move_type_to_front(item) for item in d]
        return d

    schema = pydantic.TypeAdapter(field_type).json_schema()
    schema = move_type_to_front(schema)
    return schema


# --- dspy/adapters/json_adapter.py (3.3.1), without ToolCalls --------------
def _get_structured_outputs_response_format(output_fields):
    fields = {name: (annotation, ...) for name, annotation in output_fields.items()}
    pydantic_model = pydantic.create_model(
        "DSPyProgramOutputs",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )
    schema = pydantic_model.model_json_schema()
    for prop in schema.get("properties", {}).values():
        prop.pop("json_schema_extra", None)

    def enforce_required(schema_part: dict):
        if schema_part.get("type") == "object":
            props = schema_part.get("properties")
            if props is not None:
                schema_part["required"] = list(props.keys())
                schema_part["additionalProperties"] = False
                for sub_schema in props.values():
                    if isinstance(sub_schema, dict):
                        enforce_required(sub_schema)
            else:
                schema_part["properties"] = {}
                schema_part["required"] = []
                schema_part["additionalProperties"] = False
        if schema_part.get("type") == "array" and isinstance(schema_part.get("items"), dict):
            enforce_required(schema_part["items"])
        for key in ("$defs", "definitions"):
            if key in schema_part:
                for def_schema in schema_part[key].values():
                    enforce_required(def_schema)

    enforce_required(schema)
    return schema


# --- openai-python v2.53.0 src/openai/lib/_pydantic.py ---------------------
def _ensure_strict_json_schema(json_schema, *, path, root):
    defs = json_schema.get("$defs")
    if isinstance(defs, dict):
        for def_name, def_schema in defs.items():
            _ensure_strict_json_schema(def_schema, path=(*path, "$defs", def_name), root=root)
    definitions = json_schema.get("definitions")
    if isinstance(definitions, dict):
        for definition_name, definition_schema in definitions.items():
            _ensure_strict_json_schema(definition_schema, path=(*path, "definitions", definition_name), root=root)
    typ = json_schema.get("type")
    if typ == "object" and "additionalProperties" not in json_schema:
        json_schema["additionalProperties"] = False
    properties = json_schema.get("properties")
    if isinstance(properties, dict):
        json_schema["required"] = [prop for prop in properties.keys()]
        json_schema["properties"] = {
            key: _ensure_strict_json_schema(prop_schema, path=(*path, "properties", key), root=root)
            for key, prop_schema in properties.items()
        }
    items = json_schema.get("items")
    if isinstance(items, dict):
        json_schema["items"] = _ensure_strict_json_schema(items, path=(*path, "items"), root=root)
    any_of = json_schema.get("anyOf")
    if isinstance(any_of, list):
        json_schema["anyOf"] = [
            _ensure_strict_json_schema(variant, path=(*path, "anyOf", str(i)), root=root)
            for i, variant in enumerate(any_of)
        ]
    all_of = json_schema.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            json_schema.update(_ensure_strict_json_schema(all_of[0], path=(*path, "allOf", "0"), root=root))
            json_schema.pop("allOf")
        else:
            json_schema["allOf"] = [
                _ensure_strict_json_schema(entry, path=(*path, "allOf", str(i)), root=root)
                for i, entry in enumerate(all_of)
            ]
    if json_schema.get("default", "NOT_GIVEN") is None:
        json_schema.pop("default")
    ref = json_schema.get("$ref")
    if ref and len(json_schema) > 1:
        resolved = resolve_ref(root=root, ref=ref)
        json_schema.update({**resolved, **json_schema})
        json_schema.pop("$ref")
        return _ensure_strict_json_schema(json_schema, path=path, root=root)
    return json_schema


def resolve_ref(*, root, ref):
    path = ref[2:].split("/")
    resolved = root
    for key in path:
        resolved = resolved[key]
    return resolved


# --- the cases --------------------------------------------------------------
HEADER = "from typing import Literal, Optional, Union\n\nimport dspy\nfrom pydantic import BaseModel, Field\n\n"

CASES = [
    {
        "name": "findings",
        "signature": "Audit",
        "source": HEADER + '''
class Location(BaseModel):
    """Where in the file."""

    path: str
    line: int = 0


class Finding(BaseModel):
    """One problem found in the code.

        Indented detail line.
    """

    title: str = Field(description="Short title")
    severity: Literal["low", "medium", "high"] = "low"
    score: float
    fixed: bool = False
    location: Optional[Location] = None
    where: Location = Field(description="Where in the file.")
    also: Location = Field(description="Another place")
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None
    counts: dict[str, int] = {}


class Audit(dspy.Signature):
    """Audit the code."""

    code: str = dspy.InputField()
    findings: list[Finding] = dspy.OutputField()
    main: Optional[Finding] = dspy.OutputField()
    summary: str = dspy.OutputField()
''',
        "validations": [
            ("findings", [{"title": "t", "score": 1, "where": {"path": "a.go"}, "also": {"path": "b", "line": "7"}}]),
            ("findings", [{"title": "t", "score": "2.5", "where": {"path": "a.go"}, "also": {"path": "b"}, "extra": 1, "fixed": "yes", "tags": ["x"], "location": None, "counts": {"a": "3"}}]),
            ("findings", [{"title": "t", "score": 1}]),
            ("findings", [{"score": "x", "severity": "urgent", "where": {"line": 1.5}, "also": []}, {"title": 3}]),
            ("findings", {"title": "t"}),
            ("findings", ["not a finding"]),
            ("main", None),
            ("main", {"title": "t", "score": 0, "where": {"path": "p"}, "also": {"path": "q"}, "location": {"path": "r", "line": True}}),
            ("main", {"title": "t", "score": 0, "where": {"path": "p"}, "also": {"path": "q"}, "location": "nowhere"}),
        ],
    },
    {
        "name": "inheritance",
        "signature": "Judge",
        "source": HEADER + '''
class Base(BaseModel):
    id: int
    label: str = "x"


class Verdict(Base):
    label: str = "y"
    ok: bool
    reasons: Union[list[str], None] = None


class Judge(dspy.Signature):
    claim: str = dspy.InputField()
    verdict: Verdict = dspy.OutputField()
    others: dict[str, Verdict] = dspy.OutputField()
''',
        "validations": [
            ("verdict", {"id": "12", "ok": "false"}),
            ("verdict", {"id": 1.0, "ok": 1, "reasons": ["a", 2]}),
            ("verdict", {"ok": True}),
            ("others", {"a": {"id": 1, "ok": True}, "b": {"id": "z", "ok": "maybe"}}),
        ],
    },
]


CASES.append({
    "name": "defaults",
    "signature": "Pack",
    "source": HEADER + '''
class Item(BaseModel):
    name: str = "n"
    qty: int = 1


class Box(BaseModel):
    """A box."""

    items: Optional[list[Item]] = None
    first: Item = Field(default_factory=Item)
    label: Literal["a", "b"] = "a"


class Pack(dspy.Signature):
    q: str = dspy.InputField()
    box: Box = dspy.OutputField()
    maybe: Union[Item, int] = dspy.OutputField()
''',
    "validations": [
        ("box", {}),
        ("box", {"items": [{"qty": "2"}, {}], "label": "c"}),
        ("box", {"items": [{"qty": "2"}, {"name": None}], "label": "b"}),
        ("maybe", {"name": "x"}),
        ("maybe", "5"),
        ("maybe", []),
        ("maybe", 2.0),
    ],
})


CASES.append({
    "name": "constraints",
    "signature": "Grade",
    "source": HEADER + '''
class Score(BaseModel):
    value: float = Field(0.5, ge=0.0, le=1.0, description="Between 0 and 1")
    step: float = Field(1.0, gt=0, multiple_of=0.25)
    rank: Optional[int] = Field(None, ge=1, lt=100)
    count: int = Field(0, multiple_of=2, le=10)
    label: str = Field("ok", min_length=2, max_length=5)
    tags: list[str] = Field(default_factory=list, min_length=0, max_length=2)
    notes: Optional[list[int]] = Field(None, min_length=1)
    tiny: float = Field(0.5, gt=2.5e-05, lt=1e17)


class Grade(dspy.Signature):
    essay: str = dspy.InputField()
    scores: list[Score] = dspy.OutputField()
''',
    "validations": [
        ("scores", [{}, {"value": "0.25", "step": 0.75, "rank": "99", "count": 4, "label": "abcde", "tags": ["a"], "notes": [1]}]),
        ("scores", [{"value": 1.5, "step": 0.3, "rank": 0, "count": 3, "label": "x", "tags": ["a", "b", "c"], "notes": []}]),
        ("scores", [{"value": -0.1, "step": 0, "rank": 100, "count": 12, "label": "abcdef", "tags": ["a", 1, 2], "notes": ["x"]}]),
        ("scores", [{"step": -1, "count": "5", "label": "é"}, {"step": 2.5e-5}]),
    ],
})


def annotations(ns, signature):
    cls = ns[signature]
    hints = cls.__annotations__
    outputs = {k: v for k, v in hints.items() if getattr(cls, k, None).kind == "output"}
    return outputs


def main():
    out = {
        "meta": {
            "pydantic": pydantic.VERSION,
            "dspy_code": "stanfordnlp/dspy 4ed377ee9 (3.3.1): dspy/adapters/utils.py _get_json_schema, dspy/adapters/json_adapter.py _get_structured_outputs_response_format",
            "openai_code": "openai-python v2.53.0 src/openai/lib/_pydantic.py _ensure_strict_json_schema",
        },
        "cases": [],
    }
    for case in CASES:
        ns = {}
        exec(compile(case["source"], case["name"] + ".py", "exec"), ns)
        outputs = annotations(ns, case["signature"])
        notes, schemas = {}, {}
        for name, ann in outputs.items():
            schemas[name] = json.dumps(TypeAdapter(ann).json_schema(), separators=(",", ":"), ensure_ascii=False)
            if ann is str:
                continue
            notes[name] = json.dumps(_get_json_schema(ann), ensure_ascii=False)
        has_dict = any(getattr(a, "__origin__", None) is dict for a in outputs.values())
        wire = key_schema = None
        if not has_dict:
            schema = _get_structured_outputs_response_format(outputs)
            key_schema = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
            schema = _ensure_strict_json_schema(schema, path=(), root=schema)
            rf = {"type": "json_schema", "json_schema": {"schema": schema, "name": "DSPyProgramOutputs", "strict": True}}
            wire = json.dumps(rf, separators=(",", ":"), ensure_ascii=False)
        validations = []
        for field, value in case["validations"]:
            v = {"field": field, "input": value}
            try:
                r = TypeAdapter(outputs[field]).validate_python(value)
                v["ok"] = True
                v["result"] = TypeAdapter(outputs[field]).dump_python(r, mode="json")
            except pydantic.ValidationError as e:
                v["ok"] = False
                v["error"] = str(e)
            validations.append(v)
        out["cases"].append({
            "name": case["name"],
            "signature": case["signature"],
            "source": case["source"],
            "notes": notes,
            "schemas": schemas,
            "wire": wire,
            "key_schema": key_schema,
            "validations": validations,
        })
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
