"""A project set up: `alops new` (the scaffold), `alops init` (adopt a repository), DVC bootstrap, `alops demo`.

May import: every subpackage but alops.commands."""
