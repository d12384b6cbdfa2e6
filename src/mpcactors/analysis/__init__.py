"""Attack and leak analysis: what each party, or two of them, can learn at each step.

The pieces, in the order a script uses them:

* :func:`record_run` / :func:`record` simulate one run with a :class:`Transcript` of
  every message and an observer that sees what each party holds (simulation only);
* :func:`party_view` / :func:`coalition_view` give what a party (or a pair pooling
  their data) has during a step;
* the attacks in :mod:`mpcactors.analysis.attacks` play a party against its view and
  score it against the ground truth, returning :class:`AttackResult`;
* :mod:`mpcactors.analysis.variants` holds deliberately broken protocols that the
  attacks must catch;
* :func:`plan_disclosures` measures, per analysis of the study plan, what is opened to
  whom and what it discloses (:func:`differencing_attack` on describe's real openings,
  :func:`leave_one_out_influence` for models);
* :func:`build_report` and :func:`write_report` produce the anonymity report that
  ``mpcactors analyze`` writes.

See ``docs/threat-model.md`` for the assumptions and what the results mean.
"""

from __future__ import annotations

from .attacks import (
    ALPHA,
    AttackResult,
    Disclosure,
    coalition_membership,
    coalition_reconstruction,
    disclosures,
    masked_value_linking,
    membership_inference,
    run_all,
    ttp_dictionary_attack,
    ttp_side_channel_inference,
)
from .attacks.differencing import Differencing, differencing_attack, run_describe_pair
from .disclosures import leave_one_out_influence, plan_disclosures
from .report import build_report, render_html, render_markdown, write_report
from .transcript import Entry, ForeignTrafficError, RecordingChannel, Transcript
from .views import PartyView, RecordedRun, coalition_view, party_view, record, record_run

__all__ = [
    "ALPHA",
    "AttackResult",
    "Differencing",
    "Disclosure",
    "Entry",
    "ForeignTrafficError",
    "PartyView",
    "RecordedRun",
    "RecordingChannel",
    "Transcript",
    "build_report",
    "coalition_membership",
    "coalition_reconstruction",
    "coalition_view",
    "differencing_attack",
    "disclosures",
    "leave_one_out_influence",
    "masked_value_linking",
    "membership_inference",
    "party_view",
    "plan_disclosures",
    "record",
    "record_run",
    "render_html",
    "render_markdown",
    "run_describe_pair",
    "run_all",
    "ttp_dictionary_attack",
    "ttp_side_channel_inference",
    "write_report",
]
