"""mirokit studio: reward control in the browser.

One worker thread owns the loaded pipelines and runs jobs from a FIFO queue (`jobs.JobQueue`); every image comes
from `MiroPipeline.__call__` with its per-step callback (progress, previews, cancel). `requests` turns what the
page asks for (a generation, a sweep strip, a two-reward grid, ask vs select, draft then final, model A/B) into
pipeline calls on identical noise; `scores` measures the images with the rewards the model's calibration names;
`history` keeps every result on disk with its settings in the PNG; `server` is the Starlette app and the page.
Start it with `mirokit studio MODEL`.
"""
