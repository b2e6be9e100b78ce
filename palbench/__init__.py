"""palbench: the Privileged Attribution Loss (Bonnard et al., ICPR 2022), correct and reproducible.

Modules follow the paper: :mod:`palbench.attribution` (eq. 2-3), :mod:`palbench.loss` (eq. 4-6),
:mod:`palbench.priors` (eq. 7-8), :mod:`palbench.models` (backbones and the layer catalogue).
"""

__version__ = "0.1.0"
