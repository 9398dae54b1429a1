"""The waiting-time forecast: learned from the office's own log, with an 80 % interval (docs/forecast.md).

- ``features.QueueState``: the online feature state (O(1) per event), ``features(now, service, priority)``;
- ``events``: the event stream, ``replay`` to training rows, the adapter from the controller's event log;
- ``model.Model.predict(features) -> (point_s, lo_s, hi_s)`` and the ``Fallback`` before there is history;
- ``train``: training off the command path, versioned model files, the background/nightly ``Trainer``;
- ``live.LiveForecast``: what the controller holds; ``evaluate``: the walk-forward evaluation.

Only the trainer imports scikit-learn; predicting needs numpy for loading and plain Python for the trees.
"""
