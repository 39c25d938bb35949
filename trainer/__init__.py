"""moodlib's trainer: reproduces the MediaEval 2019-2021 mood/theme papers and evaluates models.

Everything here works on the 56 MTG-Jamendo mood/theme tags in the official order
(:data:`moodlib.vocabulary.TAGS`); the command line is ``moodlib-train`` (:mod:`trainer.cli`).
"""


class TrainerError(Exception):
    """A trainer operation failed for a reason worth telling the user (a file, a download)."""
