"""Builds deeprec-lite: the Python package and the C++ KV-table op library in ops/.

The op library is compiled with g++ against the TensorFlow found at build time,
using the flags from tf.sysconfig. A built library only loads in the TensorFlow
minor version it was built for, so tensorflow is pinned to 2.21.* both here and
in pyproject.toml's build requirements. The dependencies are listed once, in
requirements.txt (and requirements-test.txt for the tests).
"""
import os
import shlex
import subprocess

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

OP_SOURCES = ["ops/build_info.cc", "ops/kv_table.cc", "ops/kv_table_ops.cc", "ops/kv_table_kernels.cc",
              "ops/kv_checkpoint.cc", "ops/kv_optimizer_ops.cc", "ops/kv_optimizer_kernels.cc", "ops/kv_partition_ops.cc",
              "ops/truncated_normal.cc"]
OP_HEADERS = ["ops/counting_bloom_filter.h", "ops/hash_index.h", "ops/initializer.h",
              "ops/kernel_checks.h", "ops/key_hash.h", "ops/kv_table.h", "ops/row_arena.h",
              "ops/parallel_tasks.h", "ops/truncated_normal.h"]


def requirements(name):
    """The requirement lines of a requirements file beside this one (no comments)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


class BuildTensorFlowOps(build_ext):
    """Compiles each op library with g++ and the installed TensorFlow's flags."""

    def build_extension(self, ext):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        output = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(output), exist_ok=True)
        cxx = shlex.split(os.environ.get("CXX", "g++"))
        command = (cxx + ["-std=c++17", "-O3", "-shared", "-fPIC",
                          "-Wno-deprecated-declarations", "-Wno-interference-size",
                          # 64-byte vectors pass between internal inline functions only
                          "-Wno-psabi",
                          # ops register through static initializers; hiding symbols lets
                          # the compiler inline across the library (no PLT calls)
                          "-fvisibility=hidden", "-fvisibility-inlines-hidden",
                          # initial values must not depend on the machine's FMA contraction
                          "-ffp-contract=off",
                          f'-DDRL_BUILT_FOR_TENSORFLOW="{tf.__version__}"']
                   + ext.sources + ["-o", output]
                   + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags())
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
    ext_modules=[Extension("deeprec_lite.kv._kv_ops", sources=OP_SOURCES, depends=OP_HEADERS)],
    cmdclass={"build_ext": BuildTensorFlowOps},
    install_requires=requirements("requirements.txt"),
    extras_require={"test": requirements("requirements-test.txt")},
    entry_points={"console_scripts": ["deeprec-lite=deeprec_lite.cli:main"]},
)
