"""The public layers document themselves: formula, shapes, a runnable Example, paper references.

Every class in ``deeprec_lite.layers.__all__`` must have an ``Example:`` section written as
doctest (``>>>``) lines whose expected outputs include the shape it produces; the examples
are executed and their printed output compared with what the docstring claims, so an
example with a wrong shape (or one that raises) fails. No docstring or comment in the
package may point at files outside the project.
"""
import doctest
import inspect
import pathlib
import re

import pytest

from deeprec_lite.compat import keras
import deeprec_lite.layers as layers

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPECTED = {
    "AutoDis", "DHEEmbedding", "DoubleHashingEmbedding", "KVEmbedding",  # embeddings
    "KVEmbeddingGroup",
    "Bilinear", "CIN", "CoActionUnit", "CrossNet", "CrossNetMix", "CrossNetV2", "DNN",
    "DynInt", "EulerNet", "FM", "GatedCrossNet", "InnerProduct", "OuterProduct", "PIN",
    "RFM",  # interactions
    "AutoFISGate", "FRNet", "GRDA", "SENET",  # feature selection
}
FORBIDDEN = ("LAYERS.md", "../shared", "shared/LAYERS")
SECTION = re.compile(r"^(?P<indent>[ ]*)(?P<name>[A-Z][A-Za-z ]*):[ ]*$")
SHAPE_OUTPUT = re.compile(r"TensorShape\(\[[\d, ]*\]\)")


def own_doc(cls):
    """The class's own docstring, cleaned (not one inherited from a Keras base class)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""


def public_classes():
    return sorted(name for name in layers.__all__ if inspect.isclass(getattr(layers, name)))


def section(doc, name):
    """The body of the ``name:`` section of a cleaned docstring (None if absent)."""
    lines = doc.splitlines()
    for start, line in enumerate(lines):
        m = SECTION.match(line)
        if m and m.group("name") == name:
            indent = len(m.group("indent"))
            body = []
            for nxt in lines[start + 1:]:
                other = SECTION.match(nxt)
                if other and len(other.group("indent")) <= indent:
                    break
                body.append(nxt)
            return "\n".join(body)
    return None


def run_example(text, name):
    """Run the doctest lines of ``text``; return (failures, output report)."""
    test = doctest.DocTestParser().get_doctest(text, {}, name, None, 0)
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    failed, _ = runner.run(test, out=report.append, clear_globs=True)
    return failed, test, "".join(report)


def test_every_public_layer_is_covered():
    assert set(public_classes()) == EXPECTED


@pytest.mark.parametrize("name", public_classes())
def test_docstring_sections(name):
    cls = getattr(layers, name)
    assert issubclass(cls, (keras.layers.Layer, keras.optimizers.Optimizer)), name
    doc = own_doc(cls)
    assert doc, f"{name} has no docstring of its own"
    assert section(doc, "Args") is not None, f"{name}: no Args section"
    assert section(doc, "References") is not None, f"{name}: no References section"
    if issubclass(cls, keras.layers.Layer):
        assert re.search(r"^Input shape", doc, re.M), f"{name}: no 'Input shape' description"
        assert re.search(r"^Output shape", doc, re.M), f"{name}: no 'Output shape' description"
    else:
        assert re.search(r"^Shapes:", doc, re.M), f"{name}: no 'Shapes:' description"
    for word in FORBIDDEN:
        assert word not in doc, f"{name}'s docstring refers to {word}"


@pytest.mark.parametrize("name", public_classes())
def test_example_runs_and_shows_its_shape(name):
    doc = own_doc(getattr(layers, name))
    example = section(doc, "Example")
    assert example is not None, f"{name}: no Example section"
    failed, test, report = run_example(example, name)
    assert test.examples, f"{name}: the Example has no >>> lines"
    assert test.examples[0].source.startswith(f"from deeprec_lite.layers import {name}"), (
        f"{name}: the Example must be self-contained, starting with its import")
    assert any(SHAPE_OUTPUT.search(e.want) for e in test.examples), (
        f"{name}: the Example shows no output shape")
    assert failed == 0, f"{name}: the Example does not produce what it claims:\n{report}"


def test_a_wrong_example_fails():
    """The checker itself: a claimed shape that the layer does not produce is caught."""
    wrong = """
    >>> from deeprec_lite.layers import FM
    >>> import tensorflow as tf
    >>> FM()(tf.random.normal([2, 3, 4])).shape
    TensorShape([2, 4])
    """
    failed, _, report = run_example(wrong, "wrong")
    assert failed == 1 and "TensorShape([2, 1])" in report
    raising = """
    >>> from deeprec_lite.layers import FM
    >>> FM(output_mode="bogus")
    TensorShape([2, 1])
    """
    assert run_example(raising, "raising")[0] == 1


def test_no_references_to_files_outside_the_project():
    offenders = []
    for folder in ("deeprec_lite", "models"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(ROOT)}: {w}" for w in FORBIDDEN if w in text]
    assert not offenders, "\n".join(offenders)
