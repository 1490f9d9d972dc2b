"""Sphinx configuration of delaydeploy's documentation (``make docs``).

Pages are MyST Markdown; the API reference is generated from the docstrings (autodoc); the
tutorials in ``docs/tutorials/`` are executed by sphinx-gallery on every build, so a page
shows what the code does today. ``make docs`` builds with warnings as errors and nitpicky
references: a renamed function breaks the build.
"""

from __future__ import annotations

import os
from importlib import metadata

os.environ.setdefault("MPLBACKEND", "Agg")  # the tutorials plot; no screen here
import delaydeploy.exporters.lava.env  # noqa: E402,F401  (sets Lava up before anything imports it)

project = "delaydeploy"
author = "The delaydeploy developers"
copyright = "2026, the delaydeploy developers"
release = metadata.version("delaydeploy")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "sg_execution_times.rst", "tutorials/README.txt", "tutorials/*.py",
                    "generated/**/*.ipynb", "generated/**/*.py", "generated/**/*.zip", "generated/**/*.json"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"delaydeploy {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
autodoc_inherit_docstrings = False  # a subclass of another project's class shows only what we wrote

sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "generated/tutorials",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}

# Cross-references are checked (nitpicky); names from other projects resolve nowhere
# offline (no intersphinx), so they are let through by package.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|torch|nn|nir|nirtorch|h5py|lava|pyNN|nest|scipy|matplotlib|argparse|pathlib|os|typing|ty|"
               r"collections|dataclasses|zipfile|io|subprocess|enum|spikingjelly|tqdm|wave)(\..*)?"),
    (r"py:class", r"(AbstractProcess|AbstractResource|AbstractPyProcessModel|PyInPort|PyOutPort|PyLoihiProcessModel|"
                  r"ProcessParameters|LavaPyType|InPort|OutPort|Var|RunConfig|Loihi2SimCfg)"),
    (r"py:.*", r"(Path|PathLike|Any|Sequence|Iterable|Iterator|Callable|Mapping|Literal|NamedTuple|Dataset|"
               r"DataLoader|Tensor|ndarray|Module|Namespace|ArgumentParser|Figure|Axes|NodeCollection|Self)"),
    (r"py:class", r"(optional|callable|array-like|default .*)"),
]


def _resolve_by_suffix(app, env, node, contnode):
    """Resolve a short Python name (``:class:`Network```, written in the module that imports it) to
    the one documented object whose dotted name ends with it; several or none stay unresolved,
    and nitpicky mode reports them. Sphinx resolves short names only within the current module."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    domain = env.get_domain("py")
    kinds = domain.objtypes_for_role(node["reftype"]) or []
    matches = [name for name, entry in domain.objects.items()
               if (name == target or name.endswith("." + target)) and entry.objtype in kinds]
    if len(matches) != 1:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode)


def setup(app):
    app.connect("missing-reference", _resolve_by_suffix)
