"""The commands of ``palbench`` by what they work on: :mod:`~palbench.commands.data` (datasets, landmarks, priors)
and :mod:`~palbench.commands.models` (training, evaluation, inference). :mod:`palbench.cli` builds the parser
from them and holds the project's commands."""
