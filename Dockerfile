# A runner image with alops preinstalled (the core, no torch): select it with the components' `image` input
# (GitLab) or as the job container (GitHub) and set `install: false`. Built and pushed by the kit's tag pipeline
# (kaniko, no daemon) as $CI_REGISTRY_IMAGE/runner:<version>. Add torch for your runners in an image of your own.
FROM python:3.11-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends git && rm -rf /var/lib/apt/lists/*
COPY dist/*.whl /tmp/
RUN python -m pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
