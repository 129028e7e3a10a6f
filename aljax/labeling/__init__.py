"""Human-in-the-loop labeling: active learning on the user's own unlabeled data.

* :mod:`~aljax.labeling.project` — the project store (settings, labels, history; load and save);
* :mod:`~aljax.labeling.inputs` — image folders and .npy/.npz arrays in, the expert's answers CSV;
* :mod:`~aljax.labeling.session` — fit and propose (the only calls into the engine), oracles, rounds;
* :mod:`~aljax.labeling.report` — proposals with contact sheets, status and stopping criteria, export;
* :mod:`~aljax.labeling.cli` — the ``aljax label`` subcommands.
"""

from aljax.labeling.inputs import CsvOracle, init_project, load_array, load_images, read_answers
from aljax.labeling.project import (
    BATCHES, CONFIG, FEATURES, FIT, HISTORY, ITEMS, LABELS, Label, LabelingError, Project, Settings, add_labels,
    check_answers, fix_label, load_project, relink, require_files)
from aljax.labeling.report import (
    PROPOSAL_COLUMNS, Criterion, Status, batch_path, contact_sheet, export, format_status, status, stopping_criteria,
    write_proposal)
from aljax.labeling.session import (
    FitState, Oracle, Proposal, SimulatedOracle, cold_start, current_fit, label_round, load_fit, propose)

__all__ = [
    "BATCHES", "CONFIG", "Criterion", "CsvOracle", "FEATURES", "FIT", "FitState", "HISTORY", "ITEMS", "LABELS",
    "Label", "LabelingError", "Oracle", "PROPOSAL_COLUMNS", "Project", "Proposal", "Settings", "SimulatedOracle",
    "Status", "add_labels", "batch_path", "check_answers", "cold_start", "contact_sheet", "current_fit", "export",
    "fix_label", "format_status", "init_project", "label_round", "load_array", "load_fit", "load_images",
    "load_project", "propose", "read_answers", "relink", "require_files", "status", "stopping_criteria",
    "write_proposal",
]
