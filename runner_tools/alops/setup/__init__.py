"""A project set up: `alops new` (the scaffold), `alops init` (adopt a repository), DVC bootstrap, `alops demo`.

May import: alops.core, alops.data, alops.al, alops.labels, alops.serve, alops.runs, alops.forge, alops.release,
alops.report."""
