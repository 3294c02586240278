"""Build gpugrad's API reference from its docstrings with pdoc, as static HTML.

    pip install -e '.[docs]'
    python docs/build_api.py [folder]      # default: build/api; open build/api/index.html

Fails (exit status 1) when pdoc warns, for instance because a module cannot be imported,
or when a module of the package got no page, so that CI notices a reference that broke.
"""
import pathlib
import pkgutil
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    folder = pathlib.Path(argv[0]) if argv else ROOT / "build" / "api"
    sys.path.insert(0, str(ROOT))  # the gpugrad of this checkout, installed or not
    try:
        import pdoc
    except ImportError:
        print("docs/build_api.py: pdoc is not installed; run: pip install -e '.[docs]'", file=sys.stderr)
        return 1
    import gpugrad

    with warnings.catch_warnings(record=True) as caught:
        pdoc.pdoc("gpugrad", output_directory=folder)
    modules = ["gpugrad"] + [info.name for info in pkgutil.walk_packages(gpugrad.__path__, "gpugrad.")]
    missing = [name for name in modules if not (folder / (name.replace(".", "/") + ".html")).is_file()]
    for warning in caught:
        print(f"docs/build_api.py: pdoc warned: {warning.message}", file=sys.stderr)
    for name in missing:
        print(f"docs/build_api.py: no page for module {name}", file=sys.stderr)
    if caught or missing:
        return 1
    print(f"API reference of {len(modules)} modules written to {folder}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
