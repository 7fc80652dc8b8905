"""The project scaffold (a cookiecutter template), shipped inside the wheel as `alops.scaffold_template`."""
