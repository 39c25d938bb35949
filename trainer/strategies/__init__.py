"""Training strategies of the MediaEval papers: how one batch updates the network(s).

- :mod:`~trainer.strategies.standard`: one network, one loss (every paper's baseline step), and
  the loss wrapper every strategy shares (:class:`~trainer.strategies.standard.TrainingLoss`:
  masked targets, per-example losses).
- :mod:`~trainer.strategies.coteaching`: two networks teach each other with their small-loss
  examples (Han et al. 2018; SELAB-HCMUS, MediaEval 2021).
- :mod:`~trainer.strategies.noisy_student`: teacher pseudo-labels with confidence thresholds and
  masks, a noisier student (Xie et al. 2020; Mirable, MediaEval 2021).
- :mod:`~trainer.strategies.averaging`: stochastic weight averaging every few epochs and the
  averaged snapshots (Izmailov et al. 2018; CP-JKU, MediaEval 2019).

The epoch loop, validation, checkpoints and logs are :mod:`trainer.train`'s.
"""
