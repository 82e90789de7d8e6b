"""Review before publishing: the review record, the local review page, and the run report.

- `record`: review.json (approvals bound to content keys, scene seeds, the official thumbnail),
  read by the plan, the upload gate and the page; light (stdlib), so planning can import it
- `report`: the self-contained run report (report.html), written from run.json
- `files`: the table of files the page may serve, built from the episode's records only
- `runner`: "Rebuild": `zray run` in the background with the last run's effective options
- `app`: the local web app (Starlette; the `review` extra) and its security checks
- `cli`: `zray review` and `zray report`

Importing this package imports nothing heavy; `app` needs the `review` extra.
"""
