"""Sphinx configuration for m31clusters."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
if "KERAS_HOME" not in os.environ:  # a private Keras home, removed when the build ends
    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="m31clusters-docs-keras-")
    atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)
os.environ.setdefault("MPLBACKEND", "Agg")

import m31clusters  # noqa: E402

project = "m31clusters"
author = "The m31clusters developers"
copyright = "2026, The m31clusters developers"
release = m31clusters.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

sphinx_gallery_conf = {
    "examples_dirs": ["tutorials_src"],
    "gallery_dirs": ["tutorials"],
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "min_reported_time": 1,
}
suppress_warnings = ["config.cache"]

plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

numpydoc_show_class_members = False
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
default_role = "obj"
nitpicky = False
templates_path = []
exclude_patterns = ["_build", "tutorials_src/README.rst"]
html_theme = "alabaster"
html_static_path = []
