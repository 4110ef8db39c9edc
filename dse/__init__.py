"""Design-space exploration: sweep the whole chain, find the Pareto front.

A study (YAML, :func:`load_study`) names the settings that vary, the objectives
and constraints; :func:`run_study` searches it (grid, random or NSGA-II) in
local processes or on a Dask cluster, storing every evaluated point so an
interrupted study resumes without repeating work. See docs/DSE.md.
"""

from .evaluate import evaluate_point
from .metrics import METRICS, Goal, Metric, Stage
from .results import pareto_mask
from .runner import StudyResult, run_study
from .store import PointStore
from .study import PointSettings, Study, load_study, study_from_dict

__all__ = [
    "METRICS",
    "Goal",
    "Metric",
    "PointSettings",
    "PointStore",
    "Stage",
    "Study",
    "StudyResult",
    "evaluate_point",
    "load_study",
    "pareto_mask",
    "run_study",
    "study_from_dict",
]
