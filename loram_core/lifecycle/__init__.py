"""The lifecycle stages over one RUN_DIR: prune -> train -> recover -> merge -> eval -> report."""
