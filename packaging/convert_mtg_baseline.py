"""Convert the official MTG-Jamendo mood/theme baseline into the shipped ``mtg-baseline`` pack.

The baseline's ``best_model.pth`` (a pickle) is read with ``torch.load(weights_only=True)``,
its sha256 checked against the published one, loaded strictly into
``moodlib.models.vggish.VggishBaseline`` and written as safetensors. Its decisions use the
official F-optimal per-tag thresholds published with the baseline's test results
(``baseline_vggish_thresholds.txt``); their values go into the manifest. It writes, into
``moodlib/resources/packs/mtg-baseline/``:

- ``weights.safetensors`` and ``manifest.json`` (the source's sha256 in its provenance);
- ``LICENSE``: the Apache 2.0 text the baseline's code and weights are published under;
- ``README.md``: attribution to the MTG-Jamendo authors, source, what was converted and how.

    python packaging/convert_mtg_baseline.py [--checkpoint best_model.pth]
        [--thresholds baseline_vggish_thresholds.txt] [--licence APACHE-2.0-TEXT]

The defaults read ``../shared`` (the checkpoint and the results) and Debian's
``/usr/share/common-licenses/Apache-2.0``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from moodlib import vocabulary
from moodlib.packs import PackError, sha256_file
from moodlib.packstore import (
    BUILTIN_PACKS,
    MTG_BASELINE,
    MTG_BASELINE_SHA256,
    MTG_BASELINE_URL,
    PackStore,
)
from trainer.data.jamendo import DatasetError, read_thresholds

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEFAULT_CHECKPOINT = SHARED / "models" / "mtg-baseline" / "best_model.pth"
DEFAULT_THRESHOLDS = SHARED / "data" / "mtg-jamendo" / "results" / "baseline_vggish_thresholds.txt"
DEFAULT_LICENCE = Path("/usr/share/common-licenses/Apache-2.0")
# The Apache License 2.0 text as apache.org publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"

README = """\
# The official MTG-Jamendo mood/theme baseline, converted to safetensors

The VGG-ish CNN published with the MTG-Jamendo dataset as the baseline of the MediaEval
"Emotion and Themes in Music" task, trained on the mood/theme split-0 mel-spectrograms:

D. Bogdanov, M. Won, P. Tovstogan, A. Porter and X. Serra, "The MTG-Jamendo Dataset for
Automatic Music Tagging", Machine Learning for Music Discovery Workshop, ICML 2019.
Music Technology Group, Universitat Pompeu Fabra; code and weights:
<https://github.com/MTG/mtg-jamendo-dataset> (`scripts/baseline`), Apache License 2.0, see
`LICENSE`. The dataset's audio and annotations are licensed separately (CC BY-NC-SA 4.0);
this pack holds only the network's weights and the baseline's published thresholds.

## What was converted

- `weights.safetensors`: the state_dict of `scripts/baseline/models/best_model.pth`
  ({url}), sha256 `{sha256}`, unchanged (float32; every tensor loads strictly into
  `moodlib.models.vggish.VggishBaseline`). The `.pth` itself (a pickle) is not shipped.
- `manifest.json` thresholds: the official F-optimal per-tag thresholds of the baseline on the
  split-0 test set, `results/mediaeval/baseline_vggish_thresholds.txt` of the same repository
  (sha256 `{thresholds_sha256}`), 56 values.

Reported test scores of the baseline: ROC-AUC-macro 0.7258, PR-AUC-macro 0.1077.

## How

`packaging/convert_mtg_baseline.py` reads the checkpoint with `torch.load(weights_only=True)`
(no code in a pickle is ever run), checks its sha256, loads it into the architecture and writes
safetensors through `moodlib.packstore.PackStore.import_mtg_baseline`, which
`moodlib models install mtg-baseline` also uses when a store lacks this shipped pack.

The network reads one centred 29.1-s segment (96 mel bands x 1366 frames at 12 kHz, the
dataset's dB scale); a shorter track is repeated to that length.
"""


def convert(checkpoint: Path, thresholds_file: Path, licence: Path, out: Path) -> None:
    if sha256_file(licence) != APACHE_2_SHA256:
        raise SystemExit(f"{licence}: not the Apache License 2.0 text (sha256 differs)")
    thresholds = dict(zip(vocabulary.TAGS, read_thresholds(thresholds_file).tolist(), strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        readme = Path(tmp) / "README.md"
        readme.write_text(
            README.format(
                url=MTG_BASELINE_URL,
                sha256=MTG_BASELINE_SHA256,
                thresholds_sha256=sha256_file(thresholds_file),
            ),
            encoding="utf-8",
        )
        # Built in a store of its own, then moved over the shipped folder.
        store = PackStore(Path(tmp) / "packs", builtin_dir=Path(tmp) / "none")
        pack = store.import_mtg_baseline(
            checkpoint,
            thresholds=thresholds,
            name=out.name,
            extra_files={"LICENSE": licence, "README.md": readme},
        )
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(pack.root, out)
    print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS)
    parser.add_argument("--licence", type=Path, default=DEFAULT_LICENCE)
    parser.add_argument("--out", type=Path, default=BUILTIN_PACKS / MTG_BASELINE)
    args = parser.parse_args()
    try:
        convert(args.checkpoint, args.thresholds, args.licence, args.out)
    except (PackError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
