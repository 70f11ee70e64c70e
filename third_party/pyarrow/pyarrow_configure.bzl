"""Repository rule exposing the Arrow C++ headers and libraries of the pip-installed pyarrow
to Bazel as @local_config_pyarrow (the wheel ships them: pyarrow.get_include())."""

def _python(ctx):
    return ctx.os.environ.get("PYTHON_BIN_PATH", "python3")

def _pyarrow_configure_impl(ctx):
    script = ("import glob, os, pyarrow; d = pyarrow.get_library_dirs()[0]; " +
              "print(pyarrow.get_include()); " +
              "print(' '.join(sorted(glob.glob(os.path.join(d, 'lib%s.so.*' % n)), key=len)[0] " +
              "for n in ('arrow', 'parquet', 'arrow_compute')))")
    result = ctx.execute([_python(ctx), "-c", script])
    if result.return_code != 0:
        fail("cannot import pyarrow with %s: %s" % (_python(ctx), result.stderr))
    include_dir, libraries = result.stdout.strip().split("\n")[-2:]
    ctx.symlink(include_dir, "include")
    names = []
    for library in libraries.split(" "):
        name = library.split("/")[-1]
        ctx.symlink(library, name)
        names.append(name)
    ctx.template("BUILD", ctx.attr._build_tpl, {"%{libraries}": repr(names)})

pyarrow_configure = repository_rule(
    implementation = _pyarrow_configure_impl,
    environ = ["PYTHON_BIN_PATH"],
    attrs = {"_build_tpl": attr.label(default = Label("//third_party/pyarrow:BUILD.tpl"))},
)
