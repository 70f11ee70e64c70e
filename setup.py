"""Builds deeprec-lite: the Python package and the C++ op libraries in ops/.

Two op libraries: the KV tables (deeprec_lite.kv._kv_ops) and the file readers' tf.data
op (deeprec_lite.data.formats._arrow_reader_ops). They are compiled with g++ against the
TensorFlow found at build time, using the flags from tf.sysconfig; the readers also
against the Arrow C++ headers and libraries that the pyarrow wheel ships. A built library
only loads in the TensorFlow minor version (and pyarrow major version) it was built for,
so both are pinned here and in pyproject.toml's build requirements. The dependencies are listed once, in
requirements.txt (and requirements-test.txt for the tests).
"""
import glob
import os
import shlex
import subprocess

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

OP_SOURCES = ["ops/build_info.cc", "ops/kv_table.cc", "ops/kv_table_ops.cc", "ops/kv_table_kernels.cc",
              "ops/kv_checkpoint.cc", "ops/kv_optimizer_ops.cc", "ops/kv_optimizer_kernels.cc", "ops/kv_partition_ops.cc",
              "ops/truncated_normal.cc"]
OP_HEADERS = ["ops/counting_bloom_filter.h", "ops/distinct_keys.h", "ops/embedding_pooling.h",
              "ops/hash_index.h",
              "ops/initializer.h",
              "ops/kernel_checks.h", "ops/key_hash.h", "ops/kv_table.h", "ops/row_arena.h",
              "ops/parallel_tasks.h", "ops/saturating_count.h", "ops/table_group.h",
              "ops/truncated_normal.h"]
# The file readers' tf.data op. arrow_batch_reader.cc includes only Arrow's headers (C++20,
# from the pyarrow wheel); the others only TensorFlow's (C++17). Linked against the Arrow
# libraries that pyarrow ships, found through pyarrow's directory at run time.
READER_SOURCES = ["ops/build_info.cc", "ops/arrow_dataset_op.cc", "ops/arrow_batch_reader.cc"]
ARROW_SOURCES = {"ops/arrow_batch_reader.cc"}
ARROW_LIBRARIES = ["arrow", "parquet", "arrow_compute"]


def requirements(name):
    """The requirement lines of a requirements file beside this one (no comments)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def arrow_flags():
    """(compile flags, link flags) for the Arrow C++ libraries of the installed pyarrow."""
    import pyarrow

    library_dir = pyarrow.get_library_dirs()[0]
    libraries = []
    for name in ARROW_LIBRARIES:  # the wheel ships versioned files only (libarrow.so.2600)
        found = sorted(glob.glob(os.path.join(library_dir, f"lib{name}.so.*")), key=len)
        if not found:
            raise RuntimeError(f"pyarrow at {library_dir} has no lib{name}.so.*")
        libraries.append(found[0])
    # $ORIGIN: an installed package finds pyarrow beside it in site-packages, an in-place
    # build in the pyarrow it was built against.
    rpath = f"-Wl,-rpath,$ORIGIN/../../../pyarrow:{library_dir}"
    return ["-isystem", pyarrow.get_include()], libraries + [rpath]


class BuildTensorFlowOps(build_ext):
    """Compiles each op library with g++ and the installed TensorFlow's flags."""

    def build_extension(self, ext):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        output = self.get_ext_fullpath(ext.name)
        if not (self.force or newer_group(ext.sources + ext.depends, output)):
            print(f"{output} is up to date")
            return
        os.makedirs(os.path.dirname(output), exist_ok=True)
        objects_dir = os.path.join(self.build_temp, ext.name)
        os.makedirs(objects_dir, exist_ok=True)
        cxx = shlex.split(os.environ.get("CXX", "g++"))
        common = ["-O3", "-fPIC",
                  "-Wno-deprecated-declarations", "-Wno-interference-size",
                  # 64-byte vectors pass between internal inline functions only
                  "-Wno-psabi",
                  # ops register through static initializers; hiding symbols lets
                  # the compiler inline across the library (no PLT calls)
                  "-fvisibility=hidden", "-fvisibility-inlines-hidden",
                  # initial values must not depend on the machine's FMA contraction
                  "-ffp-contract=off",
                  # no errno from sqrt / log and no floating-point traps: the optimizer
                  # loops vectorize; every result stays the same (IEEE operations, no
                  # reassociation), only errno and exception flags are left out
                  "-fno-math-errno", "-fno-trapping-math",
                  f'-DDRL_BUILT_FOR_TENSORFLOW="{tf.__version__}"']
        tf_compile = [f for f in tf.sysconfig.get_compile_flags() if not f.startswith("--std")]
        # tsl/platform/fingerprint.h (the readers' id hashing) includes <farmhash.h>
        tf_compile += ["-isystem", os.path.join(tf.sysconfig.get_include(), "external",
                                                "farmhash_archive", "src")]
        abi = [f for f in tf_compile if "_GLIBCXX_USE_CXX11_ABI" in f]
        uses_arrow = any(source in ARROW_SOURCES for source in ext.sources)
        arrow_compile, arrow_link = arrow_flags() if uses_arrow else ([], [])
        objects = []
        for source in ext.sources:
            obj = os.path.join(objects_dir, os.path.basename(source) + ".o")
            if source in ARROW_SOURCES:
                flags = ["-std=c++20"] + arrow_compile + abi
            else:
                flags = ["-std=c++17"] + tf_compile
            command = cxx + common + flags + ["-c", source, "-o", obj]
            print(" ".join(command))
            subprocess.check_call(command)
            objects.append(obj)
        command = (cxx + ["-shared"] + objects + ["-o", output]
                   + tf.sysconfig.get_link_flags() + arrow_link)
        print(" ".join(command))
        subprocess.check_call(command)


setup(
    name="deeprec-lite",
    version="0.1.0",
    description="KV embedding variables and CTR ranking models for TensorFlow / tf_keras",
    python_requires=">=3.10",
    # The zoo lives in models/ and installs as deeprec_lite.models (no top-level `models`).
    packages=find_packages(include=["deeprec_lite", "deeprec_lite.*"]) + ["deeprec_lite.models"],
    package_dir={"deeprec_lite.models": "models"},
    ext_modules=[Extension("deeprec_lite.kv._kv_ops", sources=OP_SOURCES, depends=OP_HEADERS),
                 Extension("deeprec_lite.data.formats._arrow_reader_ops", sources=READER_SOURCES,
                           depends=["ops/arrow_batch_reader.h"])],
    cmdclass={"build_ext": BuildTensorFlowOps},
    install_requires=requirements("requirements.txt"),
    extras_require={"test": requirements("requirements-test.txt")},
    entry_points={"console_scripts": ["deeprec-lite=deeprec_lite.cli:main"]},
)
