"""The `alops` commands, one module per area; `alops.cli` registers each module's `commands` on the root group."""
