"""Worker processes for untrusted work: learner programs (``app.sandbox``) and pictures.

``pool`` is the server side (a bounded pool of fresh ``python -m <module>`` processes, killed
when they overrun); ``serve`` is the worker side (resource limits, CPU budget, the request loop).
Nothing here knows what the work is: each kind of worker brings its own handler.
"""
