"""Importers: public datasets and plain folders → the canonical dataset (:mod:`palbench.data.canonical`).

Each ``import_<source>(src, out, ...)`` parses and checks the annotations, copies or crops the images into a
temporary folder, draws the splits, and renames the folder to ``out`` only on success; it returns the
written ``meta.json`` content. Errors are one-line :class:`~palbench.errors.DataError` /
:class:`~palbench.errors.ConfigError` naming the file, row or option.
"""

from palbench.data.importers.affectnet import import_affectnet
from palbench.data.importers.folder import import_folder
from palbench.data.importers.rafdb import import_rafdb

__all__ = ["import_affectnet", "import_folder", "import_rafdb"]
