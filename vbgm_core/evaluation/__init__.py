"""`vbgm eval`: the paper's objective evaluation (METHOD.md §5) in one command.

For every video: generate with each control degree C and seed, plus two baselines in the same
run, and measure every piece with :func:`vbgm_core.metrics.control.evaluate` against the video:

* ``C=<c>``: the controlled sampler (Algorithm 1) at control degree c.
* ``unconditioned``: no video controls and no beat-timing encoding. Unlike the paper's
  unconditioned model, which ran free until EOS, our sampler always writes exactly the video's
  number of bars (the design: music never outlasts the video), so its length error is ~0 by
  construction.
* ``matched``: the training song (and whole-bar offset in it) with the best matching score
  (:func:`.baselines.matching_score`, METHOD.md §5), cut to the video's bars and decoded at its
  tempo.
* ``reference``: MusDr metrics (H, GS, SI) of held-out songs of the dataset, whole songs at
  their own tempo (the paper's "training data" row).

Writes REPORT_DIR/report.md (tables laid out like the paper's Tables 1 and 4, its numbers
beside ours), report.json, plots/ (metrics vs C, one score plot per video), midi/ and rhythm/.

Modules: ``runner`` (:func:`~.runner.run_eval`: videos → pieces → measured runs),
``baselines`` (the matched training song, the held-out reference row), ``report`` (the paper's
numbers, summaries, report.json / report.md, plots).
"""
