"""What a reviewer reads: the merge-request report (metrics, params, plots, both models rescored), the pick among
parallel candidates, and the drift issue.

May import: alops.core, alops.data, alops.al, alops.labels, alops.serve, alops.runs, alops.forge, alops.release."""
