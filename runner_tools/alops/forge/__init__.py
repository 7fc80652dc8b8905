"""GitLab and GitHub: the API clients, the local stand-in, and `alops rehearse` (the CI file run offline).

May import: alops.core, alops.data."""
