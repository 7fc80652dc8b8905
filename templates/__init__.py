"""The GitLab components, shipped in the wheel as `alops.components` for `alops rehearse`."""
