"""Remote training jobs: spec (what to run), preflight, launch, runner, store, collect."""
