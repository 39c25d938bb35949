"""Training data: the MTG-Jamendo split and mel-spectrograms (:mod:`trainer.data.jamendo`), the
dataset download (:mod:`trainer.data.download`) and a synthetic look-alike for tests
(:mod:`trainer.data.synth`)."""
