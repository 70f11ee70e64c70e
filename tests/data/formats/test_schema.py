import json

import pytest

from deeprec_lite.data.formats.schema import (CategoricalField, LabelField, NumericField, Schema)
from deeprec_lite.data.formats.schema_io import (load_schema, save_schema, schema_from_dict,
                                         schema_from_yaml, schema_to_dict)


def _schema():
    return Schema(
        labels=[LabelField("click"), LabelField("buy")],
        categorical=[CategoricalField("user", dtype="string"),
                     CategoricalField("item"),
                     CategoricalField("hist", kind="sequence", max_len=20, table="item", keep="last"),
                     CategoricalField("tags", dtype="string", kind="multi", max_len=5),
                     CategoricalField("query", dtype="string", table="item", hash_to_int64=True)],
        numeric=[NumericField("price", transform="log"),
                 NumericField("age", transform="minmax", min=0, max=100, fill_value=-1.0)])


def test_tables_default_to_field_name_and_can_be_shared():
    s = _schema()
    assert s.tables() == {"user": ["user"], "item": ["item", "hist", "query"], "tags": ["tags"]}
    assert s.field("hist").table == "item"
    assert s.column_names == ["click", "buy", "user", "item", "hist", "tags", "query", "price",
                              "age"]
    # a hashed string field gives int64 ids, so it may share an int64 table
    assert [s.field(n).key_dtype for n in ("user", "item", "query")] == [
        "string", "int64", "int64"]
    assert s.field("user").default == "__missing__" and s.field("item").default == -1
    assert s.field("hist").is_ragged and not s.field("item").is_ragged


def test_dict_and_json_round_trip(tmp_path):
    s = _schema()
    assert schema_from_dict(schema_to_dict(s)) == s
    path = tmp_path / "schema.json"
    save_schema(s, str(path))
    assert load_schema(str(path)) == s
    assert [p.name for p in tmp_path.iterdir()] == ["schema.json"]  # no temporary left


def test_short_label_form_and_json_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"labels": ["y"], "categorical": [{"name": "a", "dtype": "string"}],
                                "numeric": [{"name": "x"}]}))
    s = load_schema(str(path))
    assert s.labels == (LabelField("y"),)
    assert s.categorical == (CategoricalField("a", dtype="string"),)


def test_yaml_needs_pyyaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("labels: [y]\ncategorical:\n  - {name: a}\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="PyYAML"):
            load_schema(str(path))
        with pytest.raises(ImportError, match="PyYAML"):
            schema_from_yaml("labels: [y]")
    else:
        assert load_schema(str(path)).categorical == (CategoricalField("a"),)


@pytest.mark.parametrize("make, pattern", [
    (lambda: CategoricalField("a", dtype="float"), r"field 'a'.*dtype.*'float'"),
    (lambda: CategoricalField("a", kind="bag"), r"field 'a'.*kind.*'bag'"),
    (lambda: CategoricalField("a", kind="sequence"), r"field 'a'.*sequence.*max_len"),
    (lambda: CategoricalField("a", max_len=3), r"field 'a'.*max_len=3.*single"),
    (lambda: CategoricalField("a", kind="multi", max_len=0), r"field 'a'.*max_len.*0"),
    (lambda: CategoricalField("a", default="x"), r"field 'a'.*default.*'x'"),
    (lambda: CategoricalField("a", dtype="string", default=3), r"field 'a'.*default.*3"),
    (lambda: CategoricalField("a", default=2 ** 63),
     r"field 'a'.*default.*int64.*9223372036854775808"),
    (lambda: CategoricalField("a", default=True), r"field 'a'.*default.*True"),
    (lambda: CategoricalField("a", keep="middle"), r"field 'a'.*keep.*'middle'"),
    (lambda: CategoricalField("a", hash_to_int64=True), r"field 'a'.*hash_to_int64.*'int64'"),
    (lambda: CategoricalField("a", dtype="string", hash_to_int64=1),
     r"field 'a'.*hash_to_int64.*1"),
    (lambda: NumericField("x", transform="sqrt"), r"field 'x'.*transform.*'sqrt'"),
    (lambda: NumericField("x", transform="minmax"), r"field 'x'.*min.*max"),
    (lambda: NumericField("x", transform="minmax", min=3, max=3), r"field 'x'.*min < max.*3"),
    (lambda: NumericField("x", min=1), r"field 'x'.*min/max only"),
    (lambda: NumericField("x", fill_value=float("nan")), r"field 'x'.*fill_value.*nan"),
    (lambda: NumericField("x", fill_value=None), r"field 'x'.*fill_value.*None"),
    (lambda: NumericField("x", transform="minmax", min=0, max=10 ** 400),
     r"field 'x'.*max must be finite"),
    (lambda: LabelField("y", dtype="bool"), r"field 'y'.*dtype.*'bool'"),
    (lambda: LabelField(""), r"non-empty"),
    (lambda: CategoricalField("__work_item__"), r"reserved"),
])
def test_field_validation_names_field_and_value(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_schema_validation():
    with pytest.raises(ValueError, match="'a' appears twice"):
        Schema(labels=[LabelField("a")], categorical=[CategoricalField("a")])
    with pytest.raises(ValueError, match="table 'items'.*'a'.*'int64'.*'b'.*'string'"):
        Schema(categorical=[CategoricalField("a", table="items"),
                            CategoricalField("b", dtype="string", table="items")])
    with pytest.raises(ValueError, match="table 'items'.*'a'.*'string'.*'b'.*'int64'"):
        Schema(categorical=[CategoricalField("a", dtype="string", table="items"),
                            CategoricalField("b", dtype="string", table="items",
                                             hash_to_int64=True)])
    with pytest.raises(ValueError, match="no feature fields"):
        Schema(labels=[LabelField("y")])
    with pytest.raises(ValueError, match="no field 'zz'"):
        _schema().field("zz")


def test_dict_validation():
    with pytest.raises(ValueError, match=r"field 'a'.*unknown key.*'vocab'"):
        schema_from_dict({"categorical": [{"name": "a", "vocab": 3}]})
    with pytest.raises(ValueError, match="unknown section.*'features'"):
        schema_from_dict({"features": []})
    with pytest.raises(ValueError, match="has no 'name'"):
        schema_from_dict({"categorical": [{"dtype": "int64"}]})
    with pytest.raises(ValueError, match=r"field 'a'.*kind.*'bag'"):
        schema_from_dict({"categorical": [{"name": "a", "kind": "bag"}]})


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_schema(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid"):
        load_schema(str(bad))
    huge = tmp_path / "huge.json"
    huge.write_text('{"numeric": [{"name": "x", "transform": "minmax", "min": 0, "max": 1%s}]}'
                    % ("0" * 400))
    with pytest.raises(ValueError, match=r"huge.json.*field 'x'.*max must be finite"):
        load_schema(str(huge))
    txt = tmp_path / "s.txt"
    txt.write_text("{}")
    with pytest.raises(ValueError, match="unknown extension"):
        load_schema(str(txt))
