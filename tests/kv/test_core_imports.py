"""The KV core (deeprec_lite/kv/) imports no Keras and nothing of the front end,
directly or through another module of the project: checked on the import statements
of every module it reaches (TensorFlow loads Keras by itself, so sys.modules cannot tell)."""
import ast
import os
import sys

import deeprec_lite

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(deeprec_lite.__file__)))
# what the core may import from the project: itself, the shared checks and the package root
ALLOWED = ("deeprec_lite.kv", "deeprec_lite._checks", "deeprec_lite._files")
KERAS = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras",
         "tensorflow_recommenders")


def module_file(module):
    path = os.path.join(PACKAGE_ROOT, *module.split("."))
    return path + ".py" if os.path.isfile(path + ".py") else os.path.join(path, "__init__.py")


def imported_modules(module):
    """(imported module, line) of every import statement in `module`, at any depth."""
    path = module_file(module)
    tree = ast.parse(open(path).read(), path)
    is_package = path.endswith("__init__.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = module.split(".")[:len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([base] if base else []))
            yield base, node.lineno
            for alias in node.names:  # `from package import module`
                if os.path.exists(module_file(f"{base}.{alias.name}")):
                    yield f"{base}.{alias.name}", node.lineno


def is_within(module, prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def core_import_violations():
    core = sorted(f"deeprec_lite.kv.{name[:-3]}" if name != "__init__.py" else "deeprec_lite.kv"
                  for name in os.listdir(os.path.join(PACKAGE_ROOT, "deeprec_lite", "kv"))
                  if name.endswith(".py"))
    seen, queue, violations = set(core), list(core), []
    while queue:
        module = queue.pop()
        for imported, line in imported_modules(module):
            where = f"{module_file(module)}:{line} imports {imported}"
            if is_within(imported, KERAS):
                violations.append(where)
            elif imported.startswith("deeprec_lite") and imported != "deeprec_lite":
                if not is_within(imported, ALLOWED):
                    violations.append(where)
                elif imported not in seen and os.path.exists(module_file(imported)):
                    seen.add(imported)
                    queue.append(imported)
    return violations, seen


def test_the_kv_core_imports_neither_keras_nor_the_front_end():
    violations, reached = core_import_violations()
    assert "deeprec_lite.kv.variable" in reached and "deeprec_lite.kv.sparse_optimizers" in reached
    assert violations == []


def test_the_check_finds_a_keras_import(tmp_path, monkeypatch):
    fake_root = tmp_path / "root"
    (fake_root / "deeprec_lite" / "kv").mkdir(parents=True)
    (fake_root / "deeprec_lite" / "kv" / "__init__.py").write_text("from . import table\n")
    (fake_root / "deeprec_lite" / "kv" / "table.py").write_text(
        "import tensorflow as tf\nfrom deeprec_lite import compat\n"
        "def f():\n    from tf_keras import layers\n")
    (fake_root / "deeprec_lite" / "compat.py").write_text("import tf_keras\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_ROOT", str(fake_root))
    violations, _ = core_import_violations()
    assert sorted(v.rsplit(" imports ", 1)[1] for v in violations) == ["deeprec_lite.compat",
                                                                        "tf_keras"]
