"""One recipe per figure of paper 000: Figure 1 (five committee settings) and Figure 6 (dropout).

``figure_spec`` says what a figure compares, ``compute_figure`` fills the stage cache (train, test
error, local energy, BP curves) and assembles the data, ``write_outputs`` draws and writes it.
"""

from localentropy.figures.errors import FigureError
from localentropy.figures.pipeline import FigureData, compute_figure, figure_from_solutions
from localentropy.figures.report import write_outputs
from localentropy.figures.spec import FigureSpec, figure_spec, parse_restart_ids, shard_ids

__all__ = ["FigureError", "FigureData", "FigureSpec", "compute_figure", "figure_from_solutions", "figure_spec", "parse_restart_ids",
           "shard_ids", "write_outputs"]
